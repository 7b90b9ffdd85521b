// kernels/cpu/softmax.cpp: log_softmax over one dim (x viewed as [outer, D, inner], contiguous),
// its backward gx = gy - exp(y) * sum(gy), and the per-sample negative log-likelihood.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/exp.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

namespace {
void split3(const Tensor& x, int64_t dim, int64_t& outer, int64_t& D, int64_t& inner) {
  outer = 1;
  inner = 1;
  D = x.dim() ? x.size(dim) : 1;
  for (int64_t i = 0; i < dim; ++i) outer *= x.size(i);
  for (int64_t i = dim + 1; i < x.dim(); ++i) inner *= x.size(i);
}

// The largest of x[0], x[stride], ..., x[(D - 1) * stride], taken in lanes (a maximum is exact,
// so the order does not matter), and +0 for a zero maximum whichever zero came first. A NaN is
// never taken (it compares false), but exp(NaN - m) makes the sum and the whole row NaN anyway.
template <class A, class T>
A row_max(const T* x, int64_t D, int64_t stride) {
  constexpr int64_t kMaxLanes = 16;  // independent maxima, so a contiguous row runs as vectors
  A lane[kMaxLanes];
  for (A& l : lane) l = -std::numeric_limits<A>::infinity();
  int64_t d = 0;
  if (stride == 1)
    for (; d + kMaxLanes <= D; d += kMaxLanes)
#pragma omp simd  // (without it GCC keeps the lanes in scalar registers)
      for (int64_t j = 0; j < kMaxLanes; ++j) lane[j] = A(x[d + j]) > lane[j] ? A(x[d + j]) : lane[j];
  for (; d < D; ++d) lane[0] = A(x[d * stride]) > lane[0] ? A(x[d * stride]) : lane[0];
  A m = lane[0];
  for (int64_t j = 1; j < kMaxLanes; ++j) m = lane[j] > m ? lane[j] : m;
  return m + A(0);
}

// The exponentials are taken in chunks of this many values, into a buffer on the stack that
// stays in L1 for the pass that uses it.
constexpr int64_t kExpChunk = 256;

// How many rows share one exp call: rows along a contiguous dim as many as fill a chunk, once
// two or more fit (a call per row of ten classes cost more than its exponentials); else one.
int64_t rows_per_chunk(int64_t D, int64_t inner) {
  return inner == 1 && D >= 1 && D <= kExpChunk / 2 ? kExpChunk / D : 1;
}

// e[i] = exp(x[i * stride] - m) for i < n <= kExpChunk. float32 and bf16 values (A = float) go
// through exp_f32's vector loop, gathered into e first unless they lie side by side; float64
// values through std::exp.
template <class T, class A>
void exp_chunk(const T* x, int64_t stride, A m, A* e, int64_t n) {
  if constexpr (std::is_same_v<A, float>) {
    const float* src = e;
    if constexpr (std::is_same_v<T, float>) {
      if (stride == 1) src = x;
    }
    if (src == e)
      for (int64_t i = 0; i < n; ++i) e[i] = A(x[i * stride]);
    exp_f32(src, m, e, n);
  } else {
    for (int64_t i = 0; i < n; ++i) e[i] = std::exp(A(x[i * stride]) - m);
  }
}
}  // namespace

// Each row: m = max(x), s = sum of exp(x - m) as a lane sum in double (kernels/cpu/lane_sum.h),
// y = (x - m) - log(s).
void CpuBackend::log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) {
  int64_t outer, D, inner;
  split3(x, dim, outer, D, inner);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "log_softmax", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    // (x - m) - log(s), as PyTorch: m + log(s) first would round log(s) away against a large m
    // (logits of 1e30, two of them tied, gave log-probabilities of 0 and probabilities of 1).
    auto write_row = [&](const T* xs, T* ys, A m, double s) {
      const A log_s = A(std::log(s));
      for (int64_t d = 0; d < D; ++d) ys[d * inner] = T((A(xs[d * inner]) - m) - log_s);
    };
    const int64_t group = rows_per_chunk(D, inner);
    parallel_for(outer * inner, std::max<int64_t>(group, 4096 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
      A ex[kExpChunk];
      if (group > 1) {  // short rows: x - m of several rows, then their exponentials in one call
        A m[kExpChunk];
        for (int64_t r0 = b; r0 < e; r0 += group) {
          const int64_t rows = std::min(group, e - r0);
          for (int64_t i = 0; i < rows; ++i) {
            const T* xs = xp + (r0 + i) * D;
            m[i] = row_max<A>(xs, D, 1);
            for (int64_t d = 0; d < D; ++d) ex[i * D + d] = A(xs[d]) - m[i];
          }
          exp_chunk(ex, 1, A(0), ex, rows * D);
          for (int64_t i = 0; i < rows; ++i) {
            auto term = [&](int64_t d) { return double(ex[i * D + d]); };
            write_row(xp + (r0 + i) * D, yp + (r0 + i) * D, m[i], lane_sum(D, term));
          }
        }
        return;
      }
      for (int64_t r = b; r < e; ++r) {
        int64_t o = r / inner, in = r % inner;
        const T* xs = xp + o * D * inner + in;
        const A m = row_max<A>(xs, D, inner);
        LaneSum s;
        for (int64_t d0 = 0; d0 < D; d0 += kExpChunk) {
          const int64_t n = std::min(kExpChunk, D - d0);
          exp_chunk(xs + d0 * inner, inner, m, ex, n);
          s.add_values(ex, n);
        }
        write_row(xs, yp + o * D * inner + in, m, s.total());
      }
    });
  });
}

// gx = gy - exp(y) * sum(gy), the sum a lane sum in double.
void CpuBackend::log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) {
  int64_t outer, D, inner;
  split3(y, dim, outer, D, inner);
  MINIMA_DISPATCH_FLOAT(y.dtype(), "log_softmax_backward", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    const T* yp = y.data<T>();
    const T* gp = gy.data<T>();
    T* gxp = gx.data<T>();
    // gx = g - e * s along one row, e its exponentials from ex. The row's stride is a constant
    // 1 for contiguous rows (every row along the last dim), so that the sum and the write are
    // compiled for it: rows of ten classes, the experiments' case, take 0.8x the time they took
    // with the stride known only at run time (rows of 1000 about the same).
    auto write_row = [&](int64_t base, auto stride, const A* ex, int64_t d0, int64_t n, A s) {
      const T* g = gp + base + d0 * stride;
      T* out = gxp + base + d0 * stride;
      for (int64_t i = 0; i < n; ++i) out[i * stride] = T(A(g[i * stride]) - ex[i] * s);
    };
    auto sum_of_g = [&](int64_t base, auto stride) {
      const T* g = gp + base;
      if constexpr (std::is_same_v<decltype(stride), int64_t>)
        return A(lane_sum(D, [&](int64_t d) { return double(A(g[d * stride])); }));
      else
        return A(lane_sum_of(g, D));
    };
    const int64_t group = rows_per_chunk(D, inner);
    auto row_range = [&](int64_t b, int64_t e, auto stride) {
      for (int64_t r = b; r < e; ++r) {
        int64_t o = r / inner, in = r % inner;
        int64_t base = o * D * inner + in;
        const A s = sum_of_g(base, stride);
        A ex[kExpChunk];
        for (int64_t d0 = 0; d0 < D; d0 += kExpChunk) {
          const int64_t n = std::min(kExpChunk, D - d0);
          exp_chunk(yp + base + d0 * stride, stride, A(0), ex, n);
          write_row(base, stride, ex, d0, n, s);
        }
      }
    };
    constexpr std::integral_constant<int64_t, 1> kUnit;
    parallel_for(outer * inner, std::max<int64_t>(group, 4096 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
      if (group > 1) {  // short rows (contiguous): the exponentials of several rows in one call
        A ex[kExpChunk];
        for (int64_t r0 = b; r0 < e; r0 += group) {
          const int64_t rows = std::min(group, e - r0);
          exp_chunk(yp + r0 * D, 1, A(0), ex, rows * D);
          for (int64_t i = 0; i < rows; ++i)
            write_row((r0 + i) * D, kUnit, ex + i * D, 0, D, sum_of_g((r0 + i) * D, kUnit));
        }
      } else if (inner == 1) {
        row_range(b, e, kUnit);
      } else {
        row_range(b, e, inner);
      }
    });
  });
}

static void check_targets(const Tensor& target, int64_t C) {
  const int64_t* t = target.data<int64_t>();
  for (int64_t i = 0; i < target.numel(); ++i)
    MINIMA_CHECK(t[i] >= 0 && t[i] < C, "cross_entropy/nll_loss: target ", t[i], " at position ", i,
                 " is out of range for ", C, " classes");
}

void CpuBackend::nll_forward(const Tensor& loss, const Tensor& logp, const Tensor& target) {
  int64_t N = logp.size(0), C = logp.size(1);
  check_targets(target, C);
  const int64_t* t = target.data<int64_t>();
  MINIMA_DISPATCH_FLOAT(logp.dtype(), "nll_loss", [&] {
    const scalar_t* lp = logp.data<scalar_t>();
    scalar_t* out = loss.data<scalar_t>();
    for (int64_t i = 0; i < N; ++i) out[i] = scalar_t(-Acc<scalar_t>(lp[i * C + t[i]]));
  });
}

void CpuBackend::nll_backward(const Tensor& glogp, const Tensor& gloss, const Tensor& target) {
  int64_t N = glogp.size(0), C = glogp.size(1);
  check_targets(target, C);
  fill(glogp, 0.0);
  const int64_t* t = target.data<int64_t>();
  MINIMA_DISPATCH_FLOAT(glogp.dtype(), "nll_loss_backward", [&] {
    scalar_t* g = glogp.data<scalar_t>();
    const scalar_t* gl = gloss.data<scalar_t>();
    for (int64_t i = 0; i < N; ++i) g[i * C + t[i]] = scalar_t(-Acc<scalar_t>(gl[i]));
  });
}

}  // namespace minima::cpu
