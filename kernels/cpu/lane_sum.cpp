// kernels/cpu/lane_sum.cpp: the vector loops of LaneSum::add_floats and row_lane_sums
// (kernels/cpu/lane_sum.h), one per instruction set.
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
// How far ahead in its row each term asks for a line, when asked to: 4096 floats, 16 KB (with
// rows of 1,024 floats, four rows on: the group after this one). On the EPYC, over [16384, 1024],
// 8 KB and 32 KB read 10-30 % slower, and so did no prefetching. (A single run's caller, add_run,
// asks for its own lines.)
constexpr int64_t kRowAhead = 4096;

// lanes[r][j] += double(rows[r][i + j]) for the whole groups of kLanes terms of n, R rows side by
// side. Each row's lanes are chains of adds, one add per kLanes terms, so one row runs at an
// add's latency per kLanes terms; R rows keep R times as many adds in flight.
template <int R, bool kPrefetch>
__attribute__((target("avx512f,avx512vl,avx2"))) void lanes_avx512(const float* const* rows, double* const* lanes,
                                                                   int64_t n) {
  __m512d lo[R], hi[R];
  for (int r = 0; r < R; ++r) {
    lo[r] = _mm512_loadu_pd(lanes[r]);
    hi[r] = _mm512_loadu_pd(lanes[r] + 8);
  }
  for (int64_t i = 0; i + kLanes <= n; i += kLanes)
    for (int r = 0; r < R; ++r) {
      if (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(rows[r] + i + kRowAhead), _MM_HINT_T0);
      lo[r] = _mm512_add_pd(lo[r], _mm512_cvtps_pd(_mm256_loadu_ps(rows[r] + i)));
      hi[r] = _mm512_add_pd(hi[r], _mm512_cvtps_pd(_mm256_loadu_ps(rows[r] + i + 8)));
    }
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_pd(lanes[r], lo[r]);
    _mm512_storeu_pd(lanes[r] + 8, hi[r]);
  }
}

// The same with AVX2: four vectors of four lanes a row, so two rows fill eight registers.
template <int R, bool kPrefetch>
void lanes_avx2(const float* const* rows, double* const* lanes, int64_t n) {
  __m256d a[R][4];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) a[r][q] = _mm256_loadu_pd(lanes[r] + 4 * q);
  for (int64_t i = 0; i + kLanes <= n; i += kLanes)
    for (int r = 0; r < R; ++r) {
      if (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(rows[r] + i + kRowAhead), _MM_HINT_T0);
      for (int q = 0; q < 4; ++q) a[r][q] = _mm256_add_pd(a[r][q], _mm256_cvtps_pd(_mm_loadu_ps(rows[r] + i + 4 * q)));
    }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) _mm256_storeu_pd(lanes[r] + 4 * q, a[r][q]);
}
#endif
}  // namespace

void add_float_lanes(double* lane, const float* p, int64_t n) {
#if defined(__AVX2__)
  if (gemm_isa() == GemmIsa::avx512)
    lanes_avx512<1, false>(&p, &lane, n);
  else
    lanes_avx2<1, false>(&p, &lane, n);
#else
  for (int64_t i = 0; i < n; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += double(p[i + j]);
#endif
}

void row_lane_sums(const float* const* rows, int64_t count, int64_t n, double* sums) {
  constexpr int kGroup = 4;  // rows at a time: eight AVX-512 accumulators (AVX2: two rows, eight)
  double lane[kGroup][kLanes];
  double* const lanes[kGroup] = {lane[0], lane[1], lane[2], lane[3]};
  for (int64_t r0 = 0; r0 < count; r0 += kGroup) {
    const int m = int(std::min<int64_t>(kGroup, count - r0));
    const float* const* rp = rows + r0;
    for (int r = 0; r < m; ++r)
      for (double& l : lane[r]) l = 0.0;
#if defined(__AVX2__)
    if (gemm_isa() == GemmIsa::avx512) {
      if (m == kGroup)
        lanes_avx512<kGroup, true>(rp, lanes, n);
      else
        for (int r = 0; r < m; ++r) lanes_avx512<1, true>(rp + r, lanes + r, n);
    } else {
      for (int r = 0; r + 2 <= m; r += 2) lanes_avx2<2, true>(rp + r, lanes + r, n);
      if (m % 2) lanes_avx2<1, true>(rp + m - 1, lanes + m - 1, n);
    }
#else
    for (int r = 0; r < m; ++r) add_float_lanes(lane[r], rp[r], n / kLanes * kLanes);
#endif
    for (int r = 0; r < m; ++r) {  // the last n mod kLanes terms, in lanes 0, 1, ...
      for (int64_t i = n / kLanes * kLanes, j = 0; i < n; ++i, ++j) lane[r][j] += double(rp[r][i]);
      sums[r0 + r] = combine_lanes(lane[r], 1);
    }
  }
}

}  // namespace minima::cpu
