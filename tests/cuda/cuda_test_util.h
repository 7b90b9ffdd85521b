// tests/cuda/cuda_test_util.h: what the CUDA tests share. Every test compares the CUDA backend
// with the CPU reference on the same random inputs: forward values and, through the autograd
// front-end, the gradient of every input (the same graph built on CPU tensors and on CUDA
// tensors, the same upstream gradient). Allocations are poisoned (0xFF bytes: NaN for floats) so
// an output element a kernel forgets to write shows up as a mismatch.
// Without a CUDA device (or in a build without CUDA) every test is skipped; the test
// "cuda: device available" says why.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/ops.h"
#include "core/random.h"

#ifdef MINIMA_HAS_CUDA
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_config.h"
#endif

namespace cudatest {
using namespace minima;

inline bool have_gpu() {
  static const bool v = minima::cuda_available();
  return v;
}
inline std::string skip_reason() {
#ifdef MINIMA_HAS_CUDA
  return "no CUDA device found (cudaGetDeviceCount reports none): CUDA tests are skipped";
#else
  return "minima was built without CUDA: CUDA tests are skipped";
#endif
}

// Turned on once, before the first test runs.
inline const bool poisoned = [] {
#ifdef MINIMA_HAS_CUDA
  if (have_gpu()) cuda::set_poison_allocations(true);
#endif
  return true;
}();

inline const Device kGpu = Device::cuda(0);

// Tolerances by dtype (float32 ~1e-5 relative, TF32 ~1e-3, bfloat16 ~1e-2).
inline double tol(DType t) {
  switch (t) {
    case DType::f64: return 1e-10;
    case DType::bf16: return 2e-2;
    default: return 2e-5;
  }
}
constexpr double kTf32Tol = 3e-3;
// cuDNN may run a float32 convolution with a Winograd or FFT algorithm when it is the fastest (as
// PyTorch lets it); their rounding error reaches about 1e-5 to 1e-4 of the values' scale, so the
// comparisons that involve cuDNN's float32 convolutions use this tolerance. Native against the CPU
// keeps tol(f32).
constexpr double kCudnnF32Tol = 1e-4;

// Random CPU tensors (the CUDA side gets copies of these).
inline Tensor rnd(const Shape& s, uint64_t seed, DType t = DType::f32) {
  Generator g(seed);
  return randn(s, g, TensorOptions(t));
}
// Strictly positive values (for log, sqrt, pow, division).
inline Tensor rnd_pos(const Shape& s, uint64_t seed, DType t = DType::f32) {
  NoGradGuard ng;
  return add(abs(rnd(s, seed, t)), 0.5);
}

// Compares got (any device) with want (the reference): |got - want| <= atol + rtol * (|want| +
// mean|want|). The mean term is the scale of the values, so results that cancel to nearly zero
// (sums, products) are judged against the size of what was summed. NaNs must match.
inline void expect_close(const Tensor& got, const Tensor& want, double rtol, const std::string& what,
                         double atol = 0.0) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 0;
  size_t finite = 0;
  for (double v : w)
    if (std::isfinite(v)) {
      scale += std::fabs(v);
      ++finite;
    }
  scale = finite ? scale / double(finite) : 0;
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    bool ok;
    if (std::isnan(w[i]) || std::isnan(g[i]))
      ok = std::isnan(w[i]) && std::isnan(g[i]);
    else if (std::isinf(w[i]) || std::isinf(g[i]))
      ok = w[i] == g[i];
    else
      ok = std::fabs(g[i] - w[i]) <= atol + rtol * (std::fabs(w[i]) + scale);
    if (!ok) {
      if (!bad) first = i;
      ++bad;
      if (std::isfinite(g[i] - w[i])) worst = std::max(worst, std::fabs(g[i] - w[i]));
    }
  }
  if (bad) {
    MESSAGE(what, ": ", bad, " of ", w.size(), " elements differ; first at ", first, ": got ", g[first], ", want ",
            w[first], "; largest difference ", worst, " (scale ", scale, ", rtol ", rtol, ")");
  }
  CHECK(bad == 0);
}

inline void expect_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  REQUIRE(got.dtype() == want.dtype());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    bool same = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i];
    if (!same && !bad++) first = i;
  }
  if (bad)
    MESSAGE(what, ": ", bad, " of ", w.size(), " elements differ; first at ", first, ": got ", g[first], ", want ",
            w[first]);
  CHECK(bad == 0);
}

using GraphFn = std::function<Tensor(const std::vector<Tensor>&)>;

// How check_graph compares: the forward output to rtol; the gradients (unless grads is false) to
// grad_rtol, which defaults to rtol. A plain number converts, so a call reads check_graph(what,
// inputs, 1e-5, f), or {1e-5, true, 1e-4} for a looser gradient.
struct GraphTol {
  GraphTol(double rtol, bool grads = true, double grad_rtol = -1)  // NOLINT(google-explicit-constructor)
      : rtol(rtol), grads(grads), grad_rtol(grad_rtol < 0 ? rtol : grad_rtol) {}
  double rtol;
  bool grads;
  double grad_rtol;
};

// Builds f on leaf copies of `inputs` on the CPU and on CUDA, compares the outputs, then runs
// backward with one random upstream gradient and compares the gradient of every floating input.
// (f comes last so that a lambda written in the call reads, and formats, as the call's body.)
inline void check_graph(const std::string& what, const std::vector<Tensor>& inputs, const GraphTol& tol,
                        const GraphFn& f) {
  const double rtol = tol.rtol, grad_rtol = tol.grad_rtol;
  const bool grads = tol.grads;
  std::vector<Tensor> ci, gi;
  for (const Tensor& x : inputs) {
    Tensor c = x.detach().clone();
    Tensor g = x.detach().to(kGpu);
    if (grads && is_floating(x.dtype())) {
      c.requires_grad_(true);
      g.requires_grad_(true);
    }
    ci.push_back(c);
    gi.push_back(g);
  }
  Tensor yc = f(ci), yg = f(gi);
  REQUIRE(yg.device() == kGpu);
  expect_close(yg, yc, rtol, what + " (forward)");
  if (!grads || !yc.requires_grad()) return;
  Generator gen(4242);
  Tensor up = randn(yc.shape(), gen, TensorOptions(yc.dtype()));
  yc.backward(up);
  yg.backward(up.to(kGpu));
  for (size_t k = 0; k < ci.size(); ++k) {
    if (!ci[k].requires_grad()) continue;
    INFO("input ", k);
    if (!ci[k].grad().defined()) {  // no differentiable path from this input (e.g. a comparison)
      CHECK(!gi[k].grad().defined());
      continue;
    }
    REQUIRE(gi[k].grad().defined());
    CHECK(gi[k].grad().device() == kGpu);
    expect_close(gi[k].grad(), ci[k].grad(), grad_rtol, what + " (gradient of input " + std::to_string(k) + ")");
  }
}

}  // namespace cudatest

// A CUDA test case: skipped (with the reason in "cuda: device available") without a device.
#define CUDA_TEST_CASE(name) TEST_CASE((name)*doctest::skip(!cudatest::have_gpu()))
