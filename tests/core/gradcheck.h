// tests/core/gradcheck.h: the finite-difference gradient check every differentiable op goes
// through. f maps N float64 input tensors to one output; the output is reduced to a scalar with
// a fixed random weighting L = sum(f(x) * w), the analytic gradients come from L.backward(), and
// each is compared element by element with the central difference
// (L(x + eps e_j) - L(x - eps e_j)) / (2 eps).
//
// Inputs may be non-contiguous (transposed or sliced views), which then reach the op as such;
// they are perturbed in place through their strides, so an input must not alias itself
// (no stride-0 expanded dims). To test an expanded input, pass the base and expand inside f.
// Inputs that should not be differentiated (integer indices, masks) go in as requires_grad=false
// and are left alone.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"

namespace minima::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-6;
  uint64_t weight_seed = 1234;  // seed of the output weighting w
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // what failed, naming the input, the element and both values
  int64_t checked = 0;  // number of gradient elements compared
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace detail {
inline double* element_ptr(const Tensor& t, int64_t linear) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    int64_t n = t.shape()[size_t(d)];
    off += (linear % n) * t.strides()[size_t(d)];
    linear /= n;
  }
  return static_cast<double*>(t.data_ptr()) + off;
}
inline double weighted_sum(const Tensor& y, const Tensor& w) { return sum(mul(y.to(DType::f64), w)).item(); }
}  // namespace detail

// `inputs` are used as they are (leaves; the ones with requires_grad are checked). Their .grad is
// reset first. The op's output may have any floating dtype but the check is meant for float64.
inline GradcheckResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {}) {
  GradcheckResult r;
  auto fail = [&](const std::string& m) {
    if (r.ok) r.message = m;
    r.ok = false;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    if (!x.is_leaf() || x.dtype() != DType::f64) {
      fail(str("gradcheck: input ", i, " must be a float64 leaf, got ", x.str()));
      return r;
    }
    for (int64_t d = 0; d < x.dim(); ++d)
      if (x.shape()[size_t(d)] > 1 && x.strides()[size_t(d)] == 0) {
        fail(str("gradcheck: input ", i, " of shape ", x.shape(), " aliases itself (stride 0)"));
        return r;
      }
    x.impl()->grad.reset();
  }

  // Analytic gradients.
  Tensor y = f(inputs);
  if (!y.requires_grad()) {
    fail(str("gradcheck: the output of shape ", y.shape(), " does not require grad"));
    return r;
  }
  Generator wg(opt.weight_seed);
  Tensor w = uniform(y.shape(), 0.5, 1.5, wg, TensorOptions(DType::f64));
  {
    Tensor neg_mask =
        lt(uniform(y.shape(), 0.0, 1.0, wg, TensorOptions(DType::f64)), full({}, 0.5, TensorOptions(DType::f64)));
    w = where(neg_mask, neg(w), w);  // mixed signs, magnitudes in [0.5, 1.5)
  }
  Tensor loss = sum(mul(y.to(DType::f64), w));
  loss.backward();

  // Numeric gradients, one element at a time.
  NoGradGuard ng;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    Tensor g = x.grad();
    if (!g.defined()) {
      fail(str("gradcheck: input ", i, " of shape ", x.shape(), " received no gradient"));
      continue;
    }
    if (g.shape() != x.shape() || g.dtype() != DType::f64) {
      fail(str("gradcheck: input ", i, " of shape ", x.shape(), " got a gradient ", g.str()));
      continue;
    }
    std::vector<double> ga = g.to_vector<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      double* p = detail::element_ptr(x, j);
      double orig = *p;
      *p = orig + opt.eps;
      double lp = detail::weighted_sum(f(inputs), w);
      *p = orig - opt.eps;
      double lm = detail::weighted_sum(f(inputs), w);
      *p = orig;
      double num = (lp - lm) / (2 * opt.eps);
      double an = ga[size_t(j)];
      ++r.checked;
      if (!(std::abs(an - num) <= opt.atol + opt.rtol * std::abs(num))) {
        fail(str("gradcheck: input ", i, " of shape ", x.shape(), ", element ", j, ": analytic ", an, " vs numeric ",
                 num, " (diff ", an - num, ")"));
      }
    }
  }
  return r;
}

// Convenience: a float64 leaf requiring grad from any tensor (copied, detached).
inline Tensor leaf(const Tensor& t) {
  NoGradGuard ng;
  Tensor c = t.detach().to(DType::f64).clone();
  c.requires_grad_(true);
  return c;
}
// A non-contiguous float64 leaf holding t's values: the transpose of a contiguous copy of
// t's transpose (dims d0, d1 swapped twice), so shape and values equal t's but strides do not.
inline Tensor transposed_leaf(const Tensor& t, int64_t d0 = 0, int64_t d1 = -1) {
  NoGradGuard ng;
  Tensor c = t.detach().to(DType::f64).transpose(d0, d1).contiguous().transpose(d0, d1);
  Tensor v = c.detach();
  v.requires_grad_(true);
  return v;
}
// A non-contiguous float64 leaf: t's values placed at every other position of a larger buffer
// along `dim` (a slice with step 2).
inline Tensor strided_leaf(const Tensor& t, int64_t dim = -1) {
  NoGradGuard ng;
  int64_t d = dim < 0 ? dim + t.dim() : dim;
  Shape big = t.shape();
  big[size_t(d)] = 2 * big[size_t(d)] + 1;
  Tensor buf = full(big, 1e9, TensorOptions(DType::f64));  // junk the op must never read
  Tensor v = buf.slice(d, 1, big[size_t(d)], 2);
  v.copy_(t.detach().to(DType::f64));
  Tensor out = v.detach();
  out.requires_grad_(true);
  return out;
}

#define MINIMA_GRADCHECK(...)                                    \
  do {                                                           \
    auto minima_gc_ = ::minima::testing::gradcheck(__VA_ARGS__); \
    CHECK_MESSAGE(minima_gc_.ok, minima_gc_.message);            \
    CHECK(minima_gc_.checked > 0);                               \
  } while (0)

}  // namespace minima::testing
