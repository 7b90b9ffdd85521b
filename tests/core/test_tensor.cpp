// tests/core/test_tensor.cpp: tensor basics: views share storage, strides of permute/expand/
// slice, contiguity, reshape copying when it must, creation helpers, the value round trip through
// every dtype and the bf16 round-to-nearest-even conversion, and host memory reused across sizes.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "core/allocator.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

TEST_CASE("tensor: writes through a view are visible in the base") {
  Generator g(1);
  Tensor base = urand({5, 6}, g);
  std::vector<double> before = values(base);
  Tensor v = base.slice(1, 1, 6, 2);  // columns 1, 3, 5
  CHECK(v.storage() == base.storage());
  CHECK(v.shape() == Shape{5, 3});
  v.fill_(7.0);
  std::vector<double> after = values(base);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      double want = (j % 2 == 1) ? 7.0 : before[size_t(i * 6 + j)];
      CHECK(after[size_t(i * 6 + j)] == want);
    }
  // A write through a transposed view lands at the transposed position.
  Tensor t = base.t();
  Tensor one = t.select(0, 2).select(0, 4);  // t[2, 4] == base[4, 2]
  one.fill_(-3.0);
  CHECK(at(base, {4, 2}) == -3.0);
  // copy_ into a view converts dtype and broadcasts.
  Tensor row = from_vector<float>({10, 20, 30, 40, 50, 60}, {6}, f32());
  base.narrow(0, 1, 2).copy_(row);
  for (int64_t j = 0; j < 6; ++j) {
    CHECK(at(base, {1, j}) == 10.0 * double(j + 1));
    CHECK(at(base, {2, j}) == 10.0 * double(j + 1));
  }
}

TEST_CASE("tensor: strides of permute transpose expand and slice") {
  Tensor x = zeros({2, 3, 4});
  CHECK(x.strides() == Shape{12, 4, 1});
  Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK_FALSE(p.is_contiguous());
  Tensor tr = x.transpose(0, -1);
  CHECK(tr.shape() == Shape{4, 3, 2});
  CHECK(tr.strides() == Shape{1, 4, 12});
  // t() as in PyTorch: a matrix's transpose; vectors and scalars unchanged.
  CHECK(zeros({2, 5}).t().shape() == Shape{5, 2});
  Tensor v = zeros({5});
  CHECK(v.t().shape() == Shape{5});
  CHECK(v.t().storage() == v.storage());
  CHECK(zeros({}).t().dim() == 0);

  Tensor c = zeros({3, 1});
  Tensor e = c.expand({2, 3, 5});
  CHECK(e.shape() == Shape{2, 3, 5});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(e.storage() == c.storage());
  Tensor e2 = c.expand({-1, 4});
  CHECK(e2.shape() == Shape{3, 4});

  Tensor s = x.slice(2, 1, 4, 2);
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.strides() == Shape{12, 4, 2});
  CHECK(s.offset() == 1);
  Tensor neg = x.slice(1, -2, 3);
  CHECK(neg.shape() == Shape{2, 2, 4});
  CHECK(neg.offset() == 4);
  Tensor sel = x.select(1, -1);
  CHECK(sel.shape() == Shape{2, 4});
  CHECK(sel.offset() == 8);
}

TEST_CASE("tensor: contiguous and is_contiguous") {
  Generator g(2);
  Tensor x = urand({3, 4, 5}, g);
  CHECK(x.is_contiguous());
  CHECK(x.contiguous().impl() == x.impl());
  Tensor p = x.permute({1, 2, 0});
  CHECK_FALSE(p.is_contiguous());
  Tensor c = p.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.storage() != x.storage());
  CHECK(c.shape() == p.shape());
  for (int64_t i = 0; i < c.numel(); ++i) {
    auto idx = unravel(i, c.shape());
    CHECK(at(c, idx) == at(x, {idx[2], idx[0], idx[1]}));
  }
  // Size-1 dims do not break contiguity, whatever their stride.
  Tensor u = x.select(0, 1).unsqueeze(1);
  CHECK(u.is_contiguous());
  // A column slice is not contiguous; a leading-row slice is.
  CHECK_FALSE(x.narrow(2, 0, 2).is_contiguous());
  CHECK(x.narrow(0, 1, 2).is_contiguous());
}

TEST_CASE("tensor: reshape is a view when it can be and a copy otherwise") {
  Generator g(3);
  Tensor x = urand({4, 6}, g);
  Tensor r = x.reshape({2, 2, 3, 2});
  CHECK(r.storage() == x.storage());
  CHECK(values(r) == values(x));
  Tensor inferred = x.view({3, -1});
  CHECK(inferred.shape() == Shape{3, 8});

  Tensor t = x.t();  // [6, 4], not contiguous
  Tensor flat = t.reshape({-1});
  CHECK(flat.storage() != x.storage());
  CHECK(flat.shape() == Shape{24});
  std::vector<double> fv = values(flat);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 4; ++j) CHECK(fv[size_t(i * 4 + j)] == at(x, {j, i}));
  // Splitting a dim of a transposed tensor is still a view.
  Tensor split = t.reshape({3, 2, 4});
  CHECK(split.storage() == x.storage());
  CHECK(values(split) == values(t));
  // flatten and squeeze/unsqueeze.
  Tensor y = urand({2, 1, 3, 4}, g);
  CHECK(y.flatten(1).shape() == Shape{2, 12});
  CHECK(y.flatten(1, 2).shape() == Shape{2, 3, 4});
  CHECK(y.squeeze(1).shape() == Shape{2, 3, 4});
  CHECK(y.squeeze(0).shape() == Shape{2, 1, 3, 4});
  CHECK(y.unsqueeze(-1).shape() == Shape{2, 1, 3, 4, 1});
  CHECK(y.unsqueeze(0).shape() == Shape{1, 2, 1, 3, 4});
}

TEST_CASE("tensor: zero-dim and empty tensors") {
  Tensor s = scalar_tensor(3.5, f64());
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item() == 3.5);
  CHECK(s.reshape({1}).shape() == Shape{1});
  CHECK(s.unsqueeze(0).shape() == Shape{1});
  CHECK(s.view({1, 1}).item() == 3.5);
  CHECK(s.flatten().shape() == Shape{1});
  CHECK(sum(s).item() == 3.5);

  Tensor e = zeros({0, 3});
  CHECK(e.numel() == 0);
  CHECK(values(e).empty());
  Tensor e2 = ones({2, 0, 3});
  CHECK(values(add(e2, 1.0)).empty());
  CHECK(sum(e2, {1}).shape() == Shape{2, 3});
  CHECK(values(sum(e2, {1})) == std::vector<double>(6, 0.0));
  Generator g(4);
  Tensor x = urand({2, 3}, g);
  Tensor c = cat({x, zeros({0, 3}, f64()), x}, 0);
  CHECK(c.shape() == Shape{4, 3});
  CHECK(x.slice(0, 1, 1).numel() == 0);
  // An empty view whose dims cannot be merged still copies (to nothing).
  Tensor ev = urand({5, 7}, g).t().slice(0, 0, 0);
  CHECK(ev.shape() == Shape{0, 5});
  CHECK(ev.contiguous().numel() == 0);
  CHECK(values(add(ev, 1.0)).empty());
  // Empty tensors are contiguous whatever their strides, so the kernels that need contiguous
  // outputs take them: random fills (which used to refuse [2, 0, 3]) and reductions.
  CHECK(e2.is_contiguous());
  CHECK(ev.is_contiguous());
  CHECK(randn({2, 0, 3}, g).shape() == Shape{2, 0, 3});
  CHECK(urand({0, 4}, g).numel() == 0);
}

TEST_CASE("tensor: from_vector and to_vector round trip every dtype") {
  Generator g(5);
  SUBCASE("float32") {
    std::vector<float> v(37);
    for (auto& f : v) f = float(g.normal() * 1e3);
    Tensor t = from_vector(v, {37}, f32());
    CHECK(t.dtype() == DType::f32);
    CHECK(t.to_vector<float>() == v);
  }
  SUBCASE("float64") {
    std::vector<double> v(23);
    for (auto& d : v) d = g.normal() * 1e-7;
    Tensor t = from_vector(v, {23}, f64());
    CHECK(t.to_vector<double>() == v);
  }
  SUBCASE("bfloat16 on values it represents exactly") {
    std::vector<float> v;
    for (int i = -40; i <= 40; ++i) v.push_back(float(i) * 0.25f);
    v.push_back(65536.0f);
    v.push_back(-std::ldexp(1.0f, -100));
    Tensor t = from_vector(v, {int64_t(v.size())}, TensorOptions(DType::bf16));
    CHECK(t.dtype() == DType::bf16);
    CHECK(t.element_size() == 2);
    CHECK(t.to_vector<float>() == v);
  }
  SUBCASE("int64 beyond 32 bits") {
    std::vector<int64_t> v;
    v.reserve(18);
    for (int i = 0; i < 17; ++i) v.push_back(int64_t(g.below(1ull << 40)) - (int64_t(1) << 39));
    v.push_back(std::numeric_limits<int64_t>::max());
    v.push_back(std::numeric_limits<int64_t>::min());
    Tensor t = from_vector(v, {int64_t(v.size())}, TensorOptions(DType::i64));
    CHECK(t.to_vector<int64_t>() == v);
  }
  SUBCASE("uint8 full range") {
    std::vector<uint8_t> v;
    v.reserve(256);
    for (int i = 0; i < 256; ++i) v.push_back(uint8_t((i * 37) % 256));
    Tensor t = from_vector(v, {16, 16}, TensorOptions(DType::u8));
    CHECK(t.to_vector<uint8_t>() == v);
  }
  SUBCASE("without options the dtype follows the element type") {
    Tensor i = from_vector<int64_t>({3, -1, 1ll << 40}, {3});
    CHECK(i.dtype() == DType::i64);
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{3, -1, 1ll << 40});
    CHECK(from_vector<int>({7, 8}, {2}).dtype() == DType::i64);
    CHECK(from_vector<uint8_t>({255}, {1}).dtype() == DType::u8);
    CHECK(from_vector<double>({0.5}, {1}).dtype() == DType::f32);
    CHECK(from_vector<float>({0.5f}, {1}).dtype() == DType::f32);
  }
}

namespace {
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Reference bf16 rounding of a finite float: the nearer of the two bf16 neighbours (compared in
// double), ties to the even one.
uint16_t ref_bf16(float f) {
  uint32_t u = float_bits(f);
  uint16_t lo = uint16_t(u >> 16);
  uint16_t hi = uint16_t(lo + 1);
  double dl = std::abs(double(bits_float(uint32_t(lo) << 16)) - double(f));
  double dh = std::abs(double(bits_float(uint32_t(hi) << 16)) - double(f));
  if ((u & 0xffffu) == 0) return lo;
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}
}  // namespace

TEST_CASE("tensor: float32 to bfloat16 rounds to nearest even") {
  // Hand-picked: exact ties in both directions, just below and just above a tie.
  std::vector<float> v = {bits_float(0x3F808000u), bits_float(0x3F818000u), bits_float(0x3F807FFFu),
                          bits_float(0x3F808001u), bits_float(0xBF808000u), bits_float(0xBF818000u),
                          bits_float(0x7F7FFFFFu)};
  Generator g(6);
  for (int i = 0; i < 2000; ++i) v.push_back(float(g.normal() * std::exp(8.0 * g.normal())));
  Tensor src = from_vector(v, {int64_t(v.size())}, f32());
  Tensor b = src.to(DType::bf16);
  const bf16* p = b.data<bf16>();
  for (size_t i = 0; i < v.size(); ++i) {
    if (float_bits(v[i]) == 0x7F7FFFFFu) {
      CHECK(std::isinf(float(p[i])));  // the largest float rounds up to infinity
      continue;
    }
    CHECK_MESSAGE(p[i].bits == ref_bf16(v[i]), "value " << v[i]);
  }
  CHECK(p[0].bits == 0x3F80);
  CHECK(p[1].bits == 0x3F82);
  CHECK(p[2].bits == 0x3F80);
  CHECK(p[3].bits == 0x3F81);
  // Infinity and NaN survive.
  Tensor special = from_vector<float>({std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                       std::numeric_limits<float>::quiet_NaN()},
                                      {3}, f32())
                       .to(DType::bf16);
  auto sv = special.to_vector<float>();
  CHECK(std::isinf(sv[0]));
  CHECK(sv[0] > 0);
  CHECK(std::isinf(sv[1]));
  CHECK(sv[1] < 0);
  CHECK(std::isnan(sv[2]));
}

TEST_CASE("tensor: dtype conversions between all types") {
  std::vector<double> v = {0, 1, 2, 3, 100, 200, 255};
  Tensor d = from_vector(v, {7}, f64());
  for (DType t : {DType::f32, DType::bf16, DType::i64, DType::u8}) {
    Tensor c = d.to(t);
    CHECK(c.dtype() == t);
    CHECK(c.to(DType::f64).to_vector<double>() == v);
  }
  // Float to int truncates toward zero.
  Tensor f = from_vector<double>({1.75, -1.75, 2.5}, {3}, f64());
  CHECK(f.to(DType::i64).to_vector<int64_t>() == std::vector<int64_t>{1, -1, 2});
  // f32 <-> f64 keeps every f32 value.
  Generator g(7);
  Tensor x = urand({50}, g, -1e4, 1e4, DType::f32);
  CHECK(x.to(DType::f64).to(DType::f32).to_vector<float>() == x.to_vector<float>());
}

TEST_CASE("tensor: arange full and friends") {
  Tensor a = arange(0.0, 1.0, 0.25, f64());
  CHECK(a.to_vector<double>() == std::vector<double>{0, 0.25, 0.5, 0.75});
  Tensor b = arange(2.0, -3.0, -1.5, f64());
  CHECK(b.to_vector<double>() == std::vector<double>{2, 0.5, -1, -2.5});
  Tensor c = arange(5, TensorOptions(DType::i64));
  CHECK(c.dtype() == DType::i64);
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(0).numel() == 0);
  CHECK(arange(3.0, 3.0).numel() == 0);

  Tensor f = full({2, 3}, -1.5, f64());
  CHECK(f.to_vector<double>() == std::vector<double>(6, -1.5));
  Tensor u = full({4}, 200, TensorOptions(DType::u8));
  CHECK(u.to_vector<int64_t>() == std::vector<int64_t>(4, 200));
  Tensor hb = full({3}, 1.5, TensorOptions(DType::bf16));
  CHECK(hb.to_vector<float>() == std::vector<float>(3, 1.5f));
  CHECK(values(ones({2, 2})) == std::vector<double>(4, 1.0));
  CHECK(values(zeros_like(f)) == std::vector<double>(6, 0.0));
  CHECK(ones_like(f).dtype() == DType::f64);
  Tensor rg = ones({2}, TensorOptions(DType::f32, Device::cpu(), true));
  CHECK(rg.requires_grad());
  CHECK(rg.is_leaf());
}

TEST_CASE("tensor: clone copies and to_vector reads views in logical order") {
  Generator g(8);
  Tensor x = urand({3, 4}, g);
  Tensor c = x.clone();
  CHECK(c.storage() != x.storage());
  CHECK(values(c) == values(x));
  c.fill_(0.0);
  CHECK(values(x) != values(c));
  Tensor tv = x.t();
  std::vector<double> tvv = values(tv);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) CHECK(tvv[size_t(i * 3 + j)] == at(x, {j, i}));
  // A flipped tensor is a fresh contiguous copy with the order reversed.
  Tensor fl = flip(x, {0, 1});
  CHECK(fl.is_contiguous());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) CHECK(at(fl, {i, j}) == at(x, {2 - i, 3 - j}));
}

TEST_CASE("tensor: in-place ops on views") {
  Generator g(9);
  Tensor x = urand({4, 5}, g);
  std::vector<double> before = values(x);
  Tensor col = x.select(1, 2);
  col.mul_(2.0);
  col.add_(ones({4}, f64()), 0.5);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      double b = before[size_t(i * 5 + j)];
      CHECK(at(x, {i, j}) == doctest::Approx(j == 2 ? 2 * b + 0.5 : b).epsilon(1e-15));
    }
  // add_ broadcasts its argument.
  Tensor y = zeros({2, 3}, f64());
  y.add_(from_vector<double>({1, 2, 3}, {3}, f64()));
  CHECK(values(y) == std::vector<double>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("tensor: in-place writes from an overlapping view read the source before writing") {
  // Shifting a vector right by one: the source overlaps the destination one element behind.
  Tensor x = arange(0, 6, 1, f64());
  x.slice(0, 1, 6).copy_(x.slice(0, 0, 5));
  CHECK(values(x) == std::vector<double>{0, 0, 1, 2, 3, 4});
  // And left by one (the other direction of the overlap).
  Tensor l = arange(0, 6, 1, f64());
  l.slice(0, 0, 5).copy_(l.slice(0, 1, 6));
  CHECK(values(l) == std::vector<double>{1, 2, 3, 4, 5, 5});
  // A + A^T in place: the same memory in another layout.
  Tensor a = arange(0, 9, 1, f64()).reshape({3, 3});
  a.add_(a.t());
  CHECK(values(a) == std::vector<double>{0, 4, 8, 4, 8, 12, 8, 12, 16});
  // Every row plus the first one, read before row 0 itself is doubled.
  Tensor r = arange(0, 6, 1, f64()).reshape({3, 2});
  r.add_(r.select(0, 0));
  CHECK(values(r) == std::vector<double>{0, 2, 2, 4, 4, 6});
  // The same view as source is no overlap to worry about: x += x doubles.
  Tensor d = arange(0, 4, 1, f64());
  d.add_(d);
  CHECK(values(d) == std::vector<double>{0, 2, 4, 6});
  // A destination with several elements in one place: the result would depend on the write order.
  Tensor base = zeros({1}, f64());
  check_error([&] { base.expand({4}).add_(arange(1, 5, 1, f64())); }, {"add_", "[4]", "expand"});
  check_error([&] { base.expand({4}).copy_(arange(1, 5, 1, f64())); }, {"copy_", "expand"});
  check_error([&] { base.expand({4}).mul_(2.0); }, {"mul_", "expand"});
  CHECK(values(base) == std::vector<double>{0});
  base.expand({4}).fill_(7);  // the same value everywhere: well defined
  CHECK(values(base) == std::vector<double>{7});
}

TEST_CASE("tensor: elementwise broadcasting and dtype promotion") {
  Generator g(10);
  Tensor a = urand({3, 1, 4}, g);
  Tensor b = urand({2, 1}, g, -1, 1, DType::f32);
  Tensor c = add(a, b);
  CHECK(c.shape() == Shape{3, 2, 4});
  CHECK(c.dtype() == DType::f64);
  for (int64_t i = 0; i < c.numel(); ++i) {
    auto idx = unravel(i, c.shape());
    CHECK(at(c, idx) == at(a, {idx[0], 0, idx[2]}) + double(float(at(b, {idx[1], 0}))));
  }
  Tensor m = mul(from_vector<int64_t>({1, 2, 3, 4}, {4}, TensorOptions(DType::i64)), a.select(1, 0));
  CHECK(m.dtype() == DType::f64);
  Tensor cmp = lt(a, zeros({}, f64()));
  CHECK(cmp.dtype() == DType::u8);
  std::vector<double> av = values(a), cv = values(cmp);
  for (size_t i = 0; i < av.size(); ++i) CHECK(cv[i] == (av[i] < 0 ? 1.0 : 0.0));
}

TEST_CASE("tensor: dim arguments on 0-d tensors follow PyTorch or fail cleanly") {
  Generator g(11);
  Tensor s = urand({}, g);
  double v = s.item();
  // Reductions accept dim 0 / -1 of a 0-d tensor and return it.
  CHECK(sum(s, {0}).item() == v);
  CHECK(sum(s, {-1}, true).dim() == 0);
  CHECK(mean(s, {0}).item() == v);
  CHECK(max(s, {0}).item() == v);
  CHECK(min(s, {-1}, true).item() == v);
  CHECK(argmax(s, 0).item() == 0);
  CHECK(argmin(s, -1, true).item() == 0);
  CHECK(log_softmax(s, 0).item() == 0.0);
  CHECK(softmax(s, -1).item() == 1.0);
  // Shape ops that are identities on 0-d tensors.
  CHECK(s.squeeze(0).dim() == 0);
  CHECK(s.transpose(0, -1).item() == v);
  CHECK(flip(s, {0}).item() == v);
  CHECK(s.permute({}).item() == v);
  CHECK(s.expand({2, 2}).shape() == Shape{2, 2});
  // Ops that need a dim refuse with an error.
  check_error([&] { s.size(0); }, {"0-d"});
  check_error([&] { s.select(0, 0); }, {"0-d"});
  check_error([&] { s.narrow(0, 0, 1); }, {"0-d"});
  check_error([&] { s.slice(0, 0, 1); }, {"0-d"});
  check_error([&] { cat({s, s}, 0); }, {"zero-dimensional"});
  check_error([&] { index_select(s, 0, zeros({1}, TensorOptions(DType::i64))); }, {"0-d"});
  check_error([&] { gather(s, 0, zeros({}, TensorOptions(DType::i64))); }, {"0-d"});
  check_error([&] { sum(s, {1}); }, {"dim 1"});
  check_error([&] { flip(urand({2, 2}, g), {0, -2}); }, {"more than once"});
  // stack of 0-d tensors is a 1-d tensor.
  CHECK(stack({s, s}, 0).shape() == Shape{2});
}

TEST_CASE("tensor: freed host memory serves a later tensor of another size without fresh pages") {
  // The CPU allocator keeps freed memory in the process (core/allocator.cpp): a tensor of another
  // size must find its pages there instead of faulting in fresh ones, as each block of 32 MB and
  // more used to (one minor page fault per 4 KiB page touched).
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("skipped: under AddressSanitizer every block goes back to the sanitizer's allocator");
#else
  if (std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("GLIBC_TUNABLES")) {
    MESSAGE("skipped: malloc's settings come from the environment");
    return;
  }
  auto minor_faults = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return int64_t(u.ru_minflt);
  };
  // First a request that no machine can serve (4 PB): refused as out of memory, it must not
  // cost the later tensors their kept memory (glibc moves a thread whose request fails in its main
  // arena to an arena that maps every large block afresh; the allocator refuses it before that).
  // (glibc takes that arena from those of exited threads, so one thread runs and exits first.)
  std::thread([] { CHECK(sum(full({1000}, 1.0)).item() == 1000.0); }).join();
  CHECK_THROWS_WITH_AS(full({int64_t(1) << 50}, 0.0), doctest::Contains("out of host memory"), Error);
  const int64_t big = int64_t(64) << 20, other = int64_t(48) << 20;  // floats: 256 MB, then 192 MB
  {
    Tensor a = full({big}, 0.5);
    CHECK(sum(a).item() == 0.5 * double(big));
  }
  const int64_t before = minor_faults();
  Tensor b = full({other}, 0.25);
  const int64_t faults = minor_faults() - before;
  CHECK(sum(b).item() == 0.25 * double(other));
  INFO("minor page faults while allocating and filling 192 MB: ", faults);
  CHECK(faults < other * 4 / 4096 / 16);
#endif
}

TEST_CASE("tensor: the CPU allocator counts the bytes in use and their peak") {
  Allocator* a = allocator_for(Device::cpu());
  const size_t base = a->bytes_in_use();
  a->reset_peak();
  CHECK(a->peak_bytes() == base);
  {
    Tensor t = zeros({1000}, TensorOptions(DType::f64));
    CHECK(a->bytes_in_use() == base + 8000);
    Tensor u = zeros({3, 5});
    CHECK(a->bytes_in_use() == base + 8060);
  }
  CHECK(a->bytes_in_use() == base);
  CHECK(a->peak_bytes() == base + 8060);
  Tensor v = zeros({7}, TensorOptions(DType::u8));
  CHECK(a->peak_bytes() == base + 8060);
  a->reset_peak();
  CHECK(a->peak_bytes() == base + 7);
}
