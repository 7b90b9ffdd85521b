// tests/core/test_gradcheck_shape.cpp: finite-difference gradient checks (float64) of the views
// (view/reshape, permute/transpose, narrow/slice, select, expand, squeeze/unsqueeze, flatten,
// contiguous, clone), the copying shape ops (cat, stack, pad, flip, index_select, gather), the
// dtype conversion, and the matrix products (matmul in all its ranks, linear).
#include <doctest/doctest.h>

#include "gradcheck.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

namespace {
using View = std::function<Tensor(const Tensor&)>;
void check_view(const char* name, const Tensor& x, const View& v) {
  INFO(name << " on " << x.str() << " strides " << shape_str(x.strides()));
  // Multiplying by a fixed non-trivial tensor after the view makes the check sensitive to where
  // each gradient element lands; exp() before it adds a saved tensor in the input's layout.
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return v(exp(in[0])); }, {x});
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return v(in[0]); }, {x});
}
}  // namespace

TEST_CASE("gradcheck: views") {
  Generator g(200);
  for (const Tensor& x :
       {leaf(urand({3, 4, 5}, g)), transposed_leaf(urand({3, 4, 5}, g), 0, 2), strided_leaf(urand({3, 4, 5}, g), 1)}) {
    check_view("view", x, [](const Tensor& t) { return t.contiguous().view({5, -1, 2}); });
    check_view("reshape", x, [](const Tensor& t) { return t.reshape({2, 30}); });
    check_view("reshape split dim", x, [](const Tensor& t) { return t.reshape({3, 2, 2, 5}); });
    check_view("permute", x, [](const Tensor& t) { return t.permute({2, 0, 1}); });
    check_view("transpose", x, [](const Tensor& t) { return t.transpose(-1, 1); });
    check_view("narrow", x, [](const Tensor& t) { return t.narrow(2, 1, 3); });
    check_view("slice step 2", x, [](const Tensor& t) { return t.slice(1, 0, 4, 2); });
    check_view("slice step 3 from negative start", x, [](const Tensor& t) { return t.slice(2, -4, 5, 3); });
    check_view("select", x, [](const Tensor& t) { return t.select(1, -2); });
    check_view("select then select", x, [](const Tensor& t) { return t.select(0, 1).select(1, 4); });
    check_view("unsqueeze", x, [](const Tensor& t) { return t.unsqueeze(2); });
    check_view("flatten", x, [](const Tensor& t) { return t.flatten(); });
    check_view("flatten 1..2", x, [](const Tensor& t) { return t.flatten(1, 2); });
    check_view("contiguous", x, [](const Tensor& t) { return t.contiguous(); });
    check_view("clone", x, [](const Tensor& t) { return t.clone(); });
  }
  Tensor s1 = leaf(urand({3, 1, 4}, g));
  check_view("squeeze", s1, [](const Tensor& t) { return t.squeeze(1); });
  check_view("expand", s1, [](const Tensor& t) { return t.expand({2, 3, 5, 4}); });
  check_view("expand with -1", s1, [](const Tensor& t) { return t.expand({-1, 6, -1}); });
  Tensor z = leaf(urand({}, g));
  check_view("0-d unsqueeze", z, [](const Tensor& t) { return t.unsqueeze(0); });
  check_view("0-d expand", z, [](const Tensor& t) { return t.expand({3, 2}); });
  // Chains of views, each on the previous.
  Tensor c = leaf(urand({4, 6}, g));
  check_view("chain", c, [](const Tensor& t) {
    return t.t().slice(0, 1, 6, 2).unsqueeze(0).expand({2, 3, 4}).reshape({6, 4}).narrow(1, 1, 2);
  });
}

TEST_CASE("gradcheck: to(dtype) passes gradients between float32 and float64") {
  Generator g(201);
  // Rounding to float32 is far coarser than a finite-difference step, so these are exact checks
  // of the chain rule instead: d/dx sum(w * convert(x)) = w, in x's dtype.
  Tensor x = leaf(urand({3, 4}, g));
  Tensor w = urand({3, 4}, g, -1, 1, DType::f32);
  sum(mul(x.to(DType::f32), w)).backward();
  CHECK(x.grad().dtype() == DType::f64);
  CHECK(values(x.grad()) == values(w));
  Tensor y = urand({5}, g, -1, 1, DType::f32);
  y.requires_grad_(true);
  Tensor w64 = urand({5}, g);
  sum(mul(y.to(DType::f64), w64)).backward();
  CHECK(y.grad().dtype() == DType::f32);
  MINIMA_CHECK_CLOSE(values(y.grad()), values(w64.to(DType::f32)), 0.0, 0.0);
  // f64 -> f64 through a float32 detour inside a larger graph still differentiates (loosely).
  Tensor z = leaf(urand({4}, g));
  GradcheckOptions loose;
  loose.eps = 1e-2;
  loose.atol = 1e-4;
  loose.rtol = 1e-3;
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].to(DType::f32).to(DType::f64); }, {z}, loose);
}

TEST_CASE("gradcheck: cat and stack") {
  Generator g(202);
  Tensor a = leaf(urand({2, 3, 4}, g)), b = transposed_leaf(urand({2, 3, 4}, g), 0, 2);
  Tensor c = leaf(urand({2, 1, 4}, g)), d = strided_leaf(urand({2, 3, 2}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return cat({in[0], in[1]}, 0); }, {a, b});
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[0]}, 1); }, {a, c});
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[2]}, 1); }, {a, c, b});
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return cat({in[0], in[1]}, -1); }, {a, d});
  // A piece that does not require grad, and a single piece.
  Tensor cst = urand({2, 3, 4}, g);
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return cat({cst, in[0]}, 2); }, {b});
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return cat({in[0]}, 0); }, {c});
  for (int64_t dim : {0, 1, 3, -1}) {
    INFO("stack dim " << dim);
    MINIMA_GRADCHECK([dim](const std::vector<Tensor>& in) { return stack({in[0], in[1], in[0]}, dim); }, {a, b});
  }
}

TEST_CASE("gradcheck: pad and flip") {
  Generator g(203);
  Tensor x = leaf(urand({2, 3, 4}, g)), xt = transposed_leaf(urand({2, 3, 4}, g), 1, 2);
  for (const Tensor& t : {x, xt}) {
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return pad(in[0], {1, 2}); }, {t});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return pad(in[0], {0, 1, 2, 0}, 0.5); }, {t});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return pad(in[0], {1, 1, 1, 1, 1, 1}); }, {t});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return flip(in[0], {0}); }, {t});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return flip(in[0], {1, 2}); }, {t});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return flip(in[0], {-1, 0}); }, {t});
  }
}

TEST_CASE("gradcheck: index_select and gather with repeated indices") {
  Generator g(204);
  Tensor x = leaf(urand({4, 5, 3}, g)), xt = transposed_leaf(urand({4, 5, 3}, g), 0, 1);
  Tensor idx = from_vector<int64_t>({3, 0, 3, 1, 3}, {5}, TensorOptions(DType::i64));
  Tensor idx0d = full({}, 2, TensorOptions(DType::i64));
  for (const Tensor& t : {x, xt}) {
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return index_select(in[0], 0, idx); }, {t});
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return index_select(in[0], 1, idx); }, {t});
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return index_select(in[0], -1, idx.slice(0, 1, 5, 2)); },
                     {t});
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return index_select(in[0], 2, idx0d); }, {t});
  }
  // gather: index smaller than the input in the other dims, values repeat.
  Tensor gi0 = randint({3, 4, 2}, 4, g);  // dim 0 (size 4)
  Tensor gi1 = randint({4, 7, 3}, 5, g);  // dim 1 (size 5), more entries than the dim has
  Tensor gi2 = randint({2, 5, 6}, 3, g);  // dim 2
  for (const Tensor& t : {x, xt}) {
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return gather(in[0], 0, gi0); }, {t});
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return gather(in[0], 1, gi1); }, {t});
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return gather(in[0], -1, gi2); }, {t});
  }
}

TEST_CASE("gradcheck: matmul in every rank") {
  Generator g(205);
  struct Case {
    Shape a, b;
  };
  std::vector<Case> cases = {
      {{5}, {5}},                 // dot
      {{4}, {4, 3}},              // vector @ matrix
      {{3, 4}, {4}},              // matrix @ vector
      {{3, 4}, {4, 5}},           // matrix @ matrix
      {{1, 1}, {1, 1}},           // size-1
      {{2, 3, 4}, {4, 5}},        // batched @ matrix
      {{3, 4}, {2, 4, 2}},        // matrix @ batched
      {{2, 1, 3, 4}, {3, 4, 2}},  // broadcasting batch dims
      {{2, 3, 4}, {4}},           // batched @ vector
      {{5}, {2, 5, 3}},           // vector @ batched
  };
  for (const auto& c : cases) {
    INFO("matmul " << shape_str(c.a) << " @ " << shape_str(c.b));
    Tensor a = leaf(urand(c.a, g)), b = leaf(urand(c.b, g));
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b});
    if (a.dim() >= 2 && b.dim() >= 2) {
      // Transposed and strided operands reach the GEMM as strided views.
      Tensor at_ = transposed_leaf(urand(c.a, g), -2, -1), bs = strided_leaf(urand(c.b, g), -2);
      MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {at_, bs});
    }
  }
  // The same tensor on both sides.
  Tensor sq = leaf(urand({4, 4}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[0].t()); }, {sq});
}

TEST_CASE("gradcheck: linear with and without bias") {
  Generator g(206);
  Tensor w = leaf(urand({4, 3}, g)), b = leaf(urand({4}, g));
  for (const Tensor& x :
       {leaf(urand({5, 3}, g)), leaf(urand({2, 3, 3}, g)), leaf(urand({3}, g)), transposed_leaf(urand({5, 3}, g))}) {
    INFO("x " << x.str());
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w});
  }
  Tensor wt = transposed_leaf(urand({4, 3}, g));
  Tensor x = leaf(urand({6, 3}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, wt, b});
}

TEST_CASE("gradcheck: the harness itself catches a wrong gradient") {
  // x * stop_gradient(x) has the value x^2 but an analytic gradient of x instead of 2x.
  Generator g(207);
  Tensor x = leaf(urand({5}, g, 0.5, 1.0));
  auto r = gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0].detach()); }, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("input 0") != std::string::npos);
  // A correct gradient passes with the same settings.
  auto ok = gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {x});
  CHECK(ok.ok);
  CHECK(ok.checked == 5);
  // An output that does not depend on a leaf requiring grad leaves it without gradient.
  Tensor y = leaf(urand({2}, g));
  auto missing = gradcheck([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x, y});
  CHECK_FALSE(missing.ok);
}
