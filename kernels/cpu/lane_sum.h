// kernels/cpu/lane_sum.h: the CPU's sum of many doubles. The terms, in the order they are given,
// are dealt round-robin to kLanes accumulators (term m goes to lane m mod kLanes), and the lanes
// are combined by a fixed pairwise tree. The lanes are independent chains of adds, so a loop over
// them vectorizes; one accumulator is one chain of dependent adds (one add per 4 cycles or so).
// The result depends only on the terms and their order, not on how they are split into runs, so
// two loop orders that give the same terms in the same order get bitwise the same sum.
#pragma once
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"

namespace minima::cpu {

constexpr int64_t kLanes = 16;

// The fixed pairwise tree over lane[0], lane[stride], ..., lane[(kLanes - 1) * stride] (a loop
// that keeps kLanes accumulators for many sums side by side stores them strided).
inline double combine_lanes(const double* lane, int64_t stride) {
  double t[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) t[j] = lane[j * stride];
  for (int64_t w = kLanes / 2; w >= 1; w /= 2)
    for (int64_t j = 0; j < w; ++j) t[j] = t[j] + t[j + w];
  return t[0];
}

// A value as a sum's term: float32 and float64 as they are, bf16 through its accumulate type.
inline double as_double(float v) { return v; }
inline double as_double(double v) { return v; }
inline double as_double(bf16 v) { return double(float(v)); }

// lane[j] += double(p[i + j]) for j < kLanes, for i = 0, kLanes, 2 kLanes, ... < n (n a multiple of
// kLanes), in that order (kernels/cpu/lane_sum.cpp).
void add_float_lanes(double* lane, const float* p, int64_t n);

// sums[r] = the lane sum of rows[r][0], ..., rows[r][n - 1] for r < count (bitwise lane_sum's),
// several rows side by side so that more adds are in flight than one row's lanes allow: a sum
// over the last dim of [16384, 1024] floats ran at half PyTorch's speed one row at a time.
void row_lane_sums(const float* const* rows, int64_t count, int64_t n, double* sums);

// One lane sum, taken run by run.
struct LaneSum {
  double lane[kLanes] = {};
  int64_t next = 0;  // the lane of the next term: (terms so far) mod kLanes

  // Adds term(0), ..., term(n - 1) as the next n terms.
  template <class F>
  void add(int64_t n, F term) {
    int64_t i = 0;
    for (; i < n && next != 0; ++i, next = (next + 1) % kLanes) lane[next] += term(i);
    double l[kLanes];  // a local copy the compiler keeps in registers
    for (int64_t j = 0; j < kLanes; ++j) l[j] = lane[j];
    for (; i + kLanes <= n; i += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) l[j] += term(i + j);
    for (int64_t j = 0; j < kLanes; ++j) lane[j] = l[j];
    for (; i < n; ++i, ++next) lane[next] += term(i);  // next starts at 0 here and stays < kLanes
  }
  // add() over a contiguous run of floats, n of them: the same lanes get the same doubles in the
  // same order, so bitwise the same sum, with the whole groups of kLanes taken by a vector loop
  // that keeps the lanes in registers (add_float_lanes: 4.4x add()'s speed on 1 MB in L2).
  void add_floats(const float* p, int64_t n) {
    int64_t i = 0;
    for (; i < n && next != 0; ++i, next = (next + 1) % kLanes) lane[next] += double(p[i]);
    const int64_t body = (n - i) / kLanes * kLanes;
    add_float_lanes(lane, p + i, body);
    i += body;
    for (; i < n; ++i, ++next) lane[next] += double(p[i]);  // next starts at 0 here and stays < kLanes
  }
  // The next n terms p[0], ..., p[n - 1], contiguous, each as_double: floats through add_floats.
  template <class V>
  void add_values(const V* p, int64_t n) {
    if constexpr (std::is_same_v<V, float>)
      add_floats(p, n);
    else
      add(n, [&](int64_t i) { return as_double(p[i]); });
  }
  double total() const { return combine_lanes(lane, 1); }
};

// The lane sum of n <= kLanes terms, each lane holding at most one: bitwise LaneSum's (a lane
// starts at +0, so the term goes in as 0.0 + term), kept in registers. For rows of a few terms,
// LaneSum's stores and reloads of its lanes cost more than the adds.
template <class F>
double short_lane_sum(int64_t n, F term) {
  double t[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) t[j] = j < n ? 0.0 + term(j) : 0.0;
  return combine_lanes(t, 1);
}

// The lane sum of term(0), ..., term(n - 1), one run: short_lane_sum for at most kLanes terms.
template <class F>
double lane_sum(int64_t n, F term) {
  if (n <= kLanes) return short_lane_sum(n, term);
  LaneSum s;
  s.add(n, term);
  return s.total();
}

// The lane sum of n contiguous values (as_double), as lane_sum gives it; a float run longer than
// kLanes takes LaneSum::add_floats's vector loop.
template <class V>
double lane_sum_of(const V* p, int64_t n) {
  if (n <= kLanes) return short_lane_sum(n, [&](int64_t i) { return as_double(p[i]); });
  LaneSum s;
  s.add_values(p, n);
  return s.total();
}
// Asks for the cache lines of [p, p + bytes), to be read soon. A loop that converts floats to
// double and adds them does not run far enough ahead of its loads for the hardware to keep
// enough lines in flight from a large, shared L3: on the two-core Xeon, a lane sum over 64 MB
// read 6-7 GB/s on one core, and 12-13 GB/s asking for the lines 4-16 KB ahead
// (docs/performance.md). Sums that walk their data in runs ask for the next run this way.
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
}

// Sums are added in chunks of this many terms, each after asking for the lines that come next.
constexpr int64_t kPrefetchChunk = 256;

}  // namespace minima::cpu
