// tests/optim/test_optim.cpp: SGD and Adam steps against updates computed by hand in double
// precision (torch.optim's formulas), the flat parameter buffer, and the schedules' boundaries.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>

#include "core/ops.h"
#include "optim/optim.h"
#include "optim/schedule.h"

using namespace minima;
using namespace minima::optim;

namespace {
// Two f64 parameters with known values; grads set by hand each step.
struct Problem {
  Tensor a = from_vector<double>({1.0, -2.0, 0.5}, {3}, DType::f64).requires_grad_();
  Tensor b = from_vector<double>({0.25, 4.0}, {2, 1}, DType::f64).requires_grad_();
  std::vector<Tensor> params() { return {a, b}; }
};
std::vector<double> cat_values(const std::vector<Tensor>& ts) {
  std::vector<double> out;
  for (auto& t : ts)
    for (double v : t.to_vector<double>()) out.push_back(v);
  return out;
}
// The gradient of step k: a deterministic function so the reference can recompute it.
std::vector<double> grad_at(int k) {
  std::vector<double> g;
  g.reserve(5);
  for (int i = 0; i < 5; ++i) g.push_back(std::sin(1.0 + 0.7 * i + 1.3 * k));
  return g;
}
void set_grads(const std::vector<Tensor>& ps, int k) {
  auto g = grad_at(k);
  Tensor ga = from_vector<double>({g[0], g[1], g[2]}, {3}, DType::f64);
  Tensor gb = from_vector<double>({g[3], g[4]}, {2, 1}, DType::f64);
  ps[0].grad().copy_(ga);  // the flat gradient views already exist
  ps[1].grad().copy_(gb);
}
}  // namespace

TEST_CASE("SGD matches torch.optim.SGD's update rule (momentum, dampening, nesterov, weight decay)") {
  struct Cfg {
    double lr, mom, damp, wd;
    bool nest;
  };
  // Every combination the kernels compile separately: weight decay or not, momentum or not, and
  // with momentum, Nesterov or not (the first step of each is its own case too).
  for (Cfg c : {Cfg{0.1, 0, 0, 0, false}, Cfg{0.1, 0, 0, 0.01, false}, Cfg{0.1, 0.9, 0, 0, false},
                Cfg{0.1, 0.9, 0, 5e-4, false}, Cfg{0.05, 0.9, 0.3, 0.01, false}, Cfg{0.1, 0.8, 0, 0, true},
                Cfg{0.1, 0.8, 0, 0.1, true}}) {
    CAPTURE(c.mom);
    CAPTURE(c.wd);
    CAPTURE(c.nest);
    Problem pr;
    std::vector<double> p = cat_values(pr.params()), buf(5, 0.0);
    SGDOptions o;
    o.lr = c.lr;
    o.momentum = c.mom;
    o.dampening = c.damp;
    o.weight_decay = c.wd;
    o.nesterov = c.nest;
    SGD opt(pr.params(), o);
    for (int k = 0; k < 4; ++k) {
      opt.zero_grad();
      set_grads(pr.params(), k);
      opt.step();
      auto g = grad_at(k);
      for (int i = 0; i < 5; ++i) {
        double d = g[i] + c.wd * p[i];
        if (c.mom != 0) {
          buf[i] = k == 0 ? d : c.mom * buf[i] + (1 - c.damp) * d;
          d = c.nest ? d + c.mom * buf[i] : buf[i];
        }
        p[i] -= c.lr * d;
      }
      auto got = cat_values(pr.params());
      for (int i = 0; i < 5; ++i) CHECK(got[i] == doctest::Approx(p[i]).epsilon(1e-14));
    }
    CHECK(opt.steps() == 4);
    if (c.mom != 0) {
      auto st = opt.state();
      REQUIRE(st.size() == 2);
      CHECK(st[0].slot == "momentum_buffer");
      auto got = cat_values({st[0].tensor, st[1].tensor});
      for (int i = 0; i < 5; ++i) CHECK(got[i] == doctest::Approx(buf[i]).epsilon(1e-14));
    }
  }
}

TEST_CASE("Adam matches torch.optim.Adam's update rule") {
  for (double wd : {0.1, 0.0}) {  // the kernel compiles each case separately
    CAPTURE(wd);
    Problem pr;
    std::vector<double> p = cat_values(pr.params()), m(5, 0.0), v(5, 0.0);
    AdamOptions o;
    o.lr = 0.01;
    o.weight_decay = wd;
    Adam opt(pr.params(), o);
    for (int k = 0; k < 5; ++k) {
      opt.zero_grad();
      set_grads(pr.params(), k);
      opt.step();
      auto g = grad_at(k);
      int t = k + 1;
      for (int i = 0; i < 5; ++i) {
        double d = g[i] + o.weight_decay * p[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * d;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * d * d;
        double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
        p[i] -= o.lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.eps);
      }
      auto got = cat_values(pr.params());
      for (int i = 0; i < 5; ++i) CHECK(got[i] == doctest::Approx(p[i]).epsilon(1e-13));
    }
  }
}

TEST_CASE("parameters live in one flat buffer, backward accumulates into the flat gradient") {
  Tensor w = from_vector<float>({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Tensor b = from_vector<float>({0.5f, -0.5f}, {2}).requires_grad_();
  SGDOptions o;
  o.lr = 1.0;
  SGD opt({w, b}, o);
  REQUIRE(opt.flat().groups().size() == 1);
  const auto& grp = opt.flat().groups()[0];
  CHECK(grp.params.numel() == 6);
  CHECK(w.storage() == grp.params.storage());
  CHECK(b.storage() == grp.params.storage());
  CHECK(w.to_vector<float>() == std::vector<float>{1, 2, 3, 4});  // values preserved
  Tensor x = from_vector<float>({1, 1}, {1, 2});
  sum(linear(x, w, b)).backward();
  CHECK(grp.grads.to_vector<float>() == std::vector<float>{1, 1, 1, 1, 1, 1});
  opt.step();
  CHECK(w.to_vector<float>() == std::vector<float>{0, 1, 2, 3});
  CHECK(b.to_vector<float>() == std::vector<float>{-0.5f, -1.5f});
  opt.zero_grad();
  CHECK(grp.grads.to_vector<float>() == std::vector<float>(6, 0.0f));
  // A gradient replaced from outside is copied into the flat buffer at the next step.
  w.set_grad(full({2, 2}, 2.0));
  opt.step();
  CHECK(w.to_vector<float>() == std::vector<float>{-2, -1, 0, 1});
  CHECK(b.to_vector<float>() == std::vector<float>{-0.5f, -1.5f});
}

TEST_CASE("a step between forward and backward is refused: the graph saved the old weights") {
  for (bool adam : {false, true}) {
    const char* name = adam ? "Adam" : "SGD";
    INFO(name);
    Tensor w = from_vector<double>({1, 2}, {1, 2}, DType::f64).requires_grad_();
    std::unique_ptr<Optimizer> opt;
    if (adam)
      opt = std::make_unique<Adam>(std::vector<Tensor>{w}, AdamOptions{});
    else
      opt = std::make_unique<SGD>(std::vector<Tensor>{w}, SGDOptions{});
    Tensor x = from_vector<double>({3, 4}, {2, 1}, DType::f64).requires_grad_();
    Tensor loss = sum(matmul(w, x));  // matmul saves w for x's gradient
    sum(matmul(w, x)).backward();     // a first step's gradients
    opt->step();
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("changed in place"), Error);
  }
}

TEST_CASE("optimizer rejects bad options and moved parameters") {
  Tensor w = zeros({3}).requires_grad_();
  SGDOptions bad;
  bad.nesterov = true;
  CHECK_THROWS_AS(SGD({w}, bad), Error);
  CHECK_THROWS_WITH_AS(SGD({w, w}, SGDOptions{}), doctest::Contains("twice"), Error);
  SGD opt({w}, SGDOptions{});
  // Re-pointing the parameter at other storage (as a device move would) is detected.
  Tensor other = ones({3});
  w.impl()->storage = other.storage();
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("moved"), Error);
}

TEST_CASE("optimizers refuse computed tensors and rates or decays that are not finite") {
  Tensor w = zeros({3}).requires_grad_();
  // A computed tensor would be stepped in a copy nothing reads (PyTorch: "can't optimize a non-leaf").
  CHECK_THROWS_WITH_AS(SGD({mul(w, 2.0)}, SGDOptions{}), doctest::Contains("not a leaf"), Error);
  SGD sgd({w}, SGDOptions{});
  for (double lr : {-1.0, double(NAN), double(INFINITY)})
    CHECK_THROWS_WITH_AS(sgd.set_lr(lr), doctest::Contains("learning rate must be finite and >= 0"), Error);
  CHECK(sgd.lr() == 0.1);  // unchanged
  sgd.set_lr(0.01);
  CHECK(sgd.lr() == 0.01);
  SGDOptions damp;
  damp.dampening = NAN;
  CHECK_THROWS_WITH_AS(SGD({w}, damp), doctest::Contains("dampening"), Error);
  AdamOptions wd;
  wd.weight_decay = NAN;
  CHECK_THROWS_WITH_AS(Adam({w}, wd), doctest::Contains("weight_decay"), Error);
  wd.weight_decay = -1;
  CHECK_THROWS_WITH_AS(Adam({w}, wd), doctest::Contains("weight_decay"), Error);
  Adam adam({w}, AdamOptions{});
  CHECK_THROWS_AS(adam.set_lr(NAN), Error);
}

TEST_CASE("schedules at their boundaries") {
  MultiStepLR ms(0.1, {150, 250}, 0.1);
  CHECK(ms.lr_at(0) == doctest::Approx(0.1));
  CHECK(ms.lr_at(149) == doctest::Approx(0.1));
  CHECK(ms.lr_at(150) == doctest::Approx(0.01));
  CHECK(ms.lr_at(249) == doctest::Approx(0.01));
  CHECK(ms.lr_at(250) == doctest::Approx(0.001));
  CHECK(ms.lr_at(349) == doctest::Approx(0.001));
  CHECK(paper_milestones(350) == std::vector<int64_t>{150, 250});
  CHECK(paper_milestones(60) == std::vector<int64_t>{26, 43});
  CHECK(paper_milestones(2) == std::vector<int64_t>{1, 1});
  CHECK(paper_milestones(1) == std::vector<int64_t>{1, 1});  // epoch 0 keeps the base rate
  ExponentialLR ex(0.01, 0.95);
  CHECK(ex.lr_at(0) == doctest::Approx(0.01));
  CHECK(ex.lr_at(1) == doctest::Approx(0.0095));
  CHECK(ex.lr_at(10) == doctest::Approx(0.01 * std::pow(0.95, 10)));
  CosineLR cs(0.1, 100, 0.001);
  CHECK(cs.lr_at(0) == doctest::Approx(0.1));
  CHECK(cs.lr_at(50) == doctest::Approx(0.0505));
  CHECK(cs.lr_at(100) == doctest::Approx(0.001));
  CHECK(make_schedule("constant", 0.3, 10)->lr_at(9) == doctest::Approx(0.3));
  CHECK(make_schedule("multistep", 0.1, 350)->lr_at(150) == doctest::Approx(0.01));
  CHECK(make_schedule("exponential", 1.0, 10)->lr_at(2) == doctest::Approx(0.9025));
  CHECK_THROWS_WITH_AS(make_schedule("linear", 0.1, 10), doctest::Contains("cosine"), Error);
  CHECK_THROWS_AS(MultiStepLR(0.1, {250, 150}), Error);
}
