// tests/core/test_random.cpp: the counter-based generator: Philox4x32-10 against the published
// known-answer vectors, reproducibility from (seed, offset), offsets that advance so draws never
// repeat, loose statistical checks of rand/randn, ranges of uniform/randint (in every float
// storage type), and randperm.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace minima;
using namespace minima::testing;

TEST_CASE("random: Philox4x32-10 matches the Random123 known-answer vectors") {
  // (counter words c0..c3, key words k0..k1) -> output words; counter = (c1:c0, c3:c2), seed = k1:k0.
  struct Kat {
    uint32_t c[4], k[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const auto& k : kats) {
    uint64_t lo = (uint64_t(k.c[1]) << 32) | k.c[0], hi = (uint64_t(k.c[3]) << 32) | k.c[2];
    uint64_t seed = (uint64_t(k.k[1]) << 32) | k.k[0];
    auto r = Philox::generate(seed, lo, hi);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.out[i]);
  }
}

TEST_CASE("random: the same seed and offset give the same values and other seeds do not") {
  Generator a(42), b(42), c(43);
  Tensor ra = rand({1000}, a), rb = rand({1000}, b), rc = rand({1000}, c);
  CHECK(values(ra) == values(rb));
  std::vector<double> va = values(ra), vc = values(rc);
  int same = 0;
  for (size_t i = 0; i < va.size(); ++i) same += va[i] == vc[i];
  CHECK(same < 5);
  // set_state replays a draw; a copied generator continues identically.
  Generator d(0);
  d.set_state(42, 0);
  CHECK(values(rand({1000}, d)) == va);
  Generator e = a;
  CHECK(values(randn({77}, e)) == values(randn({77}, a)));
  // Element i of a draw does not depend on the draw's size or shape.
  Generator f(7), h(7);
  std::vector<double> small = values(randn({10}, f)), big = values(randn({4, 25}, h));
  CHECK(std::equal(small.begin(), small.end(), big.begin()));
  // Float32 draws are the float64 draws rounded.
  Generator p(9), q(9);
  std::vector<double> d64 = values(rand({500}, p, f64())), d32 = values(rand({500}, q, f32()));
  for (size_t i = 0; i < d64.size(); ++i)
    CHECK((d32[i] == double(float(d64[i])) || (float(d64[i]) >= 1.0f && d32[i] == 0.0)));
}

TEST_CASE("random: offsets advance so consecutive draws differ") {
  Generator g(5);
  CHECK(g.offset() == 0);
  Tensor r1 = rand({11}, g);
  uint64_t o1 = g.offset();
  CHECK(o1 >= 6);  // 11 uniforms consume at least ceil(11 / 2) counters
  Tensor r2 = rand({11}, g);
  CHECK(g.offset() > o1);
  std::vector<double> v1 = values(r1), v2 = values(r2);
  for (size_t i = 0; i < v1.size(); ++i) CHECK(v1[i] != v2[i]);
  uint64_t o2 = g.offset();
  Tensor n1 = randn({9}, g);
  CHECK(g.offset() > o2);
  Tensor n2 = randn({9}, g);
  CHECK(values(n1) != values(n2));
  // Scalar draws advance too, and never hand out values a later tensor draw repeats.
  Generator s(6);
  Tensor first = rand({6}, s, f64());  // float64, so values compare exactly with scalar draws
  std::set<double> scalars;
  for (int i = 0; i < 4; ++i) scalars.insert(s.uniform());
  CHECK(scalars.size() == 4);
  std::vector<double> later = values(rand({64}, s, f64()));
  for (double v : later) CHECK(scalars.count(v) == 0);
  for (double v : values(first)) CHECK(scalars.count(v) == 0);
  double n_a = s.normal(), n_b = s.normal();
  CHECK(n_a != n_b);
  // below() draws are unbiased integers in range.
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 7000; ++i) {
    uint64_t v = s.below(7);
    REQUIRE(v < 7);
    ++hist[v];
  }
  for (int h : hist) CHECK(std::abs(h - 1000) < 150);
}

TEST_CASE("random: rand and randn moments over 1e5 samples") {
  for (DType t : {DType::f32, DType::f64}) {
    Generator g(100 + uint64_t(t));
    const int64_t n = 100000;
    std::vector<double> u = values(rand({n}, g, TensorOptions(t)));
    double mean = 0, var = 0, lo = 1, hi = 0;
    for (double v : u) {
      mean += v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    mean /= n;
    for (double v : u) var += (v - mean) * (v - mean);
    var /= n - 1;
    CHECK(lo >= 0.0);
    CHECK(hi < 1.0);
    CHECK(std::abs(mean - 0.5) < 0.005);  // sd of the mean ~ 0.0009
    CHECK(std::abs(var - 1.0 / 12.0) < 0.002);
    // Coarse histogram: ten equal bins.
    std::vector<int> bins(10, 0);
    for (double v : u) ++bins[size_t(std::min(9.0, v * 10))];
    for (int b : bins) CHECK(std::abs(b - n / 10) < 600);

    std::vector<double> z = values(randn({n}, g, TensorOptions(t)));
    double zm = 0, zv = 0, z3 = 0;
    int64_t tail = 0;
    for (double v : z) zm += v;
    zm /= n;
    for (double v : z) {
      zv += (v - zm) * (v - zm);
      z3 += std::pow(v - zm, 3);
      tail += std::abs(v) > 2;
    }
    zv /= n - 1;
    z3 /= n;
    CHECK(std::abs(zm) < 0.015);  // sd of the mean ~ 0.003
    CHECK(std::abs(zv - 1.0) < 0.03);
    CHECK(std::abs(z3) < 0.06);  // symmetric
    CHECK(std::abs(double(tail) / n - 0.0455) < 0.004);
    // normal(mean, std) is an affine map of the same draws.
    Generator a(3), b(3);
    std::vector<double> s = values(normal({100}, 2.0, 0.5, a, TensorOptions(t)));
    std::vector<double> r = values(randn({100}, b, TensorOptions(t)));
    for (size_t i = 0; i < s.size(); ++i) CHECK(s[i] == doctest::Approx(2.0 + 0.5 * r[i]).epsilon(1e-6));
  }
}

TEST_CASE("random: uniform stays below its upper bound in every float storage type") {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    INFO(std::string(dtype_name(t)));
    Generator g(200);
    std::vector<double> v = values(uniform({200000}, -2.0, 3.0, g, TensorOptions(t)));
    double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
    CHECK(lo >= -2.0);
    CHECK(hi < 3.0);
    CHECK(lo < -1.9);
    CHECK(hi > 2.9);
    // rand near 1: rounding to a coarse storage grid must not produce 1.0.
    std::vector<double> r = values(rand({200000}, g, TensorOptions(t)));
    CHECK(*std::max_element(r.begin(), r.end()) < 1.0);
    CHECK(*std::min_element(r.begin(), r.end()) >= 0.0);
  }
}

TEST_CASE("random: randint covers 0 to high-1 evenly") {
  Generator g(300);
  Tensor r = randint({6000}, 6, g);
  CHECK(r.dtype() == DType::i64);
  std::vector<int64_t> v = r.to_vector<int64_t>();
  std::vector<int> hist(6, 0);
  for (int64_t x : v) {
    REQUIRE(x >= 0);
    REQUIRE(x < 6);
    ++hist[size_t(x)];
  }
  for (int h : hist) CHECK(std::abs(h - 1000) < 150);
  Tensor one = randint({10}, 1, g);
  CHECK(one.to_vector<int64_t>() == std::vector<int64_t>(10, 0));
}

TEST_CASE("random: randperm is a permutation and depends on the seed") {
  for (int64_t n : {0, 1, 2, 17, 1000}) {
    Generator g(uint64_t(400 + n));
    Tensor p = randperm(n, g);
    CHECK(p.dtype() == DType::i64);
    CHECK(p.shape() == Shape{n});
    std::vector<int64_t> v = p.to_vector<int64_t>();
    std::sort(v.begin(), v.end());
    for (int64_t i = 0; i < n; ++i) CHECK(v[size_t(i)] == i);
  }
  Generator a(1), b(2), c(1);
  std::vector<int64_t> pa = randperm(1000, a).to_vector<int64_t>(), pb = randperm(1000, b).to_vector<int64_t>();
  CHECK(pa != pb);
  CHECK(randperm(1000, c).to_vector<int64_t>() == pa);
  // Not the identity, and every position moves about as often as chance predicts.
  int fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += pa[size_t(i)] == i;
  CHECK(fixed < 10);
  // Each of the 6 orders of 3 elements shows up.
  std::set<std::vector<int64_t>> orders;
  Generator d(9);
  for (int i = 0; i < 200; ++i) orders.insert(randperm(3, d).to_vector<int64_t>());
  CHECK(orders.size() == 6);
}

TEST_CASE("random: Generator::mix derives distinct seeds") {
  std::set<uint64_t> seeds;
  for (uint64_t e = 0; e < 50; ++e) seeds.insert(Generator::mix(1, e));
  CHECK(seeds.size() == 50);
  CHECK(Generator::mix(1, 2, 3) == Generator::mix(1, 2, 3));
  CHECK(Generator::mix(1, 2, 3) != Generator::mix(2, 2, 3));
  CHECK(Generator::mix(1, 2, 3) != Generator::mix(1, 2, 4));
}
