// tests/core/test_autograd.cpp: semantics of the tape: accumulation into leaves, no-grad mode,
// detach, retain_graph, diamonds, requires_grad propagation, gradient dtypes; and an end-to-end
// check that a two-layer MLP built from raw tensors learns a problem that needs its hidden layer.
#include <doctest/doctest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/profiler.h"
#include "core/random.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

namespace {
Tensor make_leaf(const Shape& s, Generator& g, DType t = DType::f64) {
  Tensor x = urand(s, g, -1, 1, t);
  x.requires_grad_(true);
  return x;
}
}  // namespace

TEST_CASE("autograd: gradients accumulate into leaves across backward calls") {
  Generator g(11);
  Tensor x = make_leaf({3, 4}, g);
  std::vector<double> xv = values(x);
  sum(mul(x, x)).backward();
  std::vector<double> g1 = values(x.grad());
  for (size_t i = 0; i < xv.size(); ++i) CHECK(g1[i] == doctest::Approx(2 * xv[i]));
  sum(mul(x, x)).backward();
  std::vector<double> g2 = values(x.grad());
  for (size_t i = 0; i < xv.size(); ++i) CHECK(g2[i] == doctest::Approx(4 * xv[i]));
  // Clearing the gradient starts over.
  x.set_grad(Tensor());
  sum(mul(x, 3.0)).backward();
  CHECK(values(x.grad()) == std::vector<double>(12, 3.0));
}

TEST_CASE("autograd: the accumulated gradient does not alias the incoming one") {
  Generator g(12);
  Tensor x = make_leaf({5}, g);
  Tensor up = urand({5}, g);
  x.backward(up);  // backward on a leaf with an explicit gradient
  CHECK(values(x.grad()) == values(up));
  CHECK(x.grad().storage() != up.storage());
  x.backward(up);
  std::vector<double> uv = values(up), gv = values(x.grad());
  for (size_t i = 0; i < uv.size(); ++i) CHECK(gv[i] == 2 * uv[i]);
}

TEST_CASE("autograd: NoGradGuard records nothing and restores the mode") {
  Generator g(13);
  Tensor x = make_leaf({4}, g);
  CHECK(grad_mode_enabled());
  {
    NoGradGuard ng;
    CHECK_FALSE(grad_mode_enabled());
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_mode_enabled());
    }
    CHECK_FALSE(grad_mode_enabled());
    // Optimizer-style in-place update of a leaf is allowed here.
    x.add_(ones({4}, f64()), -0.5);
  }
  CHECK(grad_mode_enabled());
  Tensor z = mul(x, x);
  CHECK(z.requires_grad());
  CHECK_FALSE(z.is_leaf());
  CHECK(z.grad_fn() != nullptr);
}

TEST_CASE("autograd: detach shares storage and cuts the graph") {
  Generator g(14);
  Tensor x = make_leaf({6}, g);
  Tensor d = x.detach();
  CHECK(d.storage() == x.storage());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  // y = x * stop(x): the gradient is x, not 2x.
  sum(mul(x, x.detach())).backward();
  std::vector<double> xv = values(x), gv = values(x.grad());
  for (size_t i = 0; i < xv.size(); ++i) CHECK(gv[i] == xv[i]);
  // Detaching a non-leaf too.
  Tensor h = exp(x);
  CHECK(h.requires_grad());
  CHECK_FALSE(h.detach().requires_grad());
}

TEST_CASE("autograd: retain_graph allows a second backward and the graph is freed otherwise") {
  Generator g(15);
  Tensor x = make_leaf({3}, g);
  Tensor y = sum(exp(mul(x, 2.0)));
  y.backward(Tensor(), /*retain_graph=*/true);
  std::vector<double> g1 = values(x.grad());
  y.backward();  // works: graph retained; frees it now
  std::vector<double> g2 = values(x.grad());
  for (size_t i = 0; i < g1.size(); ++i) CHECK(g2[i] == doctest::Approx(2 * g1[i]));
  check_error([&] { y.backward(); }, {"second time", "retain_graph"});
  // Without retain_graph the very first backward already frees it.
  Tensor z = sum(square(x));
  z.backward();
  check_error([&] { z.backward(); }, {"second time"});
}

TEST_CASE("autograd: the graph releases saved tensors after backward") {
  Generator g(16);
  Tensor x = make_leaf({8}, g);
  std::weak_ptr<Storage> saved;
  Tensor y;
  {
    Tensor h = exp(x);  // exp saves its output and mul saves both operands: h's storage
    saved = h.storage();
    y = sum(mul(h, h));
  }
  CHECK_FALSE(saved.expired());  // only the graph keeps h's values alive now
  y.backward(Tensor(), /*retain_graph=*/true);
  CHECK_FALSE(saved.expired());
  y.backward();
  CHECK(y.grad_fn()->fn == nullptr);
  CHECK(saved.expired());
}

TEST_CASE("autograd: a tensor used twice sums its gradients (diamond)") {
  Generator g(17);
  Tensor x = make_leaf({2, 3}, g);
  Tensor u = mul(x, 2.0);                  // shared intermediate
  Tensor y = sum(add(mul(u, u), exp(u)));  // two paths from u
  y.backward();
  std::vector<double> xv = values(x), gv = values(x.grad());
  for (size_t i = 0; i < xv.size(); ++i) {
    double uu = 2 * xv[i];
    CHECK(gv[i] == doctest::Approx((2 * uu + std::exp(uu)) * 2).epsilon(1e-12));
  }
  // The same leaf as both operands.
  Tensor z = make_leaf({4}, g);
  sum(mul(z, z)).backward();
  std::vector<double> zv = values(z), zg = values(z.grad());
  for (size_t i = 0; i < zv.size(); ++i) CHECK(zg[i] == doctest::Approx(2 * zv[i]));
  // A view of a leaf used next to the leaf itself.
  Tensor w = make_leaf({3, 3}, g);
  sum(add(w, w.t())).backward();
  CHECK(values(w.grad()) == std::vector<double>(9, 2.0));
}

TEST_CASE("autograd: requires_grad propagation and which leaves receive gradients") {
  Generator g(18);
  Tensor a = make_leaf({3}, g);
  Tensor b = urand({3}, g);  // does not require grad
  CHECK(add(a, b).requires_grad());
  CHECK(add(b, a).requires_grad());
  CHECK_FALSE(add(b, b).requires_grad());
  CHECK_FALSE(add(b, b).grad_fn());
  CHECK(a.slice(0, 0, 2).requires_grad());
  CHECK(a.unsqueeze(0).t().requires_grad());
  CHECK_FALSE(argmax(a, 0).requires_grad());
  CHECK_FALSE(gt(a, b).requires_grad());
  Tensor y = sum(mul(a, b));
  y.backward();
  CHECK(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  CHECK(values(a.grad()) == values(b));
  // Intermediates do not keep gradients.
  Tensor h = exp(a);
  sum(h).backward();
  CHECK_FALSE(h.grad().defined());
  // Integer tensors cannot require grad.
  Tensor i = arange(3, TensorOptions(DType::i64));
  check_error([&] { i.requires_grad_(true); }, {"int64"});
}

TEST_CASE("autograd: gradients arrive in the leaf's dtype through mixed-dtype ops") {
  Generator g(19);
  Tensor a = make_leaf({4}, g, DType::f32);
  Tensor b = make_leaf({4}, g, DType::f64);
  Tensor y = sum(mul(a, b));
  CHECK(y.dtype() == DType::f64);
  y.backward();
  CHECK(a.grad().dtype() == DType::f32);
  CHECK(b.grad().dtype() == DType::f64);
  std::vector<double> av = values(a), bv = values(b), ga = values(a.grad()), gb = values(b.grad());
  for (size_t i = 0; i < 4; ++i) {
    CHECK(ga[i] == doctest::Approx(bv[i]).epsilon(1e-6));
    CHECK(gb[i] == av[i]);
  }
  // to(dtype) is differentiable both ways.
  Tensor c = make_leaf({3}, g, DType::f32);
  Tensor d = c.to(DType::f64);
  CHECK(d.requires_grad());
  sum(mul(d, 3.0)).backward();
  CHECK(c.grad().dtype() == DType::f32);
  CHECK(values(c.grad()) == std::vector<double>(3, 3.0));
}

TEST_CASE("autograd: backward with an explicit gradient on a non-scalar output") {
  Generator g(20);
  Tensor x = make_leaf({2, 3}, g);
  Tensor y = mul(x, x);
  Tensor up = urand({2, 3}, g);
  y.backward(up);
  std::vector<double> xv = values(x), uv = values(up), gv = values(x.grad());
  for (size_t i = 0; i < xv.size(); ++i) CHECK(gv[i] == doctest::Approx(2 * xv[i] * uv[i]));
  // A gradient of another dtype is converted to the output's.
  Tensor x2 = make_leaf({3}, g);
  Tensor y2 = mul(x2, 2.0);
  y2.backward(ones({3}, f32()));
  CHECK(x2.grad().dtype() == DType::f64);
  CHECK(values(x2.grad()) == std::vector<double>(3, 2.0));
}

TEST_CASE("autograd: gradients through views reach the base leaf") {
  Generator g(21);
  Tensor x = make_leaf({4, 5}, g);
  Tensor y = add(sum(x.slice(1, 1, 5, 2)), mul(sum(x.select(0, 2)), 10.0));
  y.backward();
  std::vector<double> gv = values(x.grad());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      double want = (j % 2 == 1 ? 1.0 : 0.0) + (i == 2 ? 10.0 : 0.0);
      CHECK(gv[size_t(i * 5 + j)] == want);
    }
}

// ---------------------------------------------------------------------------------------------
// End to end: XOR-like data that a linear model cannot fit; the hidden layer must learn.
// ---------------------------------------------------------------------------------------------
TEST_CASE("autograd: a two-layer MLP trained by hand learns a non-linear problem") {
  Generator g(22);
  const int64_t N = 256, D = 2, H = 32, C = 2;
  // Points in [-1, 1]^2 away from the axes; label = whether x and y have the same sign.
  std::vector<float> xs;
  std::vector<int64_t> ys;
  while (int64_t(ys.size()) < N) {
    double a = 2 * g.uniform() - 1, b = 2 * g.uniform() - 1;
    if (std::abs(a) < 0.1 || std::abs(b) < 0.1) continue;
    xs.push_back(float(a));
    xs.push_back(float(b));
    ys.push_back((a > 0) == (b > 0) ? 1 : 0);
  }
  Tensor X = from_vector(xs, {N, D}, f32());
  Tensor Y = from_vector(ys, {N}, TensorOptions(DType::i64));

  Tensor w1 = mul(randn({H, D}, g), std::sqrt(2.0 / D));
  Tensor b1 = zeros({H});
  Tensor w2 = mul(randn({C, H}, g), std::sqrt(1.0 / H));
  Tensor b2 = zeros({C});
  std::vector<Tensor> params = {w1, b1, w2, b2};
  for (auto& p : params) p.requires_grad_(true);

  auto forward = [&] { return linear(relu(linear(X, w1, b1)), w2, b2); };
  auto accuracy = [&] {
    NoGradGuard ng;
    return double(count_correct(forward(), Y)) / double(N);
  };
  // The untrained MLP is far from the target: the final accuracy has to come from training.
  double acc0 = accuracy();
  CHECK(acc0 < 0.8);

  double lr = 0.5, first_loss = 0, last_loss = 0;
  for (int step = 0; step < 300; ++step) {
    Tensor loss = cross_entropy(forward(), Y);
    if (step == 0) first_loss = loss.item();
    last_loss = loss.item();
    for (auto& p : params) p.set_grad(Tensor());
    loss.backward();
    NoGradGuard ng;
    for (auto& p : params) p.add_(p.grad(), -lr);
  }
  double acc = accuracy();
  CHECK(acc > 0.95);
  CHECK(last_loss < 0.5 * first_loss);
}

TEST_CASE("autograd: very long graphs are freed and differentiated without deep recursion") {
  // 10^5 chained ops: backward is iterative and so is releasing the graph (a recursive release
  // through nested shared_ptr destructors would overflow the stack).
  Tensor x = ones({1}, f64());
  x.requires_grad_(true);
  const int n = 100000;
  {
    Tensor y = x;
    for (int i = 0; i < n; ++i) y = add(y, 1.0);
    CHECK(y.item() == 1.0 + n);
  }  // the whole graph dies here, without backward
  Tensor y = x;
  for (int i = 0; i < n; ++i) y = mul(y, 1.0);
  sum(y).backward();
  CHECK(x.grad().item() == 1.0);
}

TEST_CASE("autograd: a transposed operand's gradient arrives in its parameter's layout, bitwise unchanged") {
  // Linear multiplies by weight.t(). The gradient of that column-major operand is computed
  // column-major, so it reaches the row-major weight as a dense tensor: accumulating it is a
  // dense add (a strided one is many times slower). Every element is the same sum in the same
  // order as the product the backward pass computed before, so the values are bitwise equal.
  Generator g(20261129);
  for (DType t : {DType::f32, DType::f64}) {
    Tensor x = urand({300, 50}, g, -1, 1, t);  // K = 300 in the weight gradient: two K blocks
    Tensor w = make_leaf({70, 50}, g, t);
    Tensor gy = urand({300, 70}, g, -1, 1, t);
    matmul(x, w.t()).backward(gy);
    const Tensor before = matmul(x.t(), gy).t();  // what the backward pass used to compute
    CHECK(values(w.grad()) == values(before));
    {
      ProfileSession session;
      matmul(x, w.t()).backward(gy);  // accumulates into w.grad
      bool dense_add = false;
      for (const ProfileRow& r : session.rows()) {
        CHECK_MESSAGE(r.name.find("strided") == std::string::npos, r.name);
        dense_add = dense_add || r.name == str("binary add ", t);
      }
      CHECK(dense_add);
    }
    CHECK(values(w.grad()) == values(add(before, before)));
  }
}

TEST_CASE("autograd: linear adds its weight gradient into the existing buffer, as matmul and add would") {
  // linear's backward (record_into) is offered the weight's existing gradient and adds the
  // product into it (beta = 1) instead of returning a gradient to add. The first backward has no
  // buffer to offer and the second one has; both must give matmul + add's values, bitwise where
  // the product is one K block (100 rows) and to rounding where it is two (300 rows: the buffer
  // is added after the first block instead of after the whole sum).
  Generator g(20261202);
  for (DType t : {DType::f32, DType::f64})
    for (int64_t rows : {100, 300}) {
      CAPTURE(t);
      CAPTURE(rows);
      Tensor x = make_leaf({rows, 50}, g, t), w = make_leaf({70, 50}, g, t), b = make_leaf({70}, g, t);
      Tensor xc = x.detach().clone().requires_grad_(true), wc = w.detach().clone().requires_grad_(true),
             bc = b.detach().clone().requires_grad_(true);
      Tensor gy = urand({rows, 70}, g, -1, 1, t);
      linear(x, w, b).backward(gy);
      add(matmul(xc, wc.t()), bc).backward(gy);
      CHECK(values(w.grad()) == values(wc.grad()));
      CHECK(values(x.grad()) == values(xc.grad()));
      CHECK(values(b.grad()) == values(bc.grad()));
      const void* buffer = w.grad().data_ptr();
      const uint64_t version = w.grad().version();
      Tensor y = linear(x, w, b);
      int64_t adds = -1;
      {
        ProfileSession session;
        y.backward(gy);
        for (const ProfileRow& r : session.rows())
          if (r.name == str("binary add ", t)) adds = r.calls;
      }
      CHECK(adds == 2);  // into x's and b's gradients; w's was the product's own
      add(matmul(xc, wc.t()), bc).backward(gy);
      CHECK(w.grad().data_ptr() == buffer);
      CHECK(w.grad().version() == version + 1);
      if (rows <= 256) {
        CHECK(values(w.grad()) == values(wc.grad()));
      } else {
        const double tol = t == DType::f32 ? 1e-5 : 1e-13;
        const std::vector<double> got = values(w.grad()), want = values(wc.grad());
        for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
      }
      CHECK(values(x.grad()) == values(xc.grad()));
      CHECK(values(b.grad()) == values(bc.grad()));
    }
  // A buffer the product cannot write in place (a transposed view) is not offered: the gradient
  // is returned and added as before.
  Generator g2(7);
  Tensor x = urand({40, 30}, g2, -1, 1, DType::f32), w = make_leaf({20, 30}, g2, DType::f32);
  Tensor stored = urand({30, 20}, g2, -1, 1, DType::f32);
  const Tensor start = stored.t().clone();  // its values, before the backward adds to them
  w.set_grad(stored.t());
  REQUIRE_FALSE(w.grad().is_contiguous());
  Tensor gy = urand({40, 20}, g2, -1, 1, DType::f32);
  linear(x, w).backward(gy);
  CHECK(values(w.grad()) == values(add(start, matmul(x.t(), gy).t())));
}

TEST_CASE("autograd: a saved tensor changed in place before backward is refused, an unsaved one is not") {
  Generator g(31);
  // exp saves its output; changing it through a detached alias changes the same memory.
  {
    Tensor x = make_leaf({2}, g);
    Tensor y = exp(x);
    y.detach().fill_(5);
    check_error([&] { sum(y).backward(); }, {"exp", "changed in place", "1 in-place write"});
  }
  // mul saves the other operand for each side that needs a gradient.
  {
    Tensor w = make_leaf({3}, g), c = urand({3}, g);
    Tensor y = mul(w, c);
    c.fill_(0);
    check_error([&] { sum(y).backward(); }, {"mul", "[3]"});
  }
  // A write under NoGradGuard to a slice of a saved leaf is a write to the leaf's memory.
  {
    Tensor x = make_leaf({4}, g);
    Tensor y = sum(square(x));
    {
      NoGradGuard ng;
      x.slice(0, 0, 1).fill_(100);
    }
    check_error([&] { y.backward(); }, {"square"});
  }
  // add saves nothing, and mul(w, c) with c not needing a gradient does not need w: changing
  // them is harmless, and the gradients are the right ones.
  {
    Tensor a = make_leaf({3}, g), c = urand({3}, g);
    const std::vector<double> cv = values(c);
    Tensor y = sum(add(mul(a, c), a));
    {
      NoGradGuard ng;
      a.fill_(3);
    }
    y.backward();
    std::vector<double> want(3);
    for (size_t i = 0; i < 3; ++i) want[i] = cv[i] + 1;
    CHECK(values(a.grad()) == want);
  }
  // The graph is freed after backward, so changing the tensors afterwards is fine.
  {
    Tensor x = make_leaf({2}, g);
    Tensor y = sum(exp(x));
    y.backward();
    NoGradGuard ng;
    x.fill_(0);
    CHECK(values(x) == std::vector<double>{0, 0});
  }
}

TEST_CASE("autograd: pow(tensor, tensor) has finite gradients at a zero base, as PyTorch's") {
  // d/da a^b at b == 0 is 0; d/db a^b at a == 0 and b >= 0 is 0 (a^b log a is 0 * -inf there).
  Tensor a = from_vector<double>({0, 0, 2}, {3}, f64()), b = from_vector<double>({0, 2, 3}, {3}, f64());
  a.requires_grad_();
  b.requires_grad_();
  sum(pow(a, b)).backward();
  CHECK(values(a.grad()) == std::vector<double>{0, 0, 12});
  const std::vector<double> gb = values(b.grad());
  CHECK(gb[0] == 0);
  CHECK(gb[1] == 0);
  CHECK(gb[2] == doctest::Approx(8 * std::log(2.0)).epsilon(1e-14));
  // An integer base with a floating exponent: the base's log is taken in the result's dtype.
  Tensor e = from_vector<double>({1, 2}, {2}, f64());
  e.requires_grad_();
  Tensor base = from_vector<int64_t>({3, 0}, {2});
  sum(pow(base, e)).backward();
  CHECK(values(e.grad())[0] == doctest::Approx(3 * std::log(3.0)).epsilon(1e-14));
  CHECK(values(e.grad())[1] == 0);
}
