// kernels/cpu/cpu_backend.h: the CPU reference backend. Plain loops, OpenMP across rows or
// channels, and a cache-blocked GEMM that conv2d also runs on (im2col). Each family is one .cpp.
#pragma once
#include "core/backend.h"

namespace minima::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  MINIMA_BACKEND_KERNEL_OVERRIDES
};

// Single-matrix GEMM on contiguous-or-strided row/col layouts:
// C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C, element (i,j) of X at X[i*rs + j*cs].
template <class T>
void gemm_strided(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
                  int64_t b_rs, int64_t b_cs, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel = true);

// A B operand that is never stored whole but written strip by strip straight into the GEMM's
// packed layout (conv2d's unrolled receptive fields: see kernels/cpu/conv.cpp). Called as
// B(j0, n, pc, kc, R, out), it must set out[k * R + j] = B[pc + k, j0 + j] for k < kc, j < n,
// and to zero for n <= j < R, where R is the micro-kernel's strip width (8, 16 or 32). A
// non-owning reference to a callable, valid while that lives.
template <class T>
class BPacker {
 public:
  template <class F>
  explicit BPacker(const F& f)
      : fn_(&f), call_([](const void* fn, int64_t j0, int64_t n, int64_t pc, int64_t kc, int R, T* out) {
          (*static_cast<const F*>(fn))(j0, n, pc, kc, R, out);
        }) {}
  void operator()(int64_t j0, int64_t n, int64_t pc, int64_t kc, int R, T* out) const {
    call_(fn_, j0, n, pc, kc, R, out);
  }

 private:
  const void* fn_;
  void (*call_)(const void*, int64_t, int64_t, int64_t, int64_t, int, T*);
};

// C[M,N] = alpha * A @ B + beta * C with B given by a packer. Each element of
// C is summed exactly as gemm_strided sums it, so the result is bitwise that of a stored B.
template <class T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs,
                   const BPacker<T>& B, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel = true);

// dst[j * dst_ls + i] = src[i * src_ls + j] for i < rows, j < cols: lines of src (contiguous)
// become columns of dst, through the same register transposes as the packing.
template <class T>
void transpose_lines(int64_t rows, int64_t cols, const T* src, int64_t src_ls, T* dst, int64_t dst_ls);

// The instruction set of the GEMM micro-kernel (which conv2d and matmul run on). The default is
// the widest the CPU has, or MINIMA_CPU_GEMM=avx2|avx512|auto from the environment. Both give
// bitwise the same results (same blocking along K); only the speed differs.
enum class GemmIsa { avx2, avx512 };
const char* gemm_isa_name(GemmIsa isa);
bool gemm_isa_supported(GemmIsa isa);
GemmIsa gemm_isa();
void set_gemm_isa(GemmIsa isa);  // throws when the CPU lacks it

}  // namespace minima::cpu
