// tests/nn/test_ops_torch.cpp: the ops of core/ops.h against PyTorch, case by case. minima runs
// each op on fresh random inputs (broadcast shapes, permuted and strided views, float32, float64,
// bfloat16 and int64, ties and special values), backpropagates a random upstream gradient, and
// writes inputs, outputs and gradients to one safetensors file; tests/crosscheck/ops.py recomputes
// every case with torch and lists where the two differ. The model-level crosschecks
// (test_crosscheck.cpp) cover the ops the networks use on their usual shapes; this covers each
// op's whole surface: every flag, odd sizes, empty dims, views, and the conventions at kinks, ties
// and non-finite values. Skipped, with the reason printed, when python3 cannot import torch.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/safetensors.h"
#include "temp_dir.h"
#include "torch_peer.h"

using namespace minima;

namespace {

// What an input's values look like.
enum class Values {
  normal,    // N(0, 1)
  positive,  // U[0.2, 3): the domain of log, sqrt and a fractional pow
  ties,      // small integers as floats, so maxima, comparisons and kinks tie
  special,   // +-0, +-inf, NaN, a subnormal and large and small values among normal ones
};

class Cases {
 public:
  explicit Cases(uint64_t seed) : g_(seed) {}

  Generator& gen() { return g_; }
  int64_t pick(int64_t n) { return int64_t(randint({}, n, g_).item()); }

  // A random input of shape s. Sometimes a permuted view of a contiguous leaf, or every other
  // element of a larger one, so the strided paths of the kernels run too; its gradient is then
  // read through the same view of the leaf's gradient.
  Tensor input(const Shape& s, DType dt, bool grad, Values v = Values::normal) {
    const int64_t kind = s.empty() ? 0 : pick(3);
    Shape base = s;
    std::vector<int64_t> perm(s.size());
    for (size_t i = 0; i < s.size(); ++i) perm[i] = int64_t(i);
    if (kind == 1)
      std::reverse(perm.begin(), perm.end());  // stored transposed
    else if (kind == 2)
      base.back() *= 2;  // every other element of the last dim
    Shape stored = base;
    for (size_t i = 0; i < perm.size(); ++i) stored[i] = base[size_t(perm[i])];
    Tensor leaf = values(stored, dt, v);
    if (grad) leaf.requires_grad_();
    std::vector<int64_t> inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inverse[size_t(perm[i])] = int64_t(i);
    auto view = [kind, inverse, s](const Tensor& t) {
      Tensor x = kind == 1 ? t.permute(inverse) : t;
      return kind == 2 ? x.slice(int64_t(s.size()) - 1, 0, 2 * s.back(), 2) : x;
    };
    Tensor x = view(leaf);
    if (grad) views_.push_back({leaf, view, x});
    return x;
  }

  // Records op(inputs) = outputs. When the first output is floating and an input wants a
  // gradient, a random upstream gradient is backpropagated, and each such input's gradient saved.
  void add(const std::string& op, Json args, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
    const std::string key = "c" + std::to_string(n_);
    Json c = Json::object();
    c["op"] = op;
    c["args"] = std::move(args);
    c["inputs"] = int64_t(inputs.size());
    c["outputs"] = int64_t(outputs.size());
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].defined()) tensors_.emplace_back(key + ".x" + std::to_string(i), inputs[i].detach().contiguous());
    for (size_t i = 0; i < outputs.size(); ++i)
      tensors_.emplace_back(key + ".y" + std::to_string(i), outputs[i].detach().contiguous());
    Json grads = Json::array();
    const Tensor& y = outputs.at(0);
    if (y.requires_grad()) {
      Tensor g = randn(y.shape(), g_, TensorOptions(y.dtype()));
      tensors_.emplace_back(key + ".g", g);
      y.backward(g);
      for (size_t i = 0; i < inputs.size(); ++i)
        for (const auto& v : views_)
          if (inputs[i].defined() && v.x.impl() == inputs[i].impl()) {
            Tensor gl = v.leaf.grad();
            REQUIRE_MESSAGE(gl.defined(), op, ": no gradient reached input ", i);
            tensors_.emplace_back(key + ".dx" + std::to_string(i), v.view(gl).contiguous());
            grads.push_back(int64_t(i));
          }
    }
    compared_ += int64_t(outputs.size() + grads.size());
    c["grads"] = grads;
    views_.clear();
    cases_.push_back(c);
    ++n_;
  }

  int64_t size() const { return n_; }
  int64_t tensors_to_compare() const { return compared_; }  // every output and every gradient
  void save(const std::string& path) const { nn::save_safetensors(path, tensors_, {{"cases", cases_.dump(-1)}}); }

 private:
  Tensor values(const Shape& s, DType dt, Values v) {
    const DType make = dt == DType::i64 ? DType::f64 : dt;
    Tensor t;
    switch (v) {
      case Values::normal: t = randn(s, g_, TensorOptions(DType::f64)); break;
      case Values::positive: t = uniform(s, 0.2, 3.0, g_, TensorOptions(DType::f64)); break;
      case Values::ties: t = randint(s, 7, g_).to(DType::f64) - 3.0; break;
      case Values::special: {
        t = randn(s, g_, TensorOptions(DType::f64)).contiguous();
        const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1e-310, 1e30, -1e-30, 1.0, -1.0};
        double* p = t.data<double>();
        for (int64_t i = 0; i < t.numel(); ++i)
          if (pick(2) == 0) p[i] = specials[pick(10)];
        break;
      }
    }
    if (dt == DType::i64) t = (v == Values::ties ? t : t * 10.0).to(DType::i64);
    return t.to(make).to(dt).detach();
  }

  struct View {
    Tensor leaf;
    std::function<Tensor(const Tensor&)> view;
    Tensor x;
  };
  Generator g_;
  std::vector<View> views_;
  nn::NamedTensors tensors_;
  Json cases_ = Json::array();
  int64_t n_ = 0, compared_ = 0;
};

Json dims_json(const std::vector<int64_t>& d) {
  Json j = Json::array();
  for (int64_t v : d) j.push_back(v);
  return j;
}

// A random shape of rank lo..hi with sizes 1..max_size.
Shape random_shape(Cases& cs, int lo, int hi, int64_t max_size = 6) {
  Shape s(size_t(lo + cs.pick(hi - lo + 1)));
  for (auto& d : s) d = 1 + cs.pick(max_size);
  return s;
}

// A shape that broadcasts against s: some leading dims dropped, some sizes set to 1.
Shape broadcast_partner(Cases& cs, const Shape& s) {
  Shape p(s.begin() + cs.pick(int64_t(s.size()) + 1), s.end());
  for (auto& d : p)
    if (cs.pick(3) == 0) d = 1;
  return p;
}

DType float_dtype(Cases& cs) {
  const int64_t r = cs.pick(8);
  return r < 5 ? DType::f32 : r < 7 ? DType::f64 : DType::bf16;
}

void elementwise_cases(Cases& cs) {
  const char* binary_ops[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};
  const char* compare_ops[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  using Binary = Tensor (*)(const Tensor&, const Tensor&);
  const Binary binary_fns[] = {add, sub, mul, div, maximum, minimum, pow};
  const Binary compare_fns[] = {eq, ne, lt, le, gt, ge};
  for (int rep = 0; rep < 4; ++rep)
    for (size_t k = 0; k < std::size(binary_ops); ++k) {
      const Shape s = random_shape(cs, 0, 4);
      const DType dt = float_dtype(cs);
      const bool is_pow = k + 1 == std::size(binary_ops);
      const Values v = is_pow ? Values::positive : rep == 3 ? Values::ties : Values::normal;
      Tensor a = cs.input(s, dt, true, v), b = cs.input(broadcast_partner(cs, s), dt, true, v);
      if (rep % 2) std::swap(a, b);  // the broadcast operand on either side
      cs.add(binary_ops[k], Json::object(), {a, b}, {binary_fns[k](a, b)});
    }
  // Special values on both sides, forward only: NaN propagates through maximum and minimum, x / 0
  // and pow's corner cases (0^0, a negative base, infinite exponents) follow IEEE and C's pow.
  for (size_t k = 0; k < std::size(binary_ops); ++k)
    for (DType dt : {DType::f32, DType::f64}) {
      const Shape s = random_shape(cs, 1, 3);
      Tensor a = cs.input(s, dt, false, Values::special), b = cs.input(s, dt, false, Values::special);
      cs.add(binary_ops[k], Json::object(), {a, b}, {binary_fns[k](a, b)});
    }
  // Empty tensors broadcast and compute nothing.
  {
    Tensor a = cs.input({0, 3}, DType::f32, true), b = cs.input({3}, DType::f32, true);
    cs.add("mul", Json::object(), {a, b}, {mul(a, b)});
  }
  // Integers: exact, wrapping, division rounded toward zero (divisors kept nonzero).
  for (size_t k = 0; k < 6; ++k) {
    const Shape s = random_shape(cs, 1, 3);
    Tensor a = cs.input(s, DType::i64, false), b = cs.input(broadcast_partner(cs, s), DType::i64, false);
    if (k == 3) b = where(eq(b, zeros({}, TensorOptions(DType::i64))), full({}, 3.0, TensorOptions(DType::i64)), b);
    cs.add(binary_ops[k], Json::object(), {a, b}, {binary_fns[k](a, b)});
  }
  for (size_t k = 0; k < std::size(compare_ops); ++k) {
    const Shape s = random_shape(cs, 0, 3);
    const DType dt = k % 3 == 2 ? DType::i64 : float_dtype(cs);
    const Values v = k % 2 ? Values::special : Values::ties;
    Tensor a = cs.input(s, dt, false, dt == DType::i64 ? Values::ties : v);
    Tensor b = cs.input(broadcast_partner(cs, s), dt, false, dt == DType::i64 ? Values::ties : v);
    cs.add(compare_ops[k], Json::object(), {a, b}, {compare_fns[k](a, b)});
  }
  // Mixed dtypes promote: float beats integer, the wider float wins.
  {
    Tensor a = cs.input({3, 4}, DType::f32, true), b = cs.input({4}, DType::f64, true);
    cs.add("add", Json::object(), {a, b}, {add(a, b)});
    Tensor c = cs.input({3, 4}, DType::i64, false), d = cs.input({3, 1}, DType::f32, true);
    cs.add("mul", Json::object(), {c, d}, {mul(c, d)});
  }
  for (int rep = 0; rep < 3; ++rep) {
    const Shape s = random_shape(cs, 0, 3);
    Tensor c = gt(cs.input(s, DType::f32, false), zeros({}));
    Tensor a = cs.input(broadcast_partner(cs, s), DType::f32, true), b = cs.input(s, DType::f32, true);
    cs.add("where", Json::object(), {c, a, b}, {where(c, a, b)});
  }
  // Scalars.
  for (int rep = 0; rep < 2; ++rep) {
    const Shape s = random_shape(cs, 0, 3);
    const DType dt = float_dtype(cs);
    Tensor a = cs.input(s, dt, true);
    Json args = Json::object();
    args["s"] = -1.75;
    cs.add("add_scalar", args, {a}, {add(a, -1.75)});
    a = cs.input(s, dt, true);
    cs.add("mul_scalar", args, {a}, {mul(a, -1.75)});
    a = cs.input(s, dt, true, Values::positive);
    args["s"] = rep ? 2.0 : 0.5;
    cs.add("pow_scalar", args, {a}, {pow(a, rep ? 2.0 : 0.5)});
    a = cs.input(s, DType::i64, false);
    args["s"] = 3.0;
    cs.add("mul_scalar", args, {a}, {mul(a, 3.0)});
  }
  // Unary: on normal values, on ties (the kinks of relu, abs and sign at 0) and on special values.
  const char* unary_ops[] = {"neg",        "exp",     "log",  "log1p", "sqrt",     "abs",  "square",
                             "reciprocal", "sigmoid", "tanh", "relu",  "softplus", "sign", "clamp"};
  using Unary = Tensor (*)(const Tensor&);
  const Unary unary_fns[] =
      {neg,        exp,     log,  log1p, sqrt,     abs,  square,
       reciprocal, sigmoid, tanh, relu,  softplus, sign, [](const Tensor& t) { return clamp(t, -0.5, 1.25); }};
  for (size_t k = 0; k < std::size(unary_ops); ++k)
    for (Values v : {Values::normal, Values::ties, Values::special}) {
      const std::string op = unary_ops[k];
      const bool domain = op == "log" || op == "sqrt";
      const DType dt = v == Values::special ? DType::f64 : float_dtype(cs);
      // Special values are compared forward only: their gradients (inf * 0 and the like) are
      // conventions of the formula, not of the function.
      Tensor a = cs.input(random_shape(cs, 0, 3), dt, v != Values::special,
                          domain && v == Values::normal ? Values::positive : v);
      Json args = Json::object();
      if (op == "clamp") {
        args["lo"] = -0.5;
        args["hi"] = 1.25;
      }
      cs.add(op, args, {a}, {unary_fns[k](a)});
    }
  {  // int64 products and sums wrap modulo 2^64, as PyTorch's
    Tensor a = full({4}, 4611686018427387904.0, TensorOptions(DType::i64)) + arange(4, TensorOptions(DType::i64));
    Tensor b = from_vector<int64_t>({3, -5, 7, 9}, {4});
    cs.add("mul", Json::object(), {a, b}, {mul(a, b)});
    cs.add("add", Json::object(), {a, a}, {add(a, a)});
  }
  for (const char* op : {"neg", "abs", "sign", "square", "relu"}) {
    Tensor a = cs.input(random_shape(cs, 1, 3), DType::i64, false);
    const std::string o = op;
    Tensor y = o == "neg" ? neg(a) : o == "abs" ? abs(a) : o == "sign" ? sign(a) : o == "square" ? square(a) : relu(a);
    cs.add(op, Json::object(), {a}, {y});
  }
}

void reduction_cases(Cases& cs) {
  const char* ops[] = {"sum", "mean", "max", "min", "var"};
  for (int rep = 0; rep < 6; ++rep)
    for (const char* op : ops) {
      const Shape s = random_shape(cs, 0, 4);
      std::vector<int64_t> dims;
      for (int64_t d = 0; d < int64_t(s.size()); ++d)
        if (cs.pick(2)) dims.push_back(cs.pick(2) ? d : d - int64_t(s.size()));  // negative dims too
      const bool keepdim = rep % 2;
      const std::string o = op;
      const DType dt = float_dtype(cs);
      // Ties in max and min: the gradient is shared among the tied elements, as PyTorch's amax.
      Tensor x = cs.input(s, dt, true, rep >= 4 ? Values::ties : Values::normal);
      Json args = Json::object();
      args["dims"] = dims_json(dims);
      args["keepdim"] = keepdim;
      Tensor y;
      if (o == "var") {
        const int64_t correction = rep % 3 == 2 ? 0 : 1;
        args["correction"] = correction;
        int64_t n = 1;
        for (size_t d = 0; d < s.size(); ++d)
          if (dims.empty() || std::count(dims.begin(), dims.end(), int64_t(d)) ||
              std::count(dims.begin(), dims.end(), int64_t(d) - int64_t(s.size())))
            n *= s[d];
        if (n <= correction) {  // PyTorch returns NaN here; minima says why it cannot
          CHECK_THROWS_WITH_AS(var(x, dims, keepdim, correction), doctest::Contains("too few for correction"), Error);
          continue;
        }
        y = var(x, dims, keepdim, correction);
      } else {
        y = o == "sum"    ? sum(x, dims, keepdim)
            : o == "mean" ? mean(x, dims, keepdim)
            : o == "max"  ? max(x, dims, keepdim)
                          : min(x, dims, keepdim);
      }
      cs.add(op, args, {x}, {y});
    }
  for (int rep = 0; rep < 4; ++rep) {
    const Shape s = random_shape(cs, 1, 3);
    const int64_t dim = cs.pick(int64_t(s.size()));
    Tensor x = cs.input(s, rep < 2 ? DType::f32 : DType::i64, false, Values::ties);  // ties: the first index wins
    Json args = Json::object();
    args["dim"] = dim;
    args["keepdim"] = bool(rep % 2);
    cs.add("argmax", args, {x}, {argmax(x, dim, rep % 2)});
    cs.add("argmin", args, {x}, {argmin(x, dim, rep % 2)});
  }
  for (const char* op : {"sum", "mean"}) {  // over an empty dim: 0 and NaN
    Tensor x = cs.input({2, 0, 3}, DType::f32, true);
    Json args = Json::object();
    args["dims"] = dims_json({1});
    args["keepdim"] = false;
    cs.add(op, args, {x}, {std::string(op) == "sum" ? sum(x, {1}) : mean(x, {1})});
  }
  for (int rep = 0; rep < 2; ++rep) {  // integer sums
    Tensor x = cs.input(random_shape(cs, 1, 3), DType::i64, false);
    Json args = Json::object();
    args["dims"] = dims_json({-1});
    args["keepdim"] = false;
    cs.add("sum", args, {x}, {sum(x, {-1})});
    cs.add("max", args, {x}, {max(x, {-1})});
  }
}

void linear_algebra_cases(Cases& cs) {
  // matmul: vector and matrix operands in every combination, and batches that broadcast.
  const std::vector<std::pair<Shape, Shape>> shapes = {{{5}, {5}},
                                                       {{5}, {5, 3}},
                                                       {{4, 5}, {5}},
                                                       {{4, 5}, {5, 3}},
                                                       {{2, 4, 5}, {5, 3}},
                                                       {{5}, {2, 5, 3}},
                                                       {{2, 1, 4, 5}, {3, 5, 2}},
                                                       {{1, 37}, {37, 33}},
                                                       {{3, 17, 70}, {3, 70, 19}},
                                                       {{2, 4, 5}, {5}}};
  for (const auto& [sa, sb] : shapes) {
    const DType dt = float_dtype(cs);
    Tensor a = cs.input(sa, dt, true), b = cs.input(sb, dt, true);
    cs.add("matmul", Json::object(), {a, b}, {matmul(a, b)});
  }
  for (int rep = 0; rep < 3; ++rep) {
    const int64_t in = 1 + cs.pick(20), out = 1 + cs.pick(20);
    Shape xs = random_shape(cs, 1, 3);
    xs.back() = in;
    const DType dt = float_dtype(cs);
    Tensor x = cs.input(xs, dt, true), w = cs.input({out, in}, dt, true);
    Tensor b = rep == 2 ? Tensor() : cs.input({out}, dt, true);
    cs.add("linear", Json::object(), {x, w, b}, {linear(x, w, b)});
  }
}

void conv_pool_cases(Cases& cs) {
  struct Conv {
    int64_t n, c, h, w, o, k, stride, pad, dil, groups;
    bool bias;
  };
  const Conv convs[] = {{2, 3, 7, 9, 4, 3, 1, 1, 1, 1, true},  {1, 4, 8, 8, 6, 3, 2, 1, 1, 2, false},
                        {3, 2, 6, 5, 3, 1, 1, 0, 1, 1, true},  {2, 6, 9, 9, 6, 3, 1, 2, 2, 3, true},
                        {2, 5, 10, 7, 8, 5, 2, 2, 1, 1, true}, {1, 33, 5, 5, 17, 3, 1, 1, 1, 1, false},
                        {2, 3, 4, 4, 2, 3, 3, 0, 1, 1, true}};
  for (const Conv& p : convs) {
    const DType dt = float_dtype(cs) == DType::f64 ? DType::f64 : DType::f32;
    Tensor x = cs.input({p.n, p.c, p.h, p.w}, dt, true);
    Tensor w = cs.input({p.o, p.c / p.groups, p.k, p.k}, dt, true);
    Tensor b = p.bias ? cs.input({p.o}, dt, true) : Tensor();
    Json args = Json::object();
    args["stride"] = p.stride;
    args["padding"] = p.pad;
    args["dilation"] = p.dil;
    args["groups"] = p.groups;
    cs.add("conv2d", args, {x, w, b},
           {conv2d(x, w, b, Conv2dParams::of(p.stride, p.stride, p.pad, p.pad, p.dil, p.dil, p.groups))});
  }
  struct Pool {
    int64_t n, c, h, w, k, stride, pad;
  };
  const Pool pools[] = {{2, 3, 7, 9, 3, 2, 1}, {1, 2, 8, 8, 2, 2, 0}, {2, 1, 5, 6, 3, 1, 1}, {1, 3, 9, 7, 2, 3, 1}};
  for (const Pool& p : pools) {
    Json args = Json::object();
    args["kernel"] = p.k;
    args["stride"] = p.stride;
    args["padding"] = p.pad;
    for (Values v : {Values::normal, Values::ties}) {  // ties: the first maximum takes the gradient
      Tensor x = cs.input({p.n, p.c, p.h, p.w}, DType::f32, true, v);
      cs.add("max_pool2d", args, {x}, {max_pool2d(x, p.k, p.stride, p.pad)});
    }
    for (bool include : {true, false}) {
      args["count_include_pad"] = include;
      Tensor x = cs.input({p.n, p.c, p.h, p.w}, DType::f64, true);
      cs.add("avg_pool2d", args, {x}, {avg_pool2d(x, p.k, p.stride, p.pad, include)});
    }
  }
  for (const auto& [h, w, oh, ow] :
       std::vector<std::array<int64_t, 4>>{{7, 9, 3, 4}, {8, 8, 1, 1}, {5, 6, 5, 6}, {6, 7, 4, 3}}) {
    Tensor x = cs.input({2, 3, h, w}, DType::f32, true);
    Json args = Json::object();
    args["out_h"] = oh;
    args["out_w"] = ow;
    cs.add("adaptive_avg_pool2d", args, {x}, {adaptive_avg_pool2d(x, oh, ow)});
  }
  // Batch norm, training (batch statistics, running statistics updated) and evaluation.
  for (const Shape& s : std::vector<Shape>{{8, 5}, {4, 3, 5, 6}, {2, 7, 1, 3}}) {
    for (bool training : {true, false}) {
      const int64_t c = s[1];
      Tensor x = cs.input(s, DType::f32, true), w = cs.input({c}, DType::f32, true),
             b = cs.input({c}, DType::f32, true);
      Tensor rm = randn({c}, cs.gen()), rv = uniform({c}, 0.5, 2.0, cs.gen());
      Json args = Json::object();
      args["training"] = training;
      args["momentum"] = 0.3;
      args["eps"] = 1e-4;
      Tensor rm_in = rm.clone(), rv_in = rv.clone();
      Tensor y = batch_norm(x, w, b, rm, rv, training, 0.3, 1e-4);
      cs.add("batch_norm", args, {x, w, b, rm_in, rv_in}, {y, rm, rv});
    }
  }
}

void shape_and_loss_cases(Cases& cs) {
  for (int rep = 0; rep < 4; ++rep) {
    const Shape s = random_shape(cs, 1, 3);
    const int64_t dim = cs.pick(int64_t(s.size()));
    Shape s2 = s;
    s2[size_t(dim)] = 1 + cs.pick(4);
    const DType dt = rep == 3 ? DType::i64 : DType::f32;
    Tensor a = cs.input(s, dt, dt != DType::i64), b = cs.input(s2, dt, dt != DType::i64);
    Json args = Json::object();
    args["dim"] = dim;
    cs.add("cat", args, {a, b}, {cat({a, b}, dim)});
    Tensor c = cs.input(s, dt, dt != DType::i64), d = cs.input(s, dt, dt != DType::i64);
    args["dim"] = cs.pick(int64_t(s.size()) + 1);
    cs.add("stack", args, {c, d}, {stack({c, d}, args["dim"].as_int())});
  }
  for (int rep = 0; rep < 3; ++rep) {
    const Shape s = random_shape(cs, 2, 4);
    std::vector<int64_t> pads(size_t(2 + 2 * cs.pick(2)));  // the last one or two dims
    for (auto& p : pads) p = cs.pick(3);
    Tensor x = cs.input(s, DType::f32, true);
    Json args = Json::object();
    args["pads"] = dims_json(pads);
    args["value"] = rep == 1 ? -2.5 : 0.0;
    cs.add("pad", args, {x}, {pad(x, pads, rep == 1 ? -2.5 : 0.0)});
    std::vector<int64_t> dims = {int64_t(s.size()) - 1};
    if (rep) dims.push_back(0);
    x = cs.input(s, rep == 2 ? DType::i64 : DType::f32, rep != 2);
    args = Json::object();
    args["dims"] = dims_json(dims);
    cs.add("flip", args, {x}, {flip(x, dims)});
  }
  for (int rep = 0; rep < 3; ++rep) {
    const Shape s = random_shape(cs, 1, 3);
    const int64_t dim = cs.pick(int64_t(s.size()));
    Tensor x = cs.input(s, DType::f32, true);
    Tensor idx = randint({1 + cs.pick(6)}, s[size_t(dim)], cs.gen());  // repeats: gradients add up
    Json args = Json::object();
    args["dim"] = dim;
    cs.add("index_select", args, {x, idx}, {index_select(x, dim, idx)});
    Shape is = s;
    is[size_t(dim)] = 1 + cs.pick(5);
    x = cs.input(s, DType::f64, true);
    Tensor gidx = randint(is, s[size_t(dim)], cs.gen());
    cs.add("gather", args, {x, gidx}, {gather(x, dim, gidx)});
  }
  for (int rep = 0; rep < 3; ++rep) {
    const Shape s = random_shape(cs, 1, 3, 9);
    const int64_t dim = cs.pick(int64_t(s.size())) - (rep == 1 ? int64_t(s.size()) : 0);
    const DType dt = float_dtype(cs);
    Json args = Json::object();
    args["dim"] = dim;
    Tensor x = cs.input(s, dt, true);
    cs.add("log_softmax", args, {x}, {log_softmax(x, dim)});
    x = cs.input(s, dt, true);
    cs.add("softmax", args, {x}, {softmax(x, dim)});
  }
  for (DType dt : {DType::f32, DType::f64}) {  // -inf logits, and logits too large for exp
    Tensor x = cs.input({3, 5}, dt, false, Values::special);
    Json args = Json::object();
    args["dim"] = int64_t(1);
    cs.add("log_softmax", args, {x}, {log_softmax(x, 1)});
    cs.add("softmax", args, {x}, {softmax(x, 1)});
    Tensor big = cs.input({4, 6}, dt, true) * 1e4;
    Tensor t = randint({4}, 6, cs.gen());
    cs.add("cross_entropy", Json::object(), {big, t}, {cross_entropy(big, t)});
  }
  for (int rep = 0; rep < 3; ++rep) {
    const int64_t n = 1 + cs.pick(9), c = 2 + cs.pick(12);
    const DType dt = rep == 2 ? DType::f64 : DType::f32;
    Tensor t = randint({n}, c, cs.gen());
    Tensor logits = cs.input({n, c}, dt, true);
    cs.add("cross_entropy", Json::object(), {logits, t}, {cross_entropy(logits, t)});
    Tensor logp = cs.input({n, c}, dt, true);
    cs.add("nll_loss", Json::object(), {logp, t}, {nll_loss(logp, t)});
    const Shape s = random_shape(cs, 1, 3);
    Tensor z = cs.input(s, dt, true, rep == 1 ? Values::ties : Values::normal);
    Tensor y = rand(s, cs.gen(), TensorOptions(dt));
    cs.add("bce_with_logits", Json::object(), {z, y}, {binary_cross_entropy_with_logits(z, y)});
    Tensor a = cs.input(s, dt, true), b = cs.input(s, dt, true);
    cs.add("mse_loss", Json::object(), {a, b}, {mse_loss(a, b)});
  }
}

}  // namespace

TEST_CASE("ops against PyTorch: every op, forward and gradients, on random shapes, views, dtypes and edge values") {
  if (!testutil::torch_available()) {
    MESSAGE("skipped: python3 cannot import torch");
    return;
  }
  Cases cs(20261130);
  elementwise_cases(cs);
  reduction_cases(cs);
  linear_algebra_cases(cs);
  conv_pool_cases(cs);
  shape_and_loss_cases(cs);
  testutil::TempDir tmp("ops_torch");
  const std::string path = tmp.path() + "/ops.safetensors";
  cs.save(path);
  const std::string out = testutil::run_peer("/usr/bin/python3 " MINIMA_SOURCE_DIR "/tests/crosscheck/ops.py " + path);
  INFO("ops.py said:\n", out);
  const Json r = Json::parse(out);
  CHECK(r.at("cases").as_int() == cs.size());
  CHECK(r.at("compared").as_int() == cs.tensors_to_compare());
  for (size_t i = 0; i < r.at("mismatches").size(); ++i) {
    const Json& m = r.at("mismatches")[i];
    CHECK_MESSAGE(false, m.dump(-1));
  }
  MESSAGE(cs.size(), " cases, ", r.at("compared").as_int(), " tensors compared with PyTorch ",
          r.at("torch").as_string());
}
