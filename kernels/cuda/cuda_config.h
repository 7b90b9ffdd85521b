// kernels/cuda/cuda_config.h: run-time settings of the CUDA backend. Plain C++ (no CUDA types),
// so the CLI and the tests can include it; the definitions exist only in a build with CUDA
// (kernels/cuda/cuda_config.cpp), so callers guard their calls with #ifdef MINIMA_HAS_CUDA.
//
//  * gemm: "native" (the hand-written kernels of gemm.cu), "cublas", or "auto".
//  * conv: "native" (implicit GEMM, conv.cu), "cudnn", or "auto".
//    auto times both paths once per shape (first call) and keeps the faster one. It falls back
//    to a fixed rule (the vendor path when it can run the call) in deterministic mode and while a
//    CUDA graph is being captured, because timing is neither reproducible nor capturable.
//  * allow_tf32: lets float32 GEMM/conv use TF32 tensor cores: the native GEMM switches to its wmma
//    kernel, cuBLAS and cuDNN to their TF32 math (the native convolutions stay fp32 SIMT). Off by
//    default: float32 results then carry full fp32 products.
//  * batch_norm: "passes" (the default) runs a training step's batch norm as three kernels each way
//    (statistics, per-channel finalize, normalize), reading the input twice; "persistent" runs it
//    as one cooperative kernel that keeps a round of channels in shared memory between its
//    statistics and its normalize, so the input is read once (batchnorm.cu). Shapes it cannot
//    hold (planes that are not whole 16-byte packs, channels too large for the device's shared
//    memory) take the passes either way. bn_stages is the persistent kernel's pipeline depth: 3
//    (the default) keeps a chunk's copies in flight while the block waits for its channel; 2 waits
//    for each chunk's copies before it goes on, and is kept for `bench ops` to compare.
//  * deterministic: two runs with the same seed give bitwise-equal results. What pays for it:
//    index_add and scatter_add (and so the backward of index_select and gather) run one thread
//    per output column over the indices in order instead of float atomics; max_pool2d's backward
//    runs one thread per image plane instead of atomics; cuDNN is restricted to deterministic
//    algorithms; auto picks by rule. Every other kernel is deterministic in both modes
//    (reductions are fixed trees, split-K weight gradients are summed in a fixed order).
#pragma once
#include <string>

namespace minima::cuda {

enum class Impl { Native, Vendor, Auto };
enum class BnImpl { Passes, Persistent };

void set_gemm_impl(const std::string& name);  // "native" | "cublas" | "auto"
void set_conv_impl(const std::string& name);  // "native" | "cudnn" | "auto"
Impl gemm_impl();
Impl conv_impl();
std::string gemm_impl_name();
std::string conv_impl_name();

void set_bn_impl(const std::string& name);  // "passes" | "persistent"
BnImpl bn_impl();
std::string bn_impl_name();
void set_bn_stages(int stages);  // 2 | 3
int bn_stages();

void set_allow_tf32(bool on);
bool allow_tf32();
void set_deterministic(bool on);
bool deterministic();

// True when minima was built against cuDNN (the "cudnn" conv path exists).
bool have_cudnn();

// Forgets the per-shape choices of "auto" (e.g. after changing allow_tf32 in a benchmark).
void clear_autotune_cache();

// Restores every setting above when it goes out of scope (tests and benchmarks).
class ConfigGuard {
 public:
  ConfigGuard();
  ~ConfigGuard();
  ConfigGuard(const ConfigGuard&) = delete;
  ConfigGuard& operator=(const ConfigGuard&) = delete;

 private:
  Impl gemm_, conv_;
  BnImpl bn_;
  int bn_stages_;
  bool tf32_, det_;
};

}  // namespace minima::cuda
