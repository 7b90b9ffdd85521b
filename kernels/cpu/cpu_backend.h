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

// The instruction set of the GEMM micro-kernel (which conv2d and matmul run on). The default is
// the widest the CPU has, or MINIMA_CPU_GEMM=avx2|avx512|auto from the environment. Both give
// bitwise the same results (same blocking along K); only the speed differs.
enum class GemmIsa { avx2, avx512 };
const char* gemm_isa_name(GemmIsa isa);
bool gemm_isa_supported(GemmIsa isa);
GemmIsa gemm_isa();
void set_gemm_isa(GemmIsa isa);  // throws when the CPU lacks it

}  // namespace minima::cpu
