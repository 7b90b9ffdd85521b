// tests/core/test_errors.cpp: every misuse ends in a minima::Error whose message names what was
// expected and what was found (shapes printed as [2, 3], dtypes, devices); nothing crashes or
// silently computes garbage. Covers shape mismatches, dtype mismatches, device errors, bad
// arguments to views and indexing, and misuse of backward and in-place writes.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "core/backend.h"
#include "core/json.h"
#include "core/ops.h"
#include "core/parse.h"
#include "core/random.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

TEST_CASE("errors: shape mismatches name both shapes") {
  Tensor a = zeros({2, 3}), b = zeros({4, 3});
  check_error([&] { add(a, b); }, {"[2, 3]", "[4, 3]", "add"});
  check_error([&] { mul(zeros({2, 3, 4}), zeros({3, 3})); }, {"[2, 3, 4]", "[3, 3]"});
  check_error([&] { matmul(zeros({2, 3}), zeros({4, 5})); }, {"[2, 3]", "[4, 5]", "matmul"});
  check_error([&] { matmul(zeros({7}), zeros({6})); }, {"[7]", "[6]"});
  check_error([&] { matmul(zeros({2, 2, 3}), zeros({3, 3, 4})); }, {"[2]", "[3]"});
  check_error([&] { matmul(zeros({}), zeros({3})); }, {"[]", "[3]"});
  check_error([&] { linear(zeros({5, 3}), zeros({4, 2})); }, {"[5, 3]", "[4, 2]"});
  check_error([&] { linear(zeros({5, 3}), zeros({4, 3}), zeros({5})); }, {"[5]", "[4, 3]"});
  check_error([&] { cat({zeros({2, 3}), zeros({2, 4})}, 0); }, {"[2, 3]", "[2, 4]", "cat"});
  check_error([&] { cat({zeros({2, 3}), zeros({2, 3, 1})}, 0); }, {"[2, 3, 1]", "[2, 3]"});
  check_error([&] { stack({zeros({2, 3}), zeros({3, 2})}, 0); }, {"[2, 3]", "[3, 2]"});
  check_error([&] { where(zeros({2}, TensorOptions(DType::u8)), zeros({3}), zeros({3})); }, {"[2]", "[3]"});
  check_error([&] { mse_loss(zeros({2, 3}), zeros({3, 2})); }, {"[2, 3]", "[3, 2]"});
  check_error([&] { binary_cross_entropy_with_logits(zeros({4}), zeros({5})); }, {"[4]", "[5]"});
}

TEST_CASE("errors: conv2d and pooling arguments") {
  check_error([&] { conv2d(zeros({1, 3, 5, 5}), zeros({4, 2, 3, 3})); }, {"[1, 3, 5, 5]", "[4, 2, 3, 3]"});
  Conv2dParams g2;
  g2.groups = 2;
  check_error([&] { conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), Tensor(), g2); }, {"groups"});
  check_error([&] { conv2d(zeros({3, 5, 5}), zeros({4, 3, 3, 3})); }, {"[3, 5, 5]"});
  check_error([&] { conv2d(zeros({1, 3, 2, 2}), zeros({4, 3, 3, 3})); }, {"[1, 3, 2, 2]", "too small"});
  Conv2dParams s2;
  s2.stride_h = s2.stride_w = 2;  // a strided window that does not fit must not round up to 1
  check_error([&] { conv2d(zeros({1, 3, 2, 2}), zeros({4, 3, 3, 3}), Tensor(), s2); }, {"[1, 3, 2, 2]", "too small"});
  check_error([&] { avg_pool2d(zeros({1, 1, 2, 5}), 3); }, {"[1, 1, 2, 5]"});
  check_error([&] { conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({3})); }, {"[3]", "4"});
  Conv2dParams bad;
  bad.stride_h = 0;
  check_error([&] { conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), Tensor(), bad); }, {"stride"});
  check_error([&] { max_pool2d(zeros({1, 1, 2, 2}), 3); }, {"[1, 1, 2, 2]"});
  check_error([&] { max_pool2d(zeros({1, 1, 4, 4}), 2, 2, 2); }, {"padding"});
  check_error([&] { avg_pool2d(zeros({4, 4}), 2); }, {"[4, 4]"});
  check_error([&] { adaptive_avg_pool2d(zeros({1, 1, 4, 4}), 0, 2); }, {"0x2"});
  check_error(
      [&] {
        batch_norm(zeros({2, 3, 4, 4}), zeros({4}), Tensor(), Tensor(), Tensor(), true);
      },
      {"[4]", "[2, 3, 4, 4]"});
  check_error([&] { batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true); }, {"[1, 3]"});
  check_error([&] { batch_norm(zeros({2, 3}), Tensor(), Tensor(), Tensor(), Tensor(), false); }, {"running_mean"});
}

TEST_CASE("errors: dtype mismatches name both dtypes") {
  check_error([&] { conv2d(zeros({1, 3, 5, 5}, f32()), zeros({4, 3, 3, 3}, f64())); }, {"float32", "float64"});
  check_error(
      [&] {
        conv2d(zeros({1, 3, 5, 5}, f32()), zeros({4, 3, 3, 3}, f32()), zeros({4}, f64()));
      },
      {"bias", "float32", "float64"});
  check_error([&] { exp(zeros({3}, TensorOptions(DType::i64))); }, {"int64", "[3]"});
  check_error([&] { mean(zeros({3}, TensorOptions(DType::u8))); }, {"uint8"});
  check_error([&] { matmul(zeros({2, 2}, TensorOptions(DType::i64)), zeros({2, 2})); }, {"int64"});
  check_error([&] { where(zeros({3}), zeros({3}), zeros({3})); }, {"uint8", "float32"});
  check_error([&] { index_select(zeros({3}), 0, zeros({2})); }, {"int64", "float32"});
  check_error([&] { gather(zeros({3}), 0, zeros({2})); }, {"int64", "float32"});
  check_error([&] { cross_entropy(zeros({2, 3}), zeros({2})); }, {"int64", "float32"});
  check_error([&] { zeros({2}, TensorOptions(DType::i64)).requires_grad_(true); }, {"int64"});
  check_error([&] { zeros({2}).data<double>(); }, {"float64", "float32"});
  Generator g(1);
  check_error([&] { rand({2}, g, TensorOptions(DType::i64)); }, {"int64"});
}

TEST_CASE("errors: cross_entropy and nll_loss arguments") {
  Tensor logits = zeros({4, 3});
  Tensor t5 = zeros({5}, TensorOptions(DType::i64));
  check_error([&] { cross_entropy(logits, t5); }, {"[4, 3]", "5"});
  check_error([&] { cross_entropy(zeros({2, 3, 4}), zeros({2}, TensorOptions(DType::i64))); }, {"[2, 3, 4]"});
  check_error([&] { nll_loss(logits, zeros({4, 1}, TensorOptions(DType::i64))); }, {"[4, 1]"});
  Tensor bad = from_vector<int64_t>({0, 1, 7, 2}, {4}, TensorOptions(DType::i64));
  check_error([&] { cross_entropy(logits, bad); }, {"7", "3 classes"});
  Tensor neg = from_vector<int64_t>({0, -1, 1, 2}, {4}, TensorOptions(DType::i64));
  check_error([&] { cross_entropy(logits, neg); }, {"-1"});
  // A TrustedTargetsGuard spares only the CUDA backend its read-back: the CPU still checks, and
  // the guard nests and restores.
  CHECK_FALSE(targets_trusted());
  {
    TrustedTargetsGuard outer;
    CHECK(targets_trusted());
    check_error([&] { cross_entropy(logits, bad); }, {"7", "3 classes"});
    {
      TrustedTargetsGuard inner;
      CHECK(targets_trusted());
    }
    CHECK(targets_trusted());
  }
  CHECK_FALSE(targets_trusted());
}

TEST_CASE("errors: views and indexing") {
  Tensor x = zeros({2, 3});
  check_error([&] { x.view({4}); }, {"[4]", "[2, 3]"});
  check_error([&] { x.reshape({-1, -1}); }, {"-1"});
  check_error([&] { x.reshape({4, -1}); }, {"[4, -1]", "[2, 3]"});
  check_error([&] { x.t().view({6}); }, {"[3, 2]", "reshape"});
  check_error([&] { zeros({2, 3, 4}).t(); }, {"[2, 3, 4]", "transpose"});
  check_error([&] { x.permute({0}); }, {"[2, 3]"});
  check_error([&] { x.permute({0, 0}); }, {"repeated"});
  check_error([&] { x.expand({4, 3}); }, {"[2, 3]", "[4, 3]"});
  check_error([&] { x.expand({3}); }, {"[2, 3]", "[3]"});
  check_error([&] { zeros({1, 3}).expand({-2, 3}); }, {"-2"});
  check_error([&] { zeros({2, 3, 4}).flatten(2, 1); }, {"[2, 3, 4]"});
  check_error([&] { x.narrow(1, 2, 2); }, {"[2, 3]"});
  check_error([&] { x.select(0, 2); }, {"[2, 3]", "2"});
  check_error([&] { x.select(0, -3); }, {"[2, 3]"});
  check_error([&] { x.slice(1, 0, 3, 0); }, {"step"});
  check_error([&] { x.size(2); }, {"dim 2"});
  check_error([&] { sum(x, {2}); }, {"dim 2"});
  check_error([&] { sum(x, {0, -2}); }, {"repeated"});
  check_error([&] { x.transpose(0, 5); }, {"dim 5"});
  Tensor idx = from_vector<int64_t>({0, 3}, {2}, TensorOptions(DType::i64));
  check_error([&] { index_select(x, 1, idx); }, {"index 3", "size 3"});
  Tensor gi = from_vector<int64_t>({0, 5, 1}, {1, 3}, TensorOptions(DType::i64));
  check_error([&] { gather(x, 0, gi); }, {"index 5"});
  check_error([&] { gather(x, 1, zeros({2}, TensorOptions(DType::i64))); }, {"[2]", "[2, 3]"});
  check_error([&] { pad(x, {1}); }, {"[1]"});
  check_error([&] { pad(x, {1, -1}); }, {"negative"});
  check_error([&] { flip(x, {2}); }, {"dim 2"});
  check_error([&] { x.item(); }, {"[2, 3]"});
  check_error([&] { from_vector<float>({1, 2, 3}, {2, 2}); }, {"[2, 2]", "3 values"});
  check_error([&] { empty({2, -1}); }, {"[2, -1]"});
  check_error([&] { clamp(x, 1.0, 0.0); }, {"clamp"});
  check_error([&] { var(zeros({1}), {0}); }, {"correction"});
  check_error([&] { max(zeros({0, 3})); }, {"[0, 3]"});
  Generator g(1);
  check_error([&] { randint({2}, 0, g); }, {"high"});
  check_error([&] { arange(0.0, 1.0, 0.0); }, {"step"});
}

TEST_CASE("errors: devices") {
  check_error([&] { Device::parse("tpu"); }, {"tpu", "cpu", "cuda"});
  check_error([&] { Device::parse("cuda:x"); }, {"cuda:x"});
  check_error([&] { Device::parse("cuda:-1"); }, {"cuda:-1"});
  check_error([&] { Device::parse("cuda:1a"); }, {"cuda:1a"});
  check_error([&] { Device::parse("cuda:"); }, {"cuda:"});
  check_error([&] { Device::parse("cuda:99999999999"); }, {"cuda:99999999999"});
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK(Device::parse("cuda") == Device::cuda(0));
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  CHECK(Device::cuda(1).str() == "cuda:1");
  if (!cuda_available()) {
    // Without a usable GPU, asking for one fails with a message that says so.
    std::string msg = error_of([&] { zeros({2, 3}, Device::cuda()); });
    CHECK(msg.find("CUDA") != std::string::npos);
    std::string msg2 = error_of([&] { ones({4}).to(Device::cuda()); });
    CHECK(msg2.find("CUDA") != std::string::npos);
  }
}

TEST_CASE("errors: backward misuse") {
  Generator g(2);
  Tensor x = urand({2, 3}, g);
  x.requires_grad_(true);
  Tensor y = mul(x, 2.0);
  // Non-scalar output without an explicit gradient.
  check_error([&] { y.backward(); }, {"[2, 3]", "scalar"});
  // A gradient of the wrong shape.
  check_error([&] { y.backward(ones({3, 2}, f64())); }, {"[3, 2]", "[2, 3]"});
  // A tensor that does not require grad.
  Tensor c = urand({3}, g);
  check_error([&] { sum(c).backward(); }, {"does not require grad"});
  {
    NoGradGuard ng;
    Tensor z = sum(mul(x, x));
    check_error([&] { z.backward(); }, {"does not require grad"});
  }
  // A second backward without retain_graph.
  Tensor s = sum(exp(x));
  s.backward();
  check_error([&] { s.backward(); }, {"second time", "retain_graph"});
  // requires_grad_ on a non-leaf.
  check_error([&] { y.requires_grad_(true); }, {"leaf"});
}

TEST_CASE("errors: in-place writes to tensors that require grad") {
  Generator g(3);
  Tensor w = urand({3}, g);
  w.requires_grad_(true);
  check_error([&] { w.fill_(0.0); }, {"fill_", "[3]", "requires grad"});
  check_error([&] { w.zero_(); }, {"[3]"});
  check_error([&] { w.add_(ones({3}, f64())); }, {"add_", "[3]"});
  check_error([&] { w.mul_(2.0); }, {"mul_", "[3]"});
  check_error([&] { w.copy_(ones({3}, f64())); }, {"copy_", "[3]"});
  Tensor h = exp(w);  // a non-leaf that requires grad
  check_error([&] { h.mul_(2.0); }, {"mul_"});
  // Allowed under NoGradGuard, which is how optimizers update parameters.
  std::vector<double> before = values(w);
  {
    NoGradGuard ng;
    w.add_(ones({3}, f64()), 0.5);
  }
  std::vector<double> after = values(w);
  for (size_t i = 0; i < 3; ++i) CHECK(after[i] == before[i] + 0.5);
  // Errors leave the tensor untouched.
  CHECK(values(w) == after);
}

TEST_CASE("errors: a shape whose element or byte count overflows is refused, not allocated wrapped around") {
  const int64_t big = int64_t(1) << 62;
  check_error([&] { zeros({big, 4}); }, {"[4611686018427387904, 4]", "too large"});
  check_error([&] { empty({4, big, 4}); }, {"too large"});
  check_error([&] { zeros({big}); }, {"[4611686018427387904]", "too large", "bytes"});  // 2^64 bytes of f32
  check_error([&] { zeros({big, 2}, TensorOptions(DType::u8)); }, {"too large"});
  // A zero anywhere makes the product 0, however large the other sizes.
  CHECK(empty({big, 0, big}).numel() == 0);
  CHECK(numel_of({big, 0, 4}) == 0);
}

TEST_CASE("errors: JSON \\u escapes need exactly four hex digits") {
  CHECK(Json::parse("\"\\u0041\\u00e9\"").as_string() == "A\xc3\xa9");
  for (const char* bad : {"\"\\u12zz\"", "\"\\uzzzz\"", "\"\\u12\"", "\"\\u 123\"", "\"\\u-123\""})
    check_error([&] { Json::parse(bad); }, {"json: bad \\u escape"});
}

TEST_CASE("errors: JSON strings: surrogate pairs are one code point, raw control characters are refused") {
  // Python's json.dumps writes U+1F600 as this pair; as UTF-8 it is four bytes, not two
  // three-byte halves.
  CHECK(Json::parse("\"\\ud83d\\ude00\"").as_string() == "\xf0\x9f\x98\x80");
  CHECK(Json::parse("\"a\\uD800\\uDC00z\"").as_string() == "a\xf0\x90\x80\x80z");  // U+10000, the first
  CHECK(Json::parse("\"\\udbff\\udfff\"").as_string() == "\xf4\x8f\xbf\xbf");      // U+10FFFF, the last
  CHECK(Json::parse("\"\\uffff\"").as_string() == "\xef\xbf\xbf");
  // What minima writes it reads back: raw multi-byte UTF-8, and control characters as escapes.
  const std::string odd = "\xf0\x9f\x98\x80 \x01\x1f\t\"";
  CHECK(Json::parse(Json(odd).dump()).as_string() == odd);
  for (const char* bad : {"\"\\ude00\"", "\"\\ud83d\"", "\"\\ud83dx\"", "\"\\ud83d\\u0041\"", "\"\\ud83d\\ud83d\"",
                          "\"\\ud83d\\uzz00\""}) {
    INFO(bad);
    check_error([&] { Json::parse(bad); }, {"json: bad \\u escape"});
  }
  check_error([&] { Json::parse("\"a\tb\""); }, {"json: control character in a string", "at byte 2"});
  check_error([&] { Json::parse(std::string("{\"k\x01\": 1}")); }, {"json: control character in a string"});
}

TEST_CASE("errors: numbers are parsed from the whole string or not at all") {
  CHECK(parse_int64("42") == int64_t(42));
  CHECK(parse_int64("-7") == int64_t(-7));
  CHECK(parse_int64("+3") == int64_t(3));
  CHECK(parse_int64("9223372036854775807") == std::numeric_limits<int64_t>::max());
  for (const char* bad : {"", "1x", " 1", "1 ", "0x10", "1.5", "+", "-", "+-1", "9223372036854775808", "1e3"}) {
    INFO(bad);
    CHECK_FALSE(parse_int64(bad).has_value());
  }
  CHECK(parse_uint64("18446744073709551615") == std::numeric_limits<uint64_t>::max());
  CHECK_FALSE(parse_uint64("-1").has_value());
  CHECK_FALSE(parse_uint64("18446744073709551616").has_value());
  CHECK(parse_double("0.1") == 0.1);
  CHECK(parse_double("-2.5e-3") == -2.5e-3);
  CHECK(parse_double("7") == 7.0);
  // Below the normal range strtod sets ERANGE too, but the number is finite: it used to be refused
  // as if it were not ("--lr expects a finite number, got '1e-310'").
  CHECK(parse_double("1e-310") == 1e-310);
  CHECK(parse_double("-4.9e-324") == -4.9e-324);
  CHECK(parse_double("1e-400") == 0.0);
  for (const char* bad : {"", "1x", " 1", "1,5", "inf", "nan", "-inf", "0x1p3", "1e999", "e5", ".", "--1"}) {
    INFO(bad);
    CHECK_FALSE(parse_double(bad).has_value());
  }
  // JSON numbers go through them: an integer past int64 and an exponent out of range are errors.
  CHECK(Json::parse("[1, -2.5e3]")[1].as_double() == -2500.0);
  check_error([&] { Json::parse("9223372036854775808"); }, {"json: bad number"});
  check_error([&] { Json::parse("1e999"); }, {"json: bad number"});
}

TEST_CASE("errors: an undefined tensor is an error, never a crash") {
  const Tensor u, x = ones({2, 3});
  Generator g(1);
  const std::vector<std::function<void()>> uses = {
      [&] { sum(u); },
      [&] { mean(u); },
      [&] { max(u); },
      [&] { var(u); },
      [&] { argmax(u, 0); },
      [&] { linear(u, x); },
      [&] { linear(x, u); },
      [&] {
        cat({x, u}, 0);
      },
      [&] {
        stack({x, u}, 0);
      },
      [&] { flip(u, {0}); },
      [&] {
        pad(u, {1, 1});
      },
      [&] { u.reshape({2}); },
      [&] { u.to(DType::f64); },
      [&] { dropout(u, 0.5, true, g); },
      [&] { count_correct(u, zeros({2}, TensorOptions(DType::i64))); },
      [&] { u.item(); },
      [&] { x.clone().add_(u); },
  };
  for (size_t i = 0; i < uses.size(); ++i) {
    INFO("use ", i);
    check_error(uses[i], {"undefined"});
  }
}

TEST_CASE("errors: pooling refuses empty planes and non-positive strides, and takes an empty batch") {
  // An empty plane with padding used to give one window with no pixel, whose backward wrote
  // outside the gradient.
  check_error([&] { max_pool2d(zeros({1, 1, 0, 0}), 2, 2, 1); }, {"max_pool2d", "[1, 1, 0, 0]", "non-empty"});
  check_error([&] { avg_pool2d(zeros({1, 1, 0, 0}), 2, 2, 1); }, {"avg_pool2d", "non-empty"});
  check_error([&] { adaptive_avg_pool2d(zeros({1, 1, 0, 4}), 1, 1); }, {"adaptive_avg_pool2d", "[1, 1, 0, 4]"});
  check_error([&] { max_pool2d(zeros({1, 1, 4, 4}), 2, 0); }, {"stride must be positive", "got 0"});
  check_error([&] { avg_pool2d(zeros({1, 1, 4, 4}), 2, -2); }, {"stride must be positive", "got -2"});
  Tensor x = zeros({0, 2, 4, 4});
  x.requires_grad_();
  Tensor y = max_pool2d(x, 2);
  CHECK(y.shape() == Shape{0, 2, 2, 2});
  sum(y).backward();
  CHECK(x.grad().shape() == x.shape());
}

TEST_CASE("errors: integer tensors refuse fractional scalars instead of truncating them") {
  const Tensor x = from_vector<int64_t>({1, 2, 3, -4}, {4});
  check_error([&] { mul(x, 2.5); }, {"2.5 is not an integer", "int64"});
  check_error([&] { x / 2.0; }, {"div", "int64", "truncate"});
  check_error([&] { add(x, 0.5); }, {"0.5 is not an integer"});
  check_error([&] { x.clone().mul_(0.5); }, {"mul_", "0.5"});
  check_error([&] { clamp(x, 0.5, 2); }, {"clamp", "0.5"});
  CHECK(values(mul(x, 3.0)) == std::vector<double>{3, 6, 9, -12});
  CHECK(values(add(x, -1.0)) == std::vector<double>{0, 1, 2, -5});
  // An infinite clamp bound is no bound (it used to become INT64_MIN).
  CHECK(values(clamp(x, 0, INFINITY)) == std::vector<double>{1, 2, 3, 0});
  CHECK(values(clamp(x, -INFINITY, 2)) == std::vector<double>{1, 2, 2, -4});
}

TEST_CASE("errors: reductions of empty tensors follow PyTorch") {
  const Tensor m = mean(zeros({0, 3}), {0});  // 0 / 0
  REQUIRE(m.shape() == Shape{3});
  for (double v : values(m)) CHECK(std::isnan(v));
  // Reducing a non-empty dim of an empty tensor leaves an empty result; an empty dim has no max.
  CHECK(max(zeros({0, 3}), {1}).shape() == Shape{0});
  CHECK(argmax(zeros({0, 3}), 1).shape() == Shape{0});
  check_error([&] { max(zeros({0, 3}), {0}); }, {"empty dim", "[0, 3]"});
  CHECK(index_select(zeros({3, 0}), 0, from_vector<int64_t>({2, 0}, {2})).shape() == Shape{2, 0});
  check_error([&] { arange(0, 1e30, 1e12); }, {"arange", "too many"});
  check_error([&] { arange(0, INFINITY, 1); }, {"arange"});
  // No input features: the output is the bias (an empty sum is 0), as PyTorch's.
  Tensor w = empty({4, 0}, f64()), b = from_vector<double>({1, 2, 3, 4}, {4}, f64());
  CHECK(values(linear(zeros({2, 0}, f64()), w, b)) == std::vector<double>{1, 2, 3, 4, 1, 2, 3, 4});
  CHECK(values(matmul(zeros({3, 0}, f64()), zeros({0, 2}, f64()))) == std::vector<double>(6, 0.0));
}

TEST_CASE("errors: sizes near 2^63 are refused, never wrapped around into small buffers or wrong views") {
  // 2^61 - 1 doubles pass the element and byte counts but used to wrap to a 0-byte block when the
  // allocator rounded the request up, which the fill then overran.
  check_error([&] { zeros({1}, DType::f64).expand({(int64_t(1) << 61) - 1}).contiguous(); },
              {"out of host memory allocating"});
  check_error([&] { empty({0, int64_t(1) << 32, int64_t(1) << 32}); }, {"strides do not fit in 64 bits"});
  check_error(
      [&] {
        zeros({0, 4}).view({0, int64_t(1) << 40, int64_t(1) << 40});
      },
      {"[0, 1099511627776, 1099511627776] is too large"});
  const Tensor x = arange(int64_t(6));
  check_error([&] { x.narrow(0, 2, std::numeric_limits<int64_t>::max()); }, {"narrow", "out of bounds"});
  CHECK(values(x.slice(0, 1, 5, std::numeric_limits<int64_t>::max())) == std::vector<double>{1});
  check_error([&] { pad(x, {std::numeric_limits<int64_t>::max(), 1}); }, {"pad", "too large for 64 bits"});
  const Tensor big = zeros({1}).expand({std::numeric_limits<int64_t>::max()});
  check_error([&] { cat({big, big}, 0); }, {"cat", "does not fit in 64 bits"});
  Conv2dParams huge = Conv2dParams::of(1, 1, std::numeric_limits<int64_t>::max() / 2, 0);
  check_error([&] { conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 1, 1}), Tensor(), huge); }, {"does not fit in 64 bits"});
  check_error([&] { max_pool2d(zeros({1, 1, 4, 4}), 3, 1, std::numeric_limits<int64_t>::max()); }, {"max_pool2d"});
  Conv2dParams groups;
  groups.groups = int64_t(1) << 62;
  check_error([&] { conv2d(zeros({1, 0, 3, 3}), zeros({0, 0, 1, 1}), Tensor(), groups); }, {"conv2d", "groups"});
  // Counts of expanded empty tensors: a mean over 2^80 elements is 0 / 0 (NaN), not an overflow.
  const Tensor e = zeros({0, 1, 1}).expand({0, int64_t(1) << 40, int64_t(1) << 40});
  CHECK(std::isnan(mean(e).item()));
  // A negative correction is allowed, as in PyTorch (n - correction divides); INT64_MIN overflowed.
  CHECK(var(ones({3}), {}, false, std::numeric_limits<int64_t>::min()).item() == 0.0);
}

TEST_CASE("errors: from_blob checks its pointer and shape") {
  check_error([&] { from_blob(nullptr, {4}, DType::f32); }, {"from_blob", "null pointer", "16 bytes"});
  float buf[6] = {};
  check_error([&] { from_blob(buf, {-2, -3}, DType::f32); }, {"from_blob", "negative size"});
  CHECK(from_blob(nullptr, {0, 3}, DType::f32).numel() == 0);  // nothing to point at
  CHECK(from_blob(buf, {2, 3}, DType::f32).numel() == 6);
}

TEST_CASE("integer arithmetic wraps modulo 2^64, and INT64_MIN / -1 does not trap") {
  const int64_t mn = std::numeric_limits<int64_t>::min(), mx = std::numeric_limits<int64_t>::max();
  auto i64 = [](const std::vector<int64_t>& v) { return from_vector<int64_t>(v, {int64_t(v.size())}); };
  CHECK(div(i64({mn, 7, -7, 5}), i64({-1, -1, 2, 0})).to_vector<int64_t>() == std::vector<int64_t>{mn, -7, -3, 0});
  CHECK(add(i64({mx, mn}), i64({1, -1})).to_vector<int64_t>() == std::vector<int64_t>{mn, mx});
  CHECK(sub(i64({mn}), i64({1})).to_vector<int64_t>() == std::vector<int64_t>{mx});
  CHECK(mul(i64({mx, int64_t(1) << 62}), i64({2, 4})).to_vector<int64_t>() == std::vector<int64_t>{-2, 0});
  CHECK(neg(i64({mn, 3})).to_vector<int64_t>() == std::vector<int64_t>{mn, -3});
  CHECK(abs(i64({mn, -3})).to_vector<int64_t>() == std::vector<int64_t>{mn, 3});
  CHECK(square(i64({int64_t(1) << 32, -3})).to_vector<int64_t>() == std::vector<int64_t>{0, 9});
  CHECK(mul(i64({mx}), 2.0).to_vector<int64_t>() == std::vector<int64_t>{-2});
  CHECK(add(i64({mx}), 1.0).to_vector<int64_t>() == std::vector<int64_t>{mn});
  CHECK(sum(i64({mx, 1, 5})).to_vector<int64_t>() == std::vector<int64_t>{mn + 5});
  // The accumulating index ops too: INT64_MAX + 1 at a repeated index.
  Tensor acc = i64({mx, 0, mn});
  cpu_backend().index_add(acc, 0, i64({0, 2, 0}), i64({1, -1, 2}));
  CHECK(acc.to_vector<int64_t>() == std::vector<int64_t>{mn + 2, 0, mx});
  acc = i64({mx, 0});
  cpu_backend().scatter_add(acc, 0, i64({0, 0}), i64({1, 1}));
  CHECK(acc.to_vector<int64_t>() == std::vector<int64_t>{mn + 1, 0});
}

TEST_CASE("conversions to integers are defined for NaN and out-of-range values, as x86 and PyTorch give them") {
  const int64_t mn = std::numeric_limits<int64_t>::min();
  const Tensor f = from_vector<double>({NAN, INFINITY, -INFINITY, 1e30, -2.7, 2.7, 300.0}, {7});
  CHECK(f.to(DType::i64).to_vector<int64_t>() == std::vector<int64_t>{mn, mn, mn, mn, -2, 2, 300});
  CHECK(f.to_vector<int64_t>() == std::vector<int64_t>{mn, mn, mn, mn, -2, 2, 300});
  // uint8 takes the int64's low bits: 300 -> 44, -2 -> 254.
  CHECK(f.to(DType::u8).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 0, 254, 2, 44});
  CHECK(from_vector<double>({NAN, 1e30, 3.9}, {3}, DType::i64).to_vector<int64_t>() == std::vector<int64_t>{mn, mn, 3});
}

TEST_CASE("errors: integer tensors refuse values they cannot hold, in fill, full and add_") {
  check_error([&] { full({2}, 2.5, DType::i64); }, {"full", "2.5 is not an integer"});
  check_error([&] { full({2}, NAN, DType::i64); }, {"full", "nan is not an integer"});
  check_error([&] { full({2}, 1e30, DType::i64); }, {"full", "is outside the range of int64"});
  check_error([&] { full({2}, 0x1p63, DType::i64); }, {"full", "is outside the range of int64"});
  check_error([&] { full({2}, 300, DType::u8); }, {"full", "300 is outside the range of uint8 (0 to 255)"});
  check_error([&] { full({2}, -1, DType::u8); }, {"full", "-1 is outside the range of uint8"});
  check_error([&] { zeros({2}, DType::u8).fill_(256); }, {"fill_", "256 is outside the range of uint8", "[2]"});
  CHECK(values(full({2}, 255, DType::u8)) == std::vector<double>{255, 255});
  CHECK(values(full({1}, -0x1p63, DType::i64)) == std::vector<double>{-0x1p63});
  check_error([&] { zeros({2}, DType::i64).fill_(2.5); }, {"fill_", "2.5"});
  check_error([&] { zeros({3}, DType::i64).add_(full({3}, 0.7)); }, {"add_", "truncate"});
  CHECK(values(full({2}, 3.0, DType::i64)) == std::vector<double>{3, 3});
  Tensor i = zeros({3}, DType::i64);
  i.add_(from_vector<int64_t>({1, 2, 3}, {3}), 2.0);
  CHECK(values(i) == std::vector<double>{2, 4, 6});
}

TEST_CASE("errors: arguments that would silently give garbage are refused") {
  Generator g(1);
  check_error([&] { uniform({3}, 2.0, 1.0, g); }, {"uniform", "lo <= hi"});
  check_error([&] { normal({3}, 0.0, -1.0, g); }, {"normal", "std >= 0"});
  check_error([&] { clamp(zeros({3}), NAN, 1.0); }, {"clamp", "NaN bound"});
  check_error([&] { randperm(-1, g); }, {"randperm", "-1"});
  check_error([&] { randint({-1}, 5, g); }, {"randint", "negative size"});
  check_error([&] { arange(0.0, 1e13, 1.0); }, {"arange", "too many"});
  // Below the cap, a size no machine has fails through the allocator (it was a std::bad_alloc).
  check_error([&] { arange(0.0, 1e12, 1.0); }, {"out of host memory allocating 8000000000000 bytes"});
  check_error([&] { zeros({2, 3}).copy_(ones({3, 2})); }, {"copy_", "[3, 2]", "[2, 3]"});
  Tensor x = ones({3}).requires_grad_();
  check_error([&] { x.set_grad(zeros({2, 3})); }, {"set_grad", "[2, 3]", "[3]"});
  check_error([&] { x.set_grad(zeros({3}, DType::f64)); }, {"set_grad", "float64"});
  x.set_grad(full({3}, 2.0));
  CHECK(values(x.grad()) == std::vector<double>{2, 2, 2});
  check_error([&] { count_correct(zeros({3, 4}), zeros({3, 1}, DType::i64)); }, {"count_correct", "[3, 1]"});
  check_error([&] { count_correct(zeros({3, 4}), zeros({3})); }, {"count_correct", "class indices"});
  CHECK(count_correct(from_vector<float>({0, 1, 1, 0}, {2, 2}), from_vector<int64_t>({1, 1}, {2})) == 1);
}

TEST_CASE("relu keeps NaN, as PyTorch does: a diverged network is not hidden behind zeros") {
  const Tensor x = from_vector<float>({NAN, -1, 0, 2}, {4});
  const auto y = relu(x).to_vector<float>();
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 0.0f);
  CHECK(!std::signbit(y[1]));  // +0, as before, for every number
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == 2.0f);
  CHECK(values(relu(from_vector<int64_t>({-3, 4}, {2}))) == std::vector<double>{0, 4});
}

TEST_CASE("errors: a NaN prints as nan whatever its sign bit, alone or in a list") {
  const double neg = -std::numeric_limits<double>::quiet_NaN();
  REQUIRE(std::signbit(neg));
  CHECK(str("loss ", neg) == "loss nan");  // the stream alone prints "-nan"
  CHECK(str(std::numeric_limits<double>::quiet_NaN(), " ", float(neg)) == "nan nan");
  CHECK(str(std::vector<double>{1.5, neg, -INFINITY}) == "[1.5, nan, -inf]");
  CHECK(str(-0.25, " ", 3) == "-0.25 3");
}
