// tests/cuda/test_cuda_elementwise.cpp: unary ops and their gradients, binary ops with
// broadcasting and their gradients, comparisons, where, integer ops and in-place updates, each
// against the CPU backend, for float32, bfloat16 and float64, on odd shapes and strided views.
#include <limits>
#include <utility>

#include "tests/cuda/cuda_test_util.h"

using namespace minima;
using namespace cudatest;

#ifdef MINIMA_HAS_CUDA

namespace {
struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  bool positive;  // needs a positive input
};
std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, false},
      {"exp", [](const Tensor& x) { return exp(x); }, false},
      {"log", [](const Tensor& x) { return log(x); }, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, true},
      {"abs", [](const Tensor& x) { return abs(x); }, false},
      {"square", [](const Tensor& x) { return square(x); }, false},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, true},
      {"relu", [](const Tensor& x) { return relu(x); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, false},
      {"softplus", [](const Tensor& x) { return softplus(mul(x, 8.0)); }, false},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, false},
      {"pow 2", [](const Tensor& x) { return pow(x, 2.0); }, false},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, true},
      {"pow 0", [](const Tensor& x) { return pow(x, 0.0); }, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, false},
      {"add scalar", [](const Tensor& x) { return add(x, 1.5); }, false},
      {"mul scalar", [](const Tensor& x) { return mul(x, -2.5); }, false},
      {"affine", [](const Tensor& x) { return 3.0 - x; }, false},
      {"sign", [](const Tensor& x) { return sign(x); }, false},
  };
}
}  // namespace

CUDA_TEST_CASE("cuda unary ops and their gradients match the CPU (f32, bf16, f64, dense and strided)") {
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    for (const auto& c : unary_cases()) {
      Tensor x = c.positive ? rnd_pos({13, 37}, 11, t) : rnd({13, 37}, 11, t);
      bool grads = std::string(c.name) != "sign";
      check_graph(str(c.name, " ", dtype_name(t)), {x}, {tol(t), grads},
                  [&](const std::vector<Tensor>& v) { return c.f(v[0]); });
      check_graph(str(c.name, " on a transposed view ", dtype_name(t)), {x}, {tol(t), grads},
                  [&](const std::vector<Tensor>& v) { return c.f(v[0].t()); });
    }
  }
}

CUDA_TEST_CASE("cuda unary ops on integer tensors") {
  for (DType t : {DType::i64, DType::u8}) {
    Tensor x = mul(rnd({5, 11}, 12), 40.0).to(t);
    Tensor d = x.to(kGpu);
    INFO(dtype_name(t));
    expect_equal(neg(d).cpu(), neg(x), "neg");
    expect_equal(abs(d).cpu(), abs(x), "abs");
    expect_equal(relu(d).cpu(), relu(x), "relu");
    expect_equal(square(d).cpu(), square(x), "square");
    expect_equal(sign(d).cpu(), sign(x), "sign");
    expect_equal(clamp(d, -3, 17).cpu(), clamp(x, -3, 17), "clamp");
    expect_equal(add(d, 7.0).cpu(), add(x, 7.0), "add scalar");
    expect_equal(mul(d, 3.0).cpu(), mul(x, 3.0), "mul scalar");
  }
}

CUDA_TEST_CASE("cuda binary ops with broadcasting and their gradients match the CPU") {
  struct BinCase {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> f;
    bool positive;
  };
  std::vector<BinCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, true},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, true},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, false},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, false},
  };
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    for (const auto& c : cases) {
      Tensor a = c.positive ? rnd_pos({4, 1, 33}, 21, t) : rnd({4, 1, 33}, 21, t);
      Tensor b = c.positive ? rnd_pos({3, 1}, 22, t) : rnd({3, 1}, 22, t);
      check_graph(str(c.name, " broadcast ", dtype_name(t)), {a, b}, tol(t),
                  [&](const std::vector<Tensor>& v) { return c.f(v[0], v[1]); });
      Tensor m = c.positive ? rnd_pos({9, 6}, 23, t) : rnd({9, 6}, 23, t);
      Tensor n = c.positive ? rnd_pos({6, 9}, 24, t) : rnd({6, 9}, 24, t);
      check_graph(str(c.name, " transposed operand ", dtype_name(t)), {m, n}, tol(t),
                  [&](const std::vector<Tensor>& v) { return c.f(v[0], v[1].t()); });
    }
  }
  // Ties in maximum/minimum split the gradient evenly.
  Tensor a = rnd({50}, 25);
  Tensor b = where(gt(rnd({50}, 26), zeros({50})), a, rnd({50}, 27));
  check_graph("maximum with ties", {a, b}, tol(DType::f32),
              [](const std::vector<Tensor>& v) { return maximum(v[0], v[1]); });
  check_graph("minimum with ties", {a, b}, tol(DType::f32),
              [](const std::vector<Tensor>& v) { return minimum(v[0], v[1]); });
}

// Shapes that take the 16-byte vector kernels (dense, aligned, a multiple of the pack size; or an
// input that is a contiguous row repeated along the leading dims) and their neighbours that must
// fall back to the strided loop (misaligned views, sizes off the pack, a repeated channel
// column). Add, sub, mul, div, max and min round once, exactly as on the CPU: results are equal.
CUDA_TEST_CASE("cuda vectorized elementwise path: dense, repeated rows and the fallbacks") {
  std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&)>>> ops =
      {{"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
       {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
       {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
       {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
       {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
       {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }}};
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    Tensor big = rnd({66, 40}, 41, t), row = rnd({40}, 42, t), col = rnd({4, 1, 1}, 43, t);
    Tensor x4 = rnd({3, 4, 5, 8}, 44, t), odd = rnd({7, 5}, 45, t);
    // view: applied on each device, so that the GPU operands are views of GPU tensors.
    struct Pair {
      std::string name;
      Tensor a, b;
      std::function<Tensor(const Tensor&)> va, vb;
    };
    auto same = [](const Tensor& v) { return v; };
    std::vector<Pair> pairs = {{"dense", big, rnd({66, 40}, 46, t), same, same},
                               {"row on the right", big, row, same, same},
                               {"row on the left", row, big, same, same},
                               {"misaligned views", big, big,
                                [](const Tensor& v) { return v.flatten().slice(0, 1, 2601); },
                                [](const Tensor& v) { return v.flatten().slice(0, 0, 2600); }},
                               {"channel column (strided loop)", x4, col, same, same},
                               {"size off the pack", odd, rnd({7, 5}, 47, t), same, same}};
    for (const auto& p : pairs)
      for (const auto& [name, f] : ops) {
        std::string what = str(name, " ", p.name, " ", dtype_name(t));
        Tensor want = f(p.va(p.a), p.vb(p.b));
        Tensor got = f(p.va(p.a.to(kGpu)), p.vb(p.b.to(kGpu)));
        expect_equal(got.cpu(), want, what);
      }
    // In place on a dense tensor, and the unary ops on the vector path.
    Tensor acc = rnd({66, 40}, 48, t), accg = acc.to(kGpu);
    acc.add_(row);
    accg.add_(row.to(kGpu));
    expect_equal(accg.cpu(), acc, str("add_ of a row ", dtype_name(t)));
    expect_equal(relu(big.to(kGpu)).cpu(), relu(big), str("relu ", dtype_name(t)));
    expect_equal(neg(big.to(kGpu)).cpu(), neg(big), str("neg ", dtype_name(t)));
    expect_equal(mul(big.to(kGpu), 0.375).cpu(), mul(big, 0.375), str("mul by a scalar ", dtype_name(t)));
    expect_close(exp(big.to(kGpu)).cpu(), exp(big), tol(t), str("exp ", dtype_name(t)));
    expect_close(exp(big.to(kGpu).flatten().slice(0, 1, 2601)).cpu(), exp(big.flatten().slice(0, 1, 2601)), tol(t),
                 str("exp of a misaligned view ", dtype_name(t)));
  }
}

CUDA_TEST_CASE("cuda comparisons, where, and integer binary ops") {
  Tensor a = mul(rnd({6, 1, 7}, 31), 2.0).to(DType::i64).to(DType::f32);  // many ties
  Tensor b = mul(rnd({5, 1}, 32), 2.0).to(DType::i64).to(DType::f32);
  Tensor da = a.to(kGpu), db = b.to(kGpu);
  expect_equal(eq(da, db).cpu(), eq(a, b), "eq");
  expect_equal(ne(da, db).cpu(), ne(a, b), "ne");
  expect_equal(lt(da, db).cpu(), lt(a, b), "lt");
  expect_equal(le(da, db).cpu(), le(a, b), "le");
  expect_equal(gt(da, db).cpu(), gt(a, b), "gt");
  expect_equal(ge(da, db).cpu(), ge(a, b), "ge");
  Tensor x = rnd({6, 5, 7}, 33), y = rnd({7}, 34);
  check_graph("where", {x, y, a, b}, tol(DType::f32),
              [&](const std::vector<Tensor>& v) { return where(gt(v[2], v[3]), v[0], v[1]); });
  for (DType t : {DType::i64, DType::u8}) {
    Tensor p = mul(rnd({4, 9}, 35), 9.0).to(t), q = mul(rnd({9}, 36), 5.0).to(t);
    Tensor dp = p.to(kGpu), dq = q.to(kGpu);
    INFO(dtype_name(t));
    expect_equal(add(dp, dq).cpu(), add(p, q), "int add");
    expect_equal(sub(dp, dq).cpu(), sub(p, q), "int sub");
    expect_equal(mul(dp, dq).cpu(), mul(p, q), "int mul");
    expect_equal(div(dp, dq).cpu(), div(p, q), "int div (by zero gives 0)");
    expect_equal(maximum(dp, dq).cpu(), maximum(p, q), "int maximum");
    expect_equal(minimum(dp, dq).cpu(), minimum(p, q), "int minimum");
    expect_equal(lt(dp, dq).cpu(), lt(p, q), "int lt");
    expect_equal(pow(dp, dq).cpu(), pow(p, q), "int pow");
  }
  // Integer pow is exact and wraps modulo 2^64 on both devices (never through a double).
  Tensor base = from_vector<int64_t>({3, 7, -2, 1, -1, 5, 2}, {7}, TensorOptions(DType::i64));
  Tensor expo = from_vector<int64_t>({40, 25, 63, -3, -3, -1, 64}, {7}, TensorOptions(DType::i64));
  CHECK(pow(base.to(kGpu), expo.to(kGpu)).cpu().to_vector<int64_t>() == pow(base, expo).to_vector<int64_t>());
}

CUDA_TEST_CASE("cuda in-place add_ and mul_ on views") {
  Tensor h = rnd({8, 10}, 41), d = h.to(kGpu);
  Tensor o = rnd({10}, 42);
  h.slice(0, 1, 8, 3).add_(o, 0.5);
  d.slice(0, 1, 8, 3).add_(o.to(kGpu), 0.5);
  h.narrow(1, 2, 5).mul_(-3.0);
  d.narrow(1, 2, 5).mul_(-3.0);
  h.t().add_(h.t());  // aliasing operands
  d.t().add_(d.t());
  expect_close(d.cpu(), h, tol(DType::f32), "in-place updates");
}

CUDA_TEST_CASE("cuda float-to-integer conversion, integer wrap-around and relu(NaN) match the CPU") {
  // Conversions of NaN, infinities, values beyond int64 and negative or fractional values: both
  // backends go through double_to_int64 (truncation; INT64_MIN outside int64's range) and then
  // keep the low byte for uint8.
  Tensor f = from_vector<double>({NAN, INFINITY, -INFINITY, 1e19, -1e19, 0x1p63, -0x1p63, -1.5, 255.7, 256.2, -0.5,
                                  300.0, -129.0},
                                 {13}, TensorOptions(DType::f64));
  for (DType s : {DType::f64, DType::f32, DType::bf16})
    for (DType d : {DType::i64, DType::u8}) {
      INFO(dtype_name(s), " -> ", dtype_name(d));
      Tensor h = f.to(s);
      CHECK(h.to(kGpu).to(d).cpu().to_vector<int64_t>() == h.to(d).to_vector<int64_t>());
    }
  // Integer arithmetic wraps modulo 2^64 and never traps (x / 0 gives 0, INT64_MIN / -1 wraps).
  // Compared as int64: a comparison through double would lose the low bits near 2^63.
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  Tensor a = from_vector<int64_t>({hi, lo, lo, -7, 5, lo, hi}, {7});
  Tensor b = from_vector<int64_t>({1, -1, 0, 2, -3, 1, hi}, {7});
  Tensor da = a.to(kGpu), db = b.to(kGpu);
  using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, Binary>> binary = {
      {"add", [](const Tensor& x, const Tensor& y) { return add(x, y); }},
      {"sub", [](const Tensor& x, const Tensor& y) { return sub(x, y); }},
      {"mul", [](const Tensor& x, const Tensor& y) { return mul(x, y); }},
      {"div", [](const Tensor& x, const Tensor& y) { return div(x, y); }},
  };
  for (const auto& [name, op] : binary) {
    INFO(name);
    CHECK(op(da, db).cpu().to_vector<int64_t>() == op(a, b).to_vector<int64_t>());
  }
  using Unary = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Unary>> unary = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
      {"square", [](const Tensor& x) { return square(x); }},
      {"sum", [](const Tensor& x) { return sum(x); }},
  };
  for (const auto& [name, op] : unary) {
    INFO(name);
    CHECK(op(da).cpu().to_vector<int64_t>() == op(a).to_vector<int64_t>());
  }
  // relu keeps NaN (as max(x, 0) would not) and sends -0 to +0, in every float dtype.
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    Tensor x = from_vector<double>({NAN, -1.0, -0.0, 2.0, -INFINITY, INFINITY}, {6}).to(t);
    Tensor got = relu(x.to(kGpu)).cpu(), want = relu(x);
    expect_equal(got, want, str("relu ", dtype_name(t)));
    CHECK(std::isnan(got.to_vector<double>()[0]));
    CHECK(!std::signbit(got.to_vector<double>()[2]));
  }
}

#endif  // MINIMA_HAS_CUDA
