// kernels/cuda/cuda_api.h: host-side utilities of the CUDA backend that plain C++ code (the CLI,
// benchmarks, tests) may call: device facts, synchronization, the caching allocator's counters,
// move-only device buffers and an event timer. No CUDA types appear here. Like cuda_config.h,
// the definitions exist only in a build with CUDA (callers guard with #ifdef MINIMA_HAS_CUDA).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "core/dtype.h"
#include "kernels/cuda/bn_plan.h"

namespace minima::cuda {

std::string device_name(int device = 0);
int sm_count(int device = 0);
// Blocks until all work queued on the device's stream has finished.
void synchronize(int device = 0);

// ---- the caching allocator ----
struct AllocatorStats {
  size_t in_use = 0;          // bytes handed out (as requested)
  size_t peak = 0;            // high-water mark of in_use since the last reset_peak
  size_t reserved = 0;        // bytes obtained from cudaMalloc and not yet returned (in use + cached)
  size_t cached = 0;          // bytes of free blocks kept for reuse
  int64_t device_allocs = 0;  // cudaMalloc calls so far
  int64_t reuses = 0;         // allocations served from the cache
};
AllocatorStats allocator_stats(int device = 0);
// Returns every cached (free) block to the driver.
void empty_cache(int device = 0);
// Tests: fill every block handed out with 0xFF bytes (NaN for f32/f64/bf16, -1 for i64, 255 for
// u8), so a kernel that misses an output element is caught.
void set_poison_allocations(bool on);
bool poison_allocations();
// The allocator mode MINIMA_CUDA_ALLOCATOR's value `env` asks for (nullptr: unset): true for
// "direct" (exact-size cudaMalloc and cudaFree per block), false for "caching", empty or unset.
// Any other value also gives false, with `warning` saying so (else it is left empty).
bool direct_allocation(const char* env, std::string& warning);

// Device memory from the caching allocator, released when the buffer dies. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t nbytes, int device = 0);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return p_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  size_t size() const { return n_; }
  int device() const { return dev_; }

 private:
  void release();
  void* p_ = nullptr;
  size_t n_ = 0;
  int dev_ = 0;
};

// What the persistent batch-norm kernels (set_bn_impl in cuda_config.h) did so far: how many
// training forwards and backwards they ran, so a test can tell that it exercised that path, and
// the plan of the latest each way and the blocks per SM the device held, so a benchmark can say
// what it timed.
struct BnPersistentStats {
  int64_t forward_calls = 0, backward_calls = 0;
  BnPlan forward, backward;
  int per_sm = 0;
  int stages = 0;  // of the latest call (bn_stages)
};
BnPersistentStats batch_norm_persistent_stats();

// Whether the persistent kernels' plan holds a training batch norm of C channels of M values each
// in `dtype` on `device`, with bn_stages() stages (backward: the backward kernel's, whose stages
// hold two inputs): whether the device's resident blocks hold a channel's chunks. Whole 16-byte
// packs per plane and aligned tensors are the caller's to check. It lets a test expect the
// persistent path exactly where it should run on the device at hand.
bool batch_norm_persistent_fits(int64_t M, int64_t C, DType dtype, bool backward, int device = 0);

// Milliseconds per call of f, measured with CUDA events on the device's stream: `warmup` untimed
// calls, then `iters` timed back to back. f must queue its work on that stream (every backend
// kernel does).
double time_ms(const std::function<void()>& f, int warmup = 1, int iters = 5, int device = 0);

}  // namespace minima::cuda
