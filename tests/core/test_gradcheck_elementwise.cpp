// tests/core/test_gradcheck_elementwise.cpp: finite-difference gradient checks (float64) of the
// unary and binary elementwise ops, where, and the reductions, on odd shapes, size-1 dims,
// broadcasting, 0-d tensors and non-contiguous (transposed, strided, expanded) inputs.
// Inputs are built to stay clear of kinks and ties (relu/abs at 0, clamp bounds, max ties).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "gradcheck.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

namespace {

// The input layouts every unary op is checked on; `make` produces values of a given shape.
// Each entry gives the leaf and a transform applied inside f (identity, or an expand).
struct Layout {
  const char* name;
  Tensor leaf;
  std::function<Tensor(const Tensor&)> view;
};

std::vector<Layout> unary_layouts(const std::function<Tensor(const Shape&)>& make) {
  auto id = [](const Tensor& t) { return t; };
  std::vector<Layout> ls;
  ls.push_back({"contiguous [3, 4, 5]", leaf(make({3, 4, 5})), id});
  ls.push_back({"transposed [4, 7]", transposed_leaf(make({4, 7})), id});
  ls.push_back({"strided [5, 3]", strided_leaf(make({5, 3}), 0), id});
  ls.push_back({"size-1 dims [1, 7, 1]", leaf(make({1, 7, 1})), id});
  ls.push_back({"0-d", leaf(make({})), id});
  ls.push_back({"expanded [3, 1] -> [2, 3, 4]", leaf(make({3, 1})), [](const Tensor& t) {
                  return t.expand({2, 3, 4});
                }});
  return ls;
}

// (op comes last so that a lambda written in the call formats as the call's body.)
void check_unary(const char* op_name, const std::function<Tensor(const Shape&)>& make,
                 const std::function<Tensor(const Tensor&)>& op) {
  for (auto& l : unary_layouts(make)) {
    INFO(op_name << " on " << l.name);
    auto view = l.view;
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return op(view(in[0])); }, {l.leaf});
  }
}

// Replaces values within `margin` of any of `points` by a value `margin` away from it.
Tensor avoiding(const Tensor& t, const std::vector<double>& points, double margin) {
  std::vector<double> v = values(t);
  for (double& x : v)
    for (double p : points)
      if (std::abs(x - p) < margin) x = x < p ? p - margin : p + margin;
  return from_vector(v, t.shape(), f64());
}

}  // namespace

TEST_CASE("gradcheck: smooth unary ops on any input") {
  Generator g(100);
  auto any = [&](const Shape& s) { return urand(s, g, -2.0, 2.0); };
  check_unary("neg", any, [](const Tensor& x) { return neg(x); });
  check_unary("exp", any, [](const Tensor& x) { return exp(x); });
  check_unary("tanh", any, [](const Tensor& x) { return tanh(x); });
  check_unary("sigmoid", any, [](const Tensor& x) { return sigmoid(x); });
  check_unary("softplus", any, [](const Tensor& x) { return softplus(x); });
  check_unary("square", any, [](const Tensor& x) { return square(x); });
  check_unary("pow 2", any, [](const Tensor& x) { return pow(x, 2.0); });
  check_unary("pow 3", any, [](const Tensor& x) { return pow(x, 3.0); });
  check_unary("add scalar", any, [](const Tensor& x) { return add(x, 1.25); });
  check_unary("mul scalar", any, [](const Tensor& x) { return mul(x, -0.75); });
  check_unary("scalar minus x", any, [](const Tensor& x) { return 2.5 - x; });
  check_unary("x divided by scalar", any, [](const Tensor& x) { return x / 3.0; });
}

TEST_CASE("gradcheck: softplus and sigmoid far in the tails") {
  Generator g(101);
  auto tails = [&](const Shape& s) { return away_from_zero(s, g, 8.0, 30.0); };
  check_unary("sigmoid", tails, [](const Tensor& x) { return sigmoid(x); });
  check_unary("softplus", tails, [](const Tensor& x) { return softplus(x); });
}

TEST_CASE("gradcheck: unary ops on positive inputs") {
  Generator g(102);
  auto pos = [&](const Shape& s) { return urand(s, g, 0.5, 2.0); };
  check_unary("log", pos, [](const Tensor& x) { return log(x); });
  check_unary("sqrt", pos, [](const Tensor& x) { return sqrt(x); });
  check_unary("reciprocal", pos, [](const Tensor& x) { return reciprocal(x); });
  check_unary("pow 0.5", pos, [](const Tensor& x) { return pow(x, 0.5); });
  check_unary("pow -1.5", pos, [](const Tensor& x) { return pow(x, -1.5); });
  check_unary("pow 0", pos, [](const Tensor& x) { return add(pow(x, 0.0), x); });
  auto above_m1 = [&](const Shape& s) { return urand(s, g, -0.5, 2.0); };
  check_unary("log1p", above_m1, [](const Tensor& x) { return log1p(x); });
}

TEST_CASE("gradcheck: kinked unary ops away from their kinks") {
  Generator g(103);
  auto nz = [&](const Shape& s) { return away_from_zero(s, g, 0.1, 2.0); };
  check_unary("relu", nz, [](const Tensor& x) { return relu(x); });
  check_unary("abs", nz, [](const Tensor& x) { return abs(x); });
  auto off_bounds = [&](const Shape& s) { return avoiding(urand(s, g, -1.0, 1.0), {-0.3, 0.4}, 0.02); };
  check_unary("clamp", off_bounds, [](const Tensor& x) { return clamp(x, -0.3, 0.4); });
  const double inf = std::numeric_limits<double>::infinity();
  check_unary("clamp min only", off_bounds, [inf](const Tensor& x) { return clamp(x, -0.3, inf); });
  check_unary("clamp max only", off_bounds, [inf](const Tensor& x) { return clamp(x, -inf, 0.4); });
}

// ---------------------------------------------------------------------------------------------
// Binary ops
// ---------------------------------------------------------------------------------------------
namespace {
struct Pair {
  const char* name;
  Tensor a, b;
};

// Pairs of inputs covering broadcasting, 0-d, size-1 and non-contiguous operands.
std::vector<Pair> binary_pairs(const std::function<Tensor(const Shape&)>& ma,
                               const std::function<Tensor(const Shape&)>& mb) {
  std::vector<Pair> ps;
  ps.push_back({"same shape [3, 5]", leaf(ma({3, 5})), leaf(mb({3, 5}))});
  ps.push_back({"[2, 3, 4] with [4]", leaf(ma({2, 3, 4})), leaf(mb({4}))});
  ps.push_back({"[2, 1, 4] with [3, 1]", leaf(ma({2, 1, 4})), leaf(mb({3, 1}))});
  ps.push_back({"[5] with 0-d", leaf(ma({5})), leaf(mb({}))});
  ps.push_back({"0-d with [2, 3]", leaf(ma({})), leaf(mb({2, 3}))});
  ps.push_back({"[1, 1] with [1]", leaf(ma({1, 1})), leaf(mb({1}))});
  ps.push_back({"transposed with strided [4, 3]", transposed_leaf(ma({4, 3})), strided_leaf(mb({4, 3}))});
  ps.push_back({"strided [3, 1] with transposed [3, 4]", strided_leaf(ma({3, 1}), 0), transposed_leaf(mb({3, 4}))});
  return ps;
}

void check_binary(const char* op_name, const std::function<Tensor(const Shape&)>& ma,
                  const std::function<Tensor(const Shape&)>& mb,
                  const std::function<Tensor(const Tensor&, const Tensor&)>& op) {
  for (auto& p : binary_pairs(ma, mb)) {
    INFO(op_name << " on " << p.name);
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {p.a, p.b});
    // Only one side requiring grad.
    Tensor a_const = p.a.detach();
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a_const, p.b});
  }
}
}  // namespace

TEST_CASE("gradcheck: add sub mul div with broadcasting") {
  Generator g(104);
  auto any = [&](const Shape& s) { return urand(s, g, -2.0, 2.0); };
  auto nz = [&](const Shape& s) { return away_from_zero(s, g, 0.5, 2.0); };
  check_binary("add", any, any, [](const Tensor& a, const Tensor& b) { return add(a, b); });
  check_binary("sub", any, any, [](const Tensor& a, const Tensor& b) { return sub(a, b); });
  check_binary("mul", any, any, [](const Tensor& a, const Tensor& b) { return mul(a, b); });
  check_binary("div", any, nz, [](const Tensor& a, const Tensor& b) { return div(a, b); });
  check_binary("operators", any, any, [](const Tensor& a, const Tensor& b) { return (a + b) * a - b / (b * b + 1.0); });
}

TEST_CASE("gradcheck: pow with a tensor exponent") {
  Generator g(105);
  auto pos = [&](const Shape& s) { return urand(s, g, 0.5, 2.0); };
  auto expo = [&](const Shape& s) { return urand(s, g, -1.5, 2.5); };
  check_binary("pow", pos, expo, [](const Tensor& a, const Tensor& b) { return pow(a, b); });
}

TEST_CASE("gradcheck: maximum and minimum without ties") {
  // a and b take disjoint values from one shuffled grid, so no pair is tied.
  Generator g(106);
  for (auto shapes : std::vector<std::pair<Shape, Shape>>{{{3, 5}, {3, 5}},
                                                          {{2, 3, 4}, {4}},
                                                          {{2, 1, 4}, {3, 1}},
                                                          {{5}, {}},
                                                          {{1, 1}, {1}}}) {
    int64_t na = numel_of(shapes.first), nb = numel_of(shapes.second);
    Tensor all = distinct({na + nb}, g);
    Tensor a = leaf(all.narrow(0, 0, na).reshape(shapes.first));
    Tensor b = leaf(all.narrow(0, na, nb).reshape(shapes.second));
    INFO("shapes " << shape_str(shapes.first) << " and " << shape_str(shapes.second));
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {a, b});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); }, {a, b});
  }
  // Non-contiguous operands.
  Tensor all = distinct({24}, g);
  Tensor a = transposed_leaf(all.narrow(0, 0, 12).reshape({3, 4}));
  Tensor b = strided_leaf(all.narrow(0, 12, 12).reshape({3, 4}));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {a, b});
  // maximum(x, x) is x: the tie splits the gradient in halves that add up to 1.
  Tensor x = leaf(urand({6}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return maximum(in[0], in[0]); }, {x});
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return minimum(in[0], in[0]); }, {x});
}

TEST_CASE("gradcheck: where with a broadcast mask") {
  Generator g(107);
  Tensor cond = gt(urand({3, 1}, g), zeros({}, f64()));
  Tensor cond2 = gt(urand({2, 3, 4}, g), zeros({}, f64()));
  Tensor a = leaf(urand({3, 4}, g)), b = leaf(urand({4}, g));
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {a, b});
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return where(cond2, in[0], in[1]); }, {a, b});
  Tensor at_ = transposed_leaf(urand({3, 4}, g));
  MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return where(cond2, in[1], in[0]); }, {at_, b});
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------
namespace {
const std::vector<std::vector<int64_t>> kDimSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};

std::vector<Tensor> reduction_inputs(const std::function<Tensor(const Shape&)>& make) {
  return {leaf(make({3, 4, 5})), transposed_leaf(make({3, 4, 5}), 0, 2), strided_leaf(make({2, 3, 3}), 1),
          leaf(make({1, 5, 1}))};
}
}  // namespace

TEST_CASE("gradcheck: sum and mean over dim sets") {
  Generator g(108);
  auto any = [&](const Shape& s) { return urand(s, g); };
  for (const Tensor& x : reduction_inputs(any))
    for (const auto& dims : kDimSets)
      for (bool keep : {false, true}) {
        INFO("shape " << shape_str(x.shape()) << " dims " << shape_str(dims) << " keepdim " << keep);
        MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return sum(in[0], dims, keep); }, {x});
        MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return mean(in[0], dims, keep); }, {x});
      }
  Tensor s = leaf(urand({}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return sum(in[0]); }, {s});
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return mean(in[0]); }, {s});
  // Summing a broadcast (expanded) tensor.
  Tensor b = leaf(urand({3, 1}, g));
  MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return sum(in[0].expand({2, 3, 4}), {0, 2}); }, {b});
}

TEST_CASE("gradcheck: max and min over dim sets (distinct values)") {
  Generator g(109);
  auto dist = [&](const Shape& s) { return distinct(s, g); };
  for (const Tensor& x : reduction_inputs(dist))
    for (const auto& dims : kDimSets)
      for (bool keep : {false, true}) {
        INFO("shape " << shape_str(x.shape()) << " dims " << shape_str(dims) << " keepdim " << keep);
        MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return max(in[0], dims, keep); }, {x});
        MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return min(in[0], dims, keep); }, {x});
      }
}

TEST_CASE("gradcheck: var with and without Bessel's correction") {
  Generator g(110);
  auto any = [&](const Shape& s) { return urand(s, g); };
  for (const Tensor& x : reduction_inputs(any))
    for (const auto& dims : kDimSets) {
      int64_t n = 1;
      for (int64_t d : dims) n *= x.size(d);
      if (dims.empty()) n = x.numel();
      for (int64_t corr : {0, 1}) {
        if (n - corr <= 0) continue;
        INFO("shape " << shape_str(x.shape()) << " dims " << shape_str(dims) << " correction " << corr);
        MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return var(in[0], dims, false, corr); }, {x});
      }
    }
}

TEST_CASE("gradcheck: random broadcast shapes and random reduction dims") {
  // Shapes drawn from a fixed seed: rank 0-4, sizes 1-4, each dim of b either matching a's,
  // 1, or missing (leading), so every broadcasting pattern shows up over the draws.
  Generator g(111);
  for (int trial = 0; trial < 12; ++trial) {
    int64_t rank = int64_t(g.below(5));
    Shape sa, sb;
    for (int64_t d = 0; d < rank; ++d) sa.push_back(1 + int64_t(g.below(4)));
    int64_t lead = rank ? int64_t(g.below(uint64_t(rank) + 1)) : 0;
    for (int64_t d = lead; d < rank; ++d) sb.push_back(g.below(3) == 0 ? 1 : sa[size_t(d)]);
    if (g.below(2)) std::swap(sa, sb);
    INFO("trial " << trial << ": " << shape_str(sa) << " with " << shape_str(sb));
    Tensor a = leaf(urand(sa, g)), b = leaf(away_from_zero(sb, g, 0.5, 2.0));
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return add(mul(in[0], in[1]), sub(in[0], in[1])); }, {a, b});
    MINIMA_GRADCHECK([](const std::vector<Tensor>& in) { return div(in[0], in[1]); }, {a, b});
    // A random subset of a's dims to reduce over.
    Shape s = sa.size() >= sb.size() ? sa : sb;
    Tensor x = leaf(urand(s, g));
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < int64_t(s.size()); ++d)
      if (g.below(2)) dims.push_back(g.below(2) ? d : d - int64_t(s.size()));
    bool keep = g.below(2) == 1;
    INFO("sum/mean over " << shape_str(dims) << " of " << shape_str(s) << " keepdim " << keep);
    MINIMA_GRADCHECK([&](const std::vector<Tensor>& in) { return mean(square(sum(in[0], dims, keep)), {}, false); },
                     {x});
  }
}
