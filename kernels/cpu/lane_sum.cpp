// kernels/cpu/lane_sum.cpp: the vector loop of LaneSum::add_floats (kernels/cpu/lane_sum.h).
// Written with intrinsics because the compiler's own vectorization of LaneSum::add over floats
// kept the sixteen lanes in memory, storing and reloading them every sixteen terms: a chain of
// store-to-load forwards. Here the lanes stay in registers, two AVX-512 vectors of eight doubles
// (or four AVX2 vectors of four), and each adds its floats widened to double exactly as add()
// does, so the sums are bitwise the same.
#include "kernels/cpu/lane_sum.h"

#include <algorithm>

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

// How far ahead in its row each term asks for a line: 4096 floats, 16 KB (with rows of 1,024
// floats, four rows on: the group after this one). On the EPYC, over [16384, 1024], 8 KB and
// 32 KB read 10-30 % slower, and so did no prefetching.
constexpr int64_t kRowAhead = 4096;

// Rows whose lane sums run side by side: each row's lanes are chains of adds, one add per kLanes
// terms, so one row runs at one add's latency per kLanes terms; R rows keep R times as many adds
// in flight. The first n / kLanes * kLanes terms of each row; the caller adds the rest.
template <int R>
__attribute__((target("avx512f,avx512vl,avx2"))) void row_lanes_avx512(const float* const* rows, int64_t n,
                                                                       double (*lane)[kLanes]) {
  __m512d lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_pd();
  for (int64_t i = 0; i + kLanes <= n; i += kLanes)
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + i + kRowAhead), _MM_HINT_T0);
      lo[r] = _mm512_add_pd(lo[r], _mm512_cvtps_pd(_mm256_loadu_ps(rows[r] + i)));
      hi[r] = _mm512_add_pd(hi[r], _mm512_cvtps_pd(_mm256_loadu_ps(rows[r] + i + 8)));
    }
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_pd(lane[r], lo[r]);
    _mm512_storeu_pd(lane[r] + 8, hi[r]);
  }
}

template <int R>
void row_lanes_avx2(const float* const* rows, int64_t n, double (*lane)[kLanes]) {
  __m256d a[R][4];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) a[r][q] = _mm256_setzero_pd();
  for (int64_t i = 0; i + kLanes <= n; i += kLanes)
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + i + kRowAhead), _MM_HINT_T0);
      for (int q = 0; q < 4; ++q) a[r][q] = _mm256_add_pd(a[r][q], _mm256_cvtps_pd(_mm_loadu_ps(rows[r] + i + 4 * q)));
    }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) _mm256_storeu_pd(lane[r] + 4 * q, a[r][q]);
}
#endif
}  // namespace

void row_lane_sums(const float* const* rows, int64_t count, int64_t n, double* sums) {
  constexpr int64_t kGroup = 4;  // rows at a time: eight AVX-512 accumulators (AVX2: two rows, eight)
  double lane[kGroup][kLanes];
  for (int64_t r0 = 0; r0 < count; r0 += kGroup) {
    const int64_t m = std::min(kGroup, count - r0);
    const float* const* rp = rows + r0;
#if defined(__AVX2__)
    if (gemm_isa() == GemmIsa::avx512) {
      if (m == 4)
        row_lanes_avx512<4>(rp, n, lane);
      else
        for (int64_t r = 0; r < m; ++r) row_lanes_avx512<1>(rp + r, n, lane + r);
    } else {
      for (int64_t r = 0; r + 2 <= m; r += 2) row_lanes_avx2<2>(rp + r, n, lane + r);
      if (m % 2) row_lanes_avx2<1>(rp + m - 1, n, lane + m - 1);
    }
#else
    for (int64_t r = 0; r < m; ++r) {
      for (double& l : lane[r]) l = 0.0;
      add_float_lanes(lane[r], rp[r], n / kLanes * kLanes);
    }
#endif
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t i = n / kLanes * kLanes, j = 0; i < n; ++i, ++j) lane[r][j] += double(rp[r][i]);
      sums[r0 + r] = combine_lanes(lane[r], 1);
    }
  }
}

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
