// tests/nn/test_autocast.cpp: mixed precision (--precision bf16). Under an AutocastGuard(bf16),
// Linear and Conv2d compute in bfloat16 while the parameters stay float32 master weights whose
// gradients arrive in float32, batch norm keeps float32 statistics, and a training step lands
// within bfloat16's rounding of the float32 step.
#include <doctest/doctest.h>

#include <cmath>

#include "core/ops.h"
#include "nn/autocast.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "optim/optim.h"

using namespace minima;
using namespace minima::nn;

namespace {
// ||a - b|| / ||b|| over all elements, in double.
double rel_err(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

struct StepResult {
  double loss = 0;
  NamedTensors params, grads, buffers;
  DType logits_dtype = DType::f32;
};

// One SGD step (momentum, weight decay) of a fresh `arch` on a fixed random batch.
StepResult train_step(const std::string& arch, const Shape& chw, DType precision) {
  AutocastGuard guard(precision);
  Generator g(11);
  auto model = make_model(arch, chw, 10, g);
  model->train();
  optim::SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.weight_decay = 5e-4;
  optim::SGD opt(model->parameters(), o);
  Shape xs = chw;
  xs.insert(xs.begin(), 16);
  Generator gd(12);
  Tensor x = randn(xs, gd), y = randint({16}, 10, gd);
  opt.zero_grad();
  Tensor logits = (*model)(x);
  StepResult r;
  r.logits_dtype = logits.dtype();
  Tensor loss = cross_entropy(logits.to(DType::f32), y);
  loss.backward();
  r.loss = loss.item();
  for (auto& [name, p] : model->named_parameters()) r.grads.emplace_back(name, p.grad().clone());
  opt.step();
  r.params = model->named_parameters();
  for (auto& [name, t] : model->state_dict())
    if (name.find("running") != std::string::npos) r.buffers.emplace_back(name, t);
  return r;
}
}  // namespace

TEST_CASE("autocast: Linear and Conv2d compute in bfloat16, gradients reach the float32 weights") {
  Generator g(3);
  Linear lin(37, 19, g);
  Conv2d conv(3, 8, 3, g, Conv2dOptions{1, 1, 1, true});
  Tensor x = randn({5, 37}, g), img = randn({2, 3, 9, 9}, g);
  Tensor y32 = lin(x), c32 = conv(img);
  CHECK(autocast_dtype() == DType::f32);
  {
    AutocastGuard guard(DType::bf16);
    CHECK(autocast_dtype() == DType::bf16);
    Tensor y16 = lin(x), c16 = conv(img);
    CHECK(y16.dtype() == DType::bf16);
    CHECK(c16.dtype() == DType::bf16);
    CHECK(rel_err(y16, y32) < 1e-2);
    CHECK(rel_err(c16, c32) < 1e-2);
    add(sum(y16.to(DType::f32)), sum(c16.to(DType::f32))).backward();
    {
      AutocastGuard off(DType::f32);  // guards nest
      CHECK(autocast_dtype() == DType::f32);
    }
    CHECK(autocast_dtype() == DType::bf16);
  }
  CHECK(autocast_dtype() == DType::f32);
  for (const Tensor* p : {&lin.weight, &lin.bias, &conv.weight, &conv.bias}) {
    CHECK(p->dtype() == DType::f32);
    REQUIRE(p->grad().defined());
    CHECK(p->grad().dtype() == DType::f32);
  }
  // d sum(x W^T + b) / db = the batch size, exactly representable in bfloat16 sums of ones.
  for (double v : lin.bias.grad().to_vector<double>()) CHECK(v == 5.0);
  CHECK(nn::autocast(Tensor()).defined() == false);
  CHECK_THROWS_WITH_AS(precision_from_flag("fp16"),
                       doctest::Contains("unknown precision 'fp16' (expected fp32, or bf16"), Error);
  CHECK(precision_from_flag("bf16") == DType::bf16);
  CHECK(precision_from_flag("fp32") == DType::f32);
}

TEST_CASE("autocast: a training step in bf16 lands within bfloat16 rounding of the float32 step") {
  for (const auto& [name, shape] :
       std::vector<std::pair<std::string, Shape>>{{"mlp-bn", {1, 28, 28}}, {"smallcnn", {1, 28, 28}}}) {
    const std::string& arch = name;  // CAPTURE's lambda may not capture a structured binding in C++17
    const Shape& chw = shape;
    CAPTURE(arch);
    StepResult f = train_step(arch, chw, DType::f32), h = train_step(arch, chw, DType::bf16);
    CHECK(f.logits_dtype == DType::f32);
    CHECK(h.logits_dtype == DType::bf16);
    CHECK(h.loss == doctest::Approx(f.loss).epsilon(2e-2));
    REQUIRE(h.grads.size() == f.grads.size());
    // bfloat16 keeps 8 significant bits, and the gradients of the first layers collect that
    // rounding through every activation above them: PyTorch's autocast on the same networks is
    // off by 4-10 % there too (and by less near the output). The biases of layers that feed a
    // batch norm have a true gradient of zero (the norm removes them), so they are only checked
    // against the scale of the other gradients.
    double gmax = 0;
    for (const auto& [name, gr] : f.grads) gmax = std::max(gmax, std::sqrt(sum(mul(gr, gr)).item()));
    for (size_t i = 0; i < f.grads.size(); ++i) {
      CAPTURE(f.grads[i].first);
      const Tensor &gh = h.grads[i].second, &gf = f.grads[i].second;
      CHECK(gh.dtype() == DType::f32);  // master gradients
      CHECK(h.params[i].second.dtype() == DType::f32);
      double gnorm = std::sqrt(sum(mul(gf, gf)).item());
      if (gnorm > 1e-3 * gmax)
        CHECK(rel_err(gh, gf) < 0.15);
      else
        CHECK(std::sqrt(sum(mul(sub(gh, gf), sub(gh, gf))).item()) < 1e-2 * gmax);
      if (h.params[i].second.dim() >= 2) CHECK(rel_err(h.params[i].second, f.params[i].second) < 1e-2);
    }
    REQUIRE(!f.buffers.empty());
    for (size_t i = 0; i < f.buffers.size(); ++i) {
      CAPTURE(f.buffers[i].first);
      CHECK(h.buffers[i].second.dtype() == DType::f32);  // batch-norm statistics stay float32
      CHECK(rel_err(h.buffers[i].second, f.buffers[i].second) < 2e-2);
    }
  }
}
