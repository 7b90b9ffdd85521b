// tests/data/test_loader.cpp: the Loader's order, batching and last-batch policy, normalization,
// and the crop/flip augmentation (bounds, rates, dependence on (seed, epoch, sample) only).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/backend.h"
#include "data/loader.h"
#include "helpers.h"

using namespace minima;
using namespace minima::data;

namespace {

// n single-channel HxW images whose pixel at (y, x) is 1 + y*W + x (never 0, so padding shows),
// except that image i adds (i % 3) to tell images apart; label i % k.
Dataset position_dataset(int64_t n, int64_t H, int64_t W, int64_t k = 10) {
  Dataset d;
  d.name = "positions";
  d.num_classes = k;
  d.images = empty({n, 1, H, W}, DType::u8);
  d.labels = empty({n}, DType::i64);
  uint8_t* p = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    d.labels.data<int64_t>()[i] = i % k;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) p[(i * H + y) * W + x] = uint8_t(1 + y * W + x + (i % 3) * 64);
  }
  channel_stats(d.images, d.mean, d.std);
  return d;
}

Dataset random_dataset(int64_t n, int64_t C, int64_t H, int64_t W, uint32_t salt) {
  Dataset d;
  d.name = "random";
  d.num_classes = 10;
  d.images = empty({n, C, H, W}, DType::u8);
  auto px = testdata::pattern(size_t(n * C * H * W), salt);
  std::copy(px.begin(), px.end(), d.images.data<uint8_t>());
  d.labels = empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = (i * 7) % 10;
  channel_stats(d.images, d.mean, d.std);
  return d;
}

// Every image of a whitened batch x has mean 0 and standard deviation 1 over its values.
void check_whitened(const Tensor& x) {
  auto v = x.to_vector<float>();
  const int64_t n = x.numel() / x.size(0);
  for (int64_t b = 0; b < x.size(0); ++b) {
    double s1 = 0, s2 = 0;
    for (int64_t e = 0; e < n; ++e) {
      s1 += v[size_t(b * n + e)];
      s2 += double(v[size_t(b * n + e)]) * v[size_t(b * n + e)];
    }
    CHECK(std::abs(s1 / double(n)) < 1e-5);
    CHECK(std::sqrt(s2 / double(n)) == doctest::Approx(1.0).epsilon(1e-5));
  }
}

}  // namespace

TEST_CASE("loader: every sample once per epoch, seeded order, last-batch policy") {
  Dataset d = position_dataset(103, 4, 4);
  for (bool drop_last : {false, true}) {
    Loader L(d, 10, true, 42, {}, drop_last);
    CHECK(L.batches_per_epoch() == (drop_last ? 10 : 11));
    std::vector<int64_t> seen;
    Tensor x, y;
    int64_t batches = 0;
    while (L.next(x, y)) {
      ++batches;
      CHECK(x.dtype() == DType::f32);
      CHECK(x.shape()[1] == 1);
      CHECK(x.size(0) == y.size(0));
      CHECK(x.size(0) == ((!drop_last && batches == 11) ? 3 : 10));
      for (int64_t v : y.to_vector<int64_t>()) seen.push_back(v);
    }
    CHECK(batches == L.batches_per_epoch());
    CHECK(!L.next(x, y));  // stays at the end until the next epoch starts
    CHECK(int64_t(seen.size()) == L.samples_per_epoch());
  }
  Loader a(d, 10, true, 42), b(d, 10, true, 42), c(d, 10, true, 43);
  std::vector<int64_t> sorted = a.order();
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < d.size(); ++i) CHECK(sorted[size_t(i)] == i);  // a permutation
  CHECK(a.order() == b.order());                                         // same seed, same order
  CHECK(a.order() != c.order());                                         // another seed
  auto e0 = a.order();
  a.start_epoch(1);
  CHECK(a.order() != e0);  // a new order each epoch
  a.start_epoch(0);
  CHECK(a.order() == e0);  // and the same one again for the same epoch
  Loader seq(d, 10, false, 42);
  for (int64_t i = 0; i < d.size(); ++i) CHECK(seq.order()[size_t(i)] == i);
}

TEST_CASE("loader: a batch larger than the dataset is all of it, up to the largest batch size") {
  // --batch takes any size of at least 1; counting the last partial batch as (n + batch - 1) /
  // batch overflowed near INT64_MAX.
  Dataset d = position_dataset(37, 3, 3);
  std::vector<int64_t> all_labels = d.labels.to_vector<int64_t>();
  std::sort(all_labels.begin(), all_labels.end());
  for (int64_t batch :
       {int64_t(38), int64_t(1) << 40, std::numeric_limits<int64_t>::max() - 1, std::numeric_limits<int64_t>::max()}) {
    CAPTURE(batch);
    Loader L(d, batch, true, 7);
    CHECK(L.batches_per_epoch() == 1);
    CHECK(L.samples_per_epoch() == 37);
    Tensor x, y;
    REQUIRE(L.next(x, y));
    CHECK(x.size(0) == 37);
    std::vector<int64_t> labels = y.to_vector<int64_t>();
    std::sort(labels.begin(), labels.end());
    CHECK(labels == all_labels);  // the labels of all 37 samples
    CHECK(!L.next(x, y));
  }
  Loader exact(d, 37, false, 7);
  CHECK(exact.batches_per_epoch() == 1);
}

TEST_CASE("loader: batches hold the normalized pixels and labels of the epoch's order") {
  Dataset d = random_dataset(37, 3, 5, 6, 9);
  Loader L(d, 8, true, 7);
  L.start_epoch(3);
  Tensor x, y;
  int64_t pos = 0;
  const uint8_t* px = d.images.data<uint8_t>();
  const int64_t n = 3 * 5 * 6;
  while (L.next(x, y)) {
    auto xv = x.to_vector<float>();
    auto yv = y.to_vector<int64_t>();
    for (int64_t b = 0; b < x.size(0); ++b, ++pos) {
      int64_t i = L.order()[size_t(pos)];
      CHECK(yv[size_t(b)] == d.labels.data<int64_t>()[i]);
      for (int64_t e = 0; e < n; e += 7) {
        int64_t c = e / 30;
        double want = (px[i * n + e] / 255.0 - d.mean[size_t(c)]) / d.std[size_t(c)];
        CHECK(xv[size_t(b * n + e)] == doctest::Approx(want).epsilon(1e-6));
      }
    }
  }
  CHECK(pos == d.size());
}

TEST_CASE("loader: a normalized epoch has per-channel mean 0 and std 1") {
  Dataset d = random_dataset(64, 3, 8, 8, 4);
  Loader L(d, 64, false, 0);
  Tensor x, y;
  REQUIRE(L.next(x, y));
  auto v = x.to_vector<float>();
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    int64_t k = 0;
    for (int64_t b = 0; b < 64; ++b)
      for (int64_t e = 0; e < 64; ++e, ++k) {
        double t = v[size_t((b * 3 + c) * 64 + e)];
        s += t;
        s2 += t * t;
      }
    CHECK(std::abs(s / double(k)) < 1e-5);
    CHECK(std::sqrt(s2 / double(k)) == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("augment: crops stay inside the padded image, offsets and flips are uniform") {
  const int64_t n = 3000, H = 6, W = 7, pad = 4;
  Dataset d = position_dataset(n, H, W);
  Augment aug;
  aug.crop = true;
  aug.flip = true;
  aug.pad = pad;
  Loader L(d, 500, true, 11, aug, false, Device::cpu(), Normalize::none);
  std::vector<int64_t> dy_count(2 * pad + 1, 0), dx_count(2 * pad + 1, 0);
  int64_t flips = 0, ambiguous = 0, pos = 0;
  Tensor x, y;
  while (L.next(x, y)) {
    auto v = x.to_vector<float>();
    for (int64_t b = 0; b < x.size(0); ++b, ++pos) {
      const int64_t i = L.order()[size_t(pos)];
      // Recover the raw pixel values and find the (dy, dx, flip) that explains every one of them.
      std::vector<int> raw(size_t(H * W));
      for (int64_t e = 0; e < H * W; ++e) raw[size_t(e)] = int(std::lround(v[size_t(b * H * W + e)] * 255.0));
      int matches = 0, fdy = 0, fdx = 0, fflip = 0;
      for (int fl = 0; fl < 2; ++fl)
        for (int dy = -int(pad); dy <= pad; ++dy)
          for (int dx = -int(pad); dx <= pad; ++dx) {
            bool ok = true;
            for (int64_t yy = 0; yy < H && ok; ++yy)
              for (int64_t xx = 0; xx < W && ok; ++xx) {
                int64_t xs = fl ? W - 1 - xx : xx, sy = yy + dy, sx = xs + dx;
                int want = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0 : int(1 + sy * W + sx + (i % 3) * 64);
                ok = raw[size_t(yy * W + xx)] == want;
              }
            if (ok) {
              ++matches;
              fdy = dy;
              fdx = dx;
              fflip = fl;
            }
          }
      REQUIRE(matches >= 1);  // every output is a crop of the zero-padded (and maybe flipped) image
      if (matches > 1) {      // a crop that shows only padding cannot be told apart; none here
        ++ambiguous;
        continue;
      }
      dy_count[size_t(fdy + pad)]++;
      dx_count[size_t(fdx + pad)]++;
      flips += fflip;
    }
  }
  CHECK(ambiguous == 0);
  // Flip rate 1/2 and uniform offsets: within 4.5 standard deviations of the binomial counts.
  const double N = double(n);
  CHECK(std::abs(double(flips) - N / 2) < 4.5 * std::sqrt(N / 4));
  const double p = 1.0 / double(2 * pad + 1), sd = std::sqrt(N * p * (1 - p));
  for (int k = 0; k <= 2 * pad; ++k) {
    CHECK(std::abs(double(dy_count[size_t(k)]) - N * p) < 4.5 * sd);
    CHECK(std::abs(double(dx_count[size_t(k)]) - N * p) < 4.5 * sd);
  }
}

TEST_CASE("augment: a crop smaller than the image is a window at a uniform offset (Zhang et al.'s random crop)") {
  // torchvision's RandomCrop(4) of 6x7 images, then a flip: the window's offset runs over 0..2 down
  // and 0..3 across, and a flip mirrors the window, not the image.
  const int64_t n = 2400, H = 6, W = 7, S = 4;
  Dataset d = position_dataset(n, H, W);
  Augment aug;
  aug.crop = aug.flip = true;
  aug.pad = 0;
  aug.size = S;
  Loader L(d, 300, true, 3, aug, false, Device::cpu(), Normalize::none);
  std::vector<int64_t> dy_count(H - S + 1, 0), dx_count(W - S + 1, 0);
  int64_t flips = 0, pos = 0;
  Tensor x, y;
  while (L.next(x, y)) {
    REQUIRE(x.shape() == Shape{x.size(0), 1, S, S});
    auto v = x.to_vector<float>();
    for (int64_t b = 0; b < x.size(0); ++b, ++pos) {
      const int64_t i = L.order()[size_t(pos)];
      int matches = 0, fdy = 0, fdx = 0, fflip = 0;
      for (int fl = 0; fl < 2; ++fl)
        for (int64_t dy = 0; dy <= H - S; ++dy)
          for (int64_t dx = 0; dx <= W - S; ++dx) {
            bool ok = true;
            for (int64_t yy = 0; yy < S && ok; ++yy)
              for (int64_t xx = 0; xx < S && ok; ++xx) {
                const int64_t sy = yy + dy, sx = (fl ? S - 1 - xx : xx) + dx;
                ok = std::lround(v[size_t(b * S * S + yy * S + xx)] * 255.0) == 1 + sy * W + sx + (i % 3) * 64;
              }
            if (ok) {
              ++matches;
              fdy = int(dy);
              fdx = int(dx);
              fflip = fl;
            }
          }
      REQUIRE(matches == 1);  // a window of the image itself, never of padding
      dy_count[size_t(fdy)]++;
      dx_count[size_t(fdx)]++;
      flips += fflip;
    }
  }
  REQUIRE(pos == n);
  const double N = double(n);
  CHECK(std::abs(double(flips) - N / 2) < 4.5 * std::sqrt(N / 4));
  for (const auto* counts : {&dy_count, &dx_count}) {
    const double p = 1.0 / double(counts->size()), sd = std::sqrt(N * p * (1 - p));
    for (int64_t c : *counts) CHECK(std::abs(double(c) - N * p) < 4.5 * sd);
  }

  // Per-image whitening covers the window only: each cropped image has mean 0 and std 1.
  Dataset r = random_dataset(30, 3, 8, 8, 17);
  Augment crop5;
  crop5.crop = true;
  crop5.pad = 0;
  crop5.size = 5;
  Loader W5(r, 30, false, 9, crop5, false, Device::cpu(), Normalize::per_image);
  REQUIRE(W5.next(x, y));
  REQUIRE(x.shape() == Shape{30, 3, 5, 5});
  check_whitened(x);

  // A crop of the image's own size is the padded crop of before, bit for bit.
  Augment own = crop5, dflt = crop5;
  own.pad = dflt.pad = 4;
  own.size = 8;
  dflt.size = 0;
  Loader a(r, 30, true, 4, own), b(r, 30, true, 4, dflt);
  Tensor xa, ya, xb, yb;
  REQUIRE(a.next(xa, ya));
  REQUIRE(b.next(xb, yb));
  CHECK(xa.to_vector<float>() == xb.to_vector<float>());

  // A window larger than the padded image, or a size without crop, is refused.
  Augment big = crop5;
  big.size = 9;
  CHECK(testdata::contains(testdata::error_of([&] { Loader(r, 4, false, 0, big); }), "does not fit"));
  Augment no_crop;
  no_crop.size = 5;
  CHECK(testdata::contains(testdata::error_of([&] { Loader(r, 4, false, 0, no_crop); }), "needs crop on"));
}

TEST_CASE("augment: depends only on (seed, epoch, sample index), not on batching or order") {
  Dataset d = random_dataset(50, 3, 8, 8, 21);
  Augment aug;
  aug.crop = aug.flip = true;
  // The same epoch through two loaders with different batch sizes and shuffling.
  Loader a(d, 7, true, 5, aug), b(d, 50, false, 5, aug);
  a.start_epoch(2);
  b.start_epoch(2);
  Tensor xb, yb;
  REQUIRE(b.next(xb, yb));
  auto vb = xb.to_vector<float>();
  const int64_t n = 3 * 64;
  Tensor x, y;
  int64_t pos = 0;
  bool all_same = true;
  while (a.next(x, y)) {
    auto v = x.to_vector<float>();
    for (int64_t k = 0; k < x.size(0); ++k, ++pos) {
      int64_t i = a.order()[size_t(pos)];
      all_same &= std::equal(v.begin() + k * n, v.begin() + (k + 1) * n, vb.begin() + i * n);
    }
  }
  CHECK(all_same);
  // Another epoch gives other crops/flips for most samples.
  b.start_epoch(3);
  REQUIRE(b.next(xb, yb));
  auto vb3 = xb.to_vector<float>();
  int64_t differ = 0;
  for (int64_t i = 0; i < 50; ++i)
    differ += !std::equal(vb3.begin() + i * n, vb3.begin() + (i + 1) * n, vb.begin() + i * n);
  CHECK(differ > 35);  // P(same crop and flip) = 1/162 per sample
}

TEST_CASE("loader: per-image standardization gives each image mean 0 and std 1") {
  Dataset d = random_dataset(20, 3, 7, 7, 33);
  Augment aug;
  aug.crop = true;
  Loader L(d, 20, false, 1, aug, false, Device::cpu(), Normalize::per_image);
  Tensor x, y;
  REQUIRE(L.next(x, y));
  REQUIRE(x.shape() == Shape{20, 3, 7, 7});
  check_whitened(x);
}

TEST_CASE("loader: float32 images are normalized by the dataset constants") {
  Dataset d;
  d.name = "floats";
  d.num_classes = 2;
  d.images = from_vector<float>({0.1f, 0.5f, -0.3f, 0.9f, 0.2f, 0.4f, 0.0f, 1.0f}, {2, 1, 2, 2});
  d.labels = from_vector<int64_t>({0, 1}, {2}, DType::i64);
  d.mean = {0.25};
  d.std = {0.5};
  Loader L(d, 2, false, 0);
  Tensor x, y;
  REQUIRE(L.next(x, y));
  auto v = x.to_vector<float>();
  auto src = d.images.to_vector<float>();
  for (size_t k = 0; k < v.size(); ++k) CHECK(v[k] == doctest::Approx((src[k] - 0.25) / 0.5).epsilon(1e-6));
  CHECK(testdata::contains(testdata::error_of(
                               [&] { Loader(d, 2, false, 0, {}, false, Device::cpu(), Normalize::per_image); }),
                           "uint8"));
}

TEST_CASE("loader: bad arguments are refused with a reason") {
  Dataset d = position_dataset(5, 3, 3);
  CHECK(testdata::contains(testdata::error_of([&] { Loader(d, 0, false, 0); }), "batch size"));
  CHECK(testdata::contains(testdata::error_of([&] { Loader(d, 8, false, 0, {}, true); }), "fewer than one batch"));
  if (!cuda_available())
    CHECK(testdata::contains(testdata::error_of([&] { Loader(d, 2, false, 0, {}, false, Device::cuda()); }), "CUDA"));
}
