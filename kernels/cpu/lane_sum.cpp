// kernels/cpu/lane_sum.cpp: the vector loop of LaneSum::add_floats (kernels/cpu/lane_sum.h).
// Written with intrinsics because the compiler's own vectorization of LaneSum::add over floats
// kept the sixteen lanes in memory, storing and reloading them every sixteen terms: a chain of
// store-to-load forwards. Here the lanes stay in registers, two AVX-512 vectors of eight doubles
// (or four AVX2 vectors of four), and each adds its floats widened to double exactly as add()
// does, so the sums are bitwise the same.
#include "kernels/cpu/lane_sum.h"

#if defined(__AVX2__)
// GCC 12's AVX-512 conversions fill their unused pass-through operand from a variable it then
// reports as maybe uninitialized: a known false alarm in its own header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/cpu/cpu_backend.h"  // gemm_isa(): AVX-512 or AVX2, chosen once for every kernel
#endif

namespace minima::cpu {

namespace {
#if defined(__AVX2__)
__attribute__((target("avx512f,avx512vl,avx2"))) void add_float_lanes_avx512(double* lane, const float* p, int64_t n) {
  __m512d lo = _mm512_loadu_pd(lane), hi = _mm512_loadu_pd(lane + 8);
  for (int64_t i = 0; i < n; i += kLanes) {
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm256_loadu_ps(p + i)));
    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 8)));
  }
  _mm512_storeu_pd(lane, lo);
  _mm512_storeu_pd(lane + 8, hi);
}

void add_float_lanes_avx2(double* lane, const float* p, int64_t n) {
  __m256d l0 = _mm256_loadu_pd(lane), l1 = _mm256_loadu_pd(lane + 4), l2 = _mm256_loadu_pd(lane + 8),
          l3 = _mm256_loadu_pd(lane + 12);
  for (int64_t i = 0; i < n; i += kLanes) {
    l0 = _mm256_add_pd(l0, _mm256_cvtps_pd(_mm_loadu_ps(p + i)));
    l1 = _mm256_add_pd(l1, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 4)));
    l2 = _mm256_add_pd(l2, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 8)));
    l3 = _mm256_add_pd(l3, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 12)));
  }
  _mm256_storeu_pd(lane, l0);
  _mm256_storeu_pd(lane + 4, l1);
  _mm256_storeu_pd(lane + 8, l2);
  _mm256_storeu_pd(lane + 12, l3);
}
#endif
}  // namespace

void add_float_lanes(double* lane, const float* p, int64_t n) {
#if defined(__AVX2__)
  if (gemm_isa() == GemmIsa::avx512)
    add_float_lanes_avx512(lane, p, n);
  else
    add_float_lanes_avx2(lane, p, n);
#else
  for (int64_t i = 0; i < n; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += double(p[i + j]);
#endif
}

}  // namespace minima::cpu
