// kernels/cpu/softmax.cpp: log_softmax over one dim (x viewed as [outer, D, inner], contiguous),
// its backward gx = gy - exp(y) * sum(gy), and the per-sample negative log-likelihood.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
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
}  // namespace

void CpuBackend::log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) {
  int64_t outer, D, inner;
  split3(x, dim, outer, D, inner);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "log_softmax", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(outer * inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t o = r / inner, in = r % inner;
        const T* xs = xp + o * D * inner + in;
        T* ys = yp + o * D * inner + in;
        A m = -std::numeric_limits<A>::infinity();
        for (int64_t d = 0; d < D; ++d) m = std::max(m, A(xs[d * inner]));
        A s = 0;
        for (int64_t d = 0; d < D; ++d) s += std::exp(A(xs[d * inner]) - m);
        // (x - m) - log(s), as PyTorch: m + log(s) first would round log(s) away against a large m
        // (logits of 1e30, two of them tied, gave log-probabilities of 0 and probabilities of 1).
        const A log_s = std::log(s);
        for (int64_t d = 0; d < D; ++d) ys[d * inner] = T((A(xs[d * inner]) - m) - log_s);
      }
    });
  });
}

void CpuBackend::log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) {
  int64_t outer, D, inner;
  split3(y, dim, outer, D, inner);
  MINIMA_DISPATCH_FLOAT(y.dtype(), "log_softmax_backward", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    const T* yp = y.data<T>();
    const T* gp = gy.data<T>();
    T* gxp = gx.data<T>();
    parallel_for(outer * inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t o = r / inner, in = r % inner;
        int64_t base = o * D * inner + in;
        A s = 0;
        for (int64_t d = 0; d < D; ++d) s += A(gp[base + d * inner]);
        for (int64_t d = 0; d < D; ++d)
          gxp[base + d * inner] = T(A(gp[base + d * inner]) - std::exp(A(yp[base + d * inner])) * s);
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
