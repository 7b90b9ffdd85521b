// tests/data/test_transforms.cpp: the experiments' dataset transforms: counts, zeroed fractions,
// label distributions, permutation properties and reproducibility from the seed.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/ops.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "helpers.h"

using namespace minima;
using namespace minima::data;
using testdata::contains;
using testdata::error_of;

namespace {

// Images with no zero pixel (values 1..255) and labels i % K.
Dataset nonzero_dataset(int64_t n, int64_t C, int64_t H, int64_t W, int64_t K = 10, uint32_t salt = 5) {
  Dataset d;
  d.name = "nonzero";
  d.num_classes = K;
  d.images = empty({n, C, H, W}, DType::u8);
  auto px = testdata::pattern(size_t(n * C * H * W), salt);
  uint8_t* p = d.images.data<uint8_t>();
  for (size_t k = 0; k < px.size(); ++k) p[k] = uint8_t(1 + px[k] % 255);
  d.labels = empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = i % K;
  channel_stats(d.images, d.mean, d.std);
  return d;
}

// Single-channel images whose pixel value encodes its position: 1 + q (q < 255).
Dataset position_images(int64_t n, int64_t C, int64_t H, int64_t W) {
  Dataset d = nonzero_dataset(n, C, H, W);
  uint8_t* p = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t q = 0; q < H * W; ++q) p[(i * C + c) * H * W + q] = uint8_t(1 + q + 7 * c);
  return d;
}

}  // namespace

TEST_CASE("transforms: subset keeps the first n, or the first n/K of every class") {
  Dataset d = nonzero_dataset(100, 1, 3, 3, 4);
  // Make the class sizes uneven: relabel the first 30 samples as class 0.
  for (int64_t i = 0; i < 30; ++i) d.labels.data<int64_t>()[i] = 0;
  Dataset a = subset(d, 10);
  CHECK(a.size() == 10);
  CHECK(a.images.to_vector<uint8_t>() == d.images.narrow(0, 0, 10).contiguous().to_vector<uint8_t>());
  Dataset b = subset(d, 10, true);
  auto y = b.labels.to_vector<int64_t>();
  std::vector<int64_t> count(4, 0);
  for (int64_t v : y) count[size_t(v)]++;
  CHECK(count == std::vector<int64_t>{3, 3, 2, 2});
  // Kept in dataset order: the chosen class-1 samples are the first three class-1 samples (31, 35, 39).
  std::vector<int64_t> firsts;
  auto xb = b.images.to_vector<uint8_t>();
  auto xd = d.images.to_vector<uint8_t>();
  for (int64_t k = 0; k < b.size(); ++k)
    if (y[size_t(k)] == 1) firsts.push_back(k);
  REQUIRE(firsts.size() == 3);
  const int64_t expect[3] = {33, 37, 41};
  for (int j = 0; j < 3; ++j)
    CHECK(std::equal(xb.begin() + firsts[size_t(j)] * 9, xb.begin() + firsts[size_t(j)] * 9 + 9,
                     xd.begin() + expect[j] * 9));
  CHECK(subset(d, 1000).size() == 100);
  CHECK(contains(error_of([&] { subset(d, 98, true); }), "has only"));
}

TEST_CASE("transforms: the adversarial set C has R copies with exactly int(p*C*H*W) zeros and random labels") {
  const int64_t N = 40, R = 5, C = 3, H = 8, W = 8, n = C * H * W;
  Dataset d = nonzero_dataset(N, C, H, W);
  Dataset a = adversarial_set(d, R, 0.1, 1);
  const int64_t k = zero_out_count(n, 0.1);
  CHECK(k == 19);  // int(192 * 0.1)
  CHECK(zero_out_count(3072, 0.1) == 307);
  CHECK(zero_out_count(784, 0.1) == 78);
  REQUIRE(a.size() == N * R);
  CHECK(a.images.shape() == Shape{N * R, C, H, W});
  CHECK(a.mean == d.mean);
  CHECK(a.std == d.std);
  auto src = d.images.to_vector<uint8_t>();
  auto out = a.images.to_vector<uint8_t>();
  std::vector<int64_t> zeros_at(size_t(n), 0);
  for (int64_t j = 0; j < N * R; ++j) {
    const int64_t i = j % N;
    int64_t zeros = 0, changed_to_nonzero = 0;
    for (int64_t e = 0; e < n; ++e) {
      uint8_t o = out[size_t(j * n + e)], s = src[size_t(i * n + e)];
      if (o == 0) {
        ++zeros;
        zeros_at[size_t(e)]++;
      } else if (o != s) {
        ++changed_to_nonzero;
      }
    }
    CHECK(zeros == k);
    CHECK(changed_to_nonzero == 0);
  }
  // Zeroed positions spread over every channel and position: each is hit about N*R*k/n = 19 times.
  const double expect = double(N * R * k) / double(n), sd = std::sqrt(expect * (1 - double(k) / double(n)));
  int64_t far = 0;
  for (int64_t e = 0; e < n; ++e) far += std::abs(double(zeros_at[size_t(e)]) - expect) > 4.5 * sd;
  CHECK(far == 0);
  // Labels: uniform over the classes, independent of the true label, different between copies.
  auto y = a.labels.to_vector<int64_t>();
  std::vector<int64_t> count(10, 0);
  int64_t same_as_true = 0, copies_differ = 0;
  for (int64_t j = 0; j < N * R; ++j) {
    count[size_t(y[size_t(j)])]++;
    same_as_true += y[size_t(j)] == (j % N) % 10;
    if (j >= N) copies_differ += y[size_t(j)] != y[size_t(j - N)];
  }
  const double m = double(N * R) / 10.0, s = std::sqrt(m * 0.9);
  for (int64_t c : count) CHECK(std::abs(double(c) - m) < 4.5 * s);
  CHECK(double(same_as_true) < double(N * R) / 10 + 4.5 * std::sqrt(double(N * R) * 0.09));
  CHECK(copies_differ > (N * (R - 1)) * 7 / 10);
  // Reproducible from the seed; another seed gives another set.
  Dataset b = adversarial_set(d, R, 0.1, 1), c = adversarial_set(d, R, 0.1, 2);
  CHECK(b.images.to_vector<uint8_t>() == out);
  CHECK(b.labels.to_vector<int64_t>() == y);
  CHECK(c.images.to_vector<uint8_t>() != out);
  CHECK(c.labels.to_vector<int64_t>() != y);
  // The input is left untouched.
  CHECK(d.images.to_vector<uint8_t>() == src);
  CHECK(contains(error_of([&] { adversarial_set(d, 0); }), "replication"));
  CHECK(contains(error_of([&] { adversarial_set(d, 2, 1.5); }), "fraction"));
  // N x R past 2^63 used to wrap around to a small buffer, then be written in full.
  CHECK(contains(error_of([&] { adversarial_set(d, int64_t(1) << 62); }), "too large"));
  CHECK(contains(error_of([&] { adversarial_set(d, (int64_t(1) << 62) / N + 1); }), "too large"));
}

TEST_CASE("transforms: label corruption with probability p") {
  Dataset d = nonzero_dataset(4000, 1, 2, 2);
  auto y0 = d.labels.to_vector<int64_t>();
  CHECK(corrupt_labels(d, 0.0, 3).labels.to_vector<int64_t>() == y0);
  for (double p : {0.3, 1.0}) {
    Dataset c = corrupt_labels(d, p, 3);
    auto y = c.labels.to_vector<int64_t>();
    int64_t changed = 0;
    std::vector<int64_t> count(10, 0);
    for (size_t i = 0; i < y.size(); ++i) {
      changed += y[i] != y0[i];
      count[size_t(y[i])]++;
    }
    // A corrupted label equals the true one with probability 1/K.
    const double q = p * 0.9, N = 4000;
    CHECK(std::abs(double(changed) - N * q) < 4.5 * std::sqrt(N * q * (1 - q)));
    if (p == 1.0)
      for (int64_t k : count) CHECK(std::abs(double(k) - 400) < 4.5 * std::sqrt(400 * 0.9));
    CHECK(corrupt_labels(d, p, 3).labels.to_vector<int64_t>() == y);  // reproducible
    CHECK(corrupt_labels(d, p, 4).labels.to_vector<int64_t>() != y);
    CHECK(c.images.data_ptr() == d.images.data_ptr());  // images shared, labels new
  }
  CHECK(d.labels.to_vector<int64_t>() == y0);
}

TEST_CASE("transforms: shuffled pixels use one permutation for train and test, channels together") {
  Splits s;
  s.train = position_images(6, 3, 5, 5);
  s.test = position_images(4, 3, 5, 5);
  Splits orig = s;
  shuffle_pixels(s, 9);
  auto perm = pixel_permutation(25, 9);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t q = 0; q < 25; ++q) CHECK(sorted[size_t(q)] == q);
  int64_t moved = 0;
  for (const Dataset* d : {&s.train, &s.test}) {
    auto v = d->images.to_vector<uint8_t>();
    for (int64_t i = 0; i < d->size(); ++i)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t q = 0; q < 25; ++q) {
          CHECK(v[size_t((i * 3 + c) * 25 + q)] == 1 + perm[size_t(q)] + 7 * c);
          moved += perm[size_t(q)] != q;
        }
  }
  CHECK(moved > 0);
  CHECK(orig.train.images.to_vector<uint8_t>() != s.train.images.to_vector<uint8_t>());
  CHECK(s.train.labels.to_vector<int64_t>() == orig.train.labels.to_vector<int64_t>());
  CHECK(pixel_permutation(25, 10) != perm);
}

TEST_CASE("transforms: random pixels permute each image with its own permutation") {
  Dataset d = position_images(30, 2, 4, 4);
  Dataset r = random_pixels(d, 5);
  auto v = r.images.to_vector<uint8_t>();
  std::set<std::vector<int64_t>> perms;
  for (int64_t i = 0; i < 30; ++i) {
    std::vector<int64_t> p(16);
    for (int64_t q = 0; q < 16; ++q) p[size_t(q)] = v[size_t((i * 2) * 16 + q)] - 1;
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t q = 0; q < 16; ++q) CHECK(sorted[size_t(q)] == q);  // a permutation of the positions
    for (int64_t q = 0; q < 16; ++q)
      CHECK(v[size_t((i * 2 + 1) * 16 + q)] == 1 + p[size_t(q)] + 7);  // same for channel 1
    perms.insert(p);
  }
  CHECK(perms.size() == 30);  // a new permutation per image
  CHECK(random_pixels(d, 5).images.to_vector<uint8_t>() == v);
  CHECK(random_pixels(d, 6).images.to_vector<uint8_t>() != v);
}

TEST_CASE("transforms: Gaussian images match the per-channel mean and std") {
  Dataset d = nonzero_dataset(200, 3, 8, 8);
  d.mean = {0.2, 0.5, 0.7};
  d.std = {0.1, 0.3, 0.05};
  Dataset g = gaussian_images(d, 1);
  CHECK(g.images.dtype() == DType::f32);
  CHECK(g.images.shape() == d.images.shape());
  CHECK(g.labels.to_vector<int64_t>() == d.labels.to_vector<int64_t>());
  auto v = g.images.to_vector<float>();
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    const double n = 200 * 64;
    for (int64_t i = 0; i < 200; ++i)
      for (int64_t q = 0; q < 64; ++q) {
        double x = v[size_t((i * 3 + c) * 64 + q)];
        s += x;
        s2 += x * x;
      }
    double m = s / n, sd = std::sqrt(s2 / n - m * m);
    CHECK(std::abs(m - d.mean[size_t(c)]) < 5 * d.std[size_t(c)] / std::sqrt(n));
    CHECK(std::abs(sd / d.std[size_t(c)] - 1) < 0.03);
  }
  CHECK(gaussian_images(d, 1).images.to_vector<float>() == v);
  g.validate();
}

TEST_CASE("transforms: center crop and the randomization names") {
  Splits s;
  s.train = position_images(3, 1, 6, 6);
  s.test = position_images(2, 1, 6, 6);
  center_crop(s, 4);
  CHECK(s.train.images.shape() == Shape{3, 1, 4, 4});
  auto v = s.train.images.to_vector<uint8_t>();
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) CHECK(v[size_t(y * 4 + x)] == 1 + (y + 1) * 6 + (x + 1));
  CHECK(s.test.mean == s.train.mean);
  CHECK(contains(error_of([&] { center_crop(s.train, 5); }), "does not fit"));
  for (const auto& k : randomization_names()) {
    Splits t;
    t.train = nonzero_dataset(20, 1, 3, 3);
    t.test = nonzero_dataset(5, 1, 3, 3);
    apply_randomization(t, k, 0.5, 1);
    t.train.validate();
    t.test.validate();
  }
  Splits t;
  t.train = nonzero_dataset(20, 1, 3, 3);
  t.test = t.train;
  CHECK(contains(error_of([&] { apply_randomization(t, "noise", 0, 1); }), "unknown randomization"));
}

TEST_CASE("transforms: whitening once equals the Loader's per-image whitening, for uint8 and float images") {
  Dataset d = nonzero_dataset(7, 3, 5, 4);
  uint8_t* p = d.images.data<uint8_t>();
  for (int64_t e = 0; e < 60; ++e) p[3 * 60 + e] = 200;  // a constant image: the std floor applies
  Dataset w = whiten_per_image(d);
  CHECK(w.images.dtype() == DType::f32);
  CHECK(w.images.shape() == d.images.shape());
  CHECK(w.labels.to_vector<int64_t>() == d.labels.to_vector<int64_t>());
  w.validate();
  // The Loader's on-the-fly values for the same samples.
  std::vector<int64_t> idx = {0, 1, 2, 3, 4, 5, 6};
  std::vector<float> batch(size_t(7 * 60));
  std::vector<int64_t> labels(7);
  auto table = normalization_table(d, Normalize::per_image);
  make_batch_cpu(d, idx.data(), 7, Augment{}, 0, Normalize::per_image, table.data(), batch.data(), labels.data());
  auto v = w.images.to_vector<float>();
  for (size_t k = 0; k < v.size(); ++k) CHECK(v[k] == doctest::Approx(batch[k]).epsilon(1e-5));
  for (int64_t i = 0; i < 7; ++i) {
    double s = 0, s2 = 0;
    for (int64_t e = 0; e < 60; ++e) {
      s += v[size_t(i * 60 + e)];
      s2 += double(v[size_t(i * 60 + e)]) * v[size_t(i * 60 + e)];
    }
    CHECK(std::abs(s / 60) < 1e-6);
    if (i == 3)
      CHECK(s2 < 1e-20);  // (x - mean) is 0 everywhere, up to the rounding of the mean
    else
      CHECK(std::sqrt(s2 / 60) == doctest::Approx(1).epsilon(1e-5));
  }
  // Float images (Gaussian ones) in pixel/255 units give the same values as their uint8 originals.
  Dataset f = d;
  f.images = d.images.to(DType::f32) * (1.0 / 255.0);
  auto vf = whiten_per_image(f).images.to_vector<float>();
  for (size_t k = 0; k < v.size(); ++k) CHECK(vf[k] == doctest::Approx(v[k]).epsilon(1e-5));
  Dataset bad = d;
  bad.images = d.images.to(DType::f64);
  CHECK(contains(error_of([&] { whiten_per_image(bad); }), "expected uint8 or float32"));
}
