// data/transforms.cpp: the experiments' dataset transforms (see data/transforms.h).
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/random.h"

namespace minima::data {

namespace {

// Domains of the per-sample generators, so two transforms with the same seed draw independently.
enum : uint64_t {
  kTagAdversarial = 101,
  kTagCorrupt = 102,
  kTagShuffle = 103,
  kTagRandomPixels = 104,
  kTagGaussian = 105
};

Generator sample_generator(uint64_t seed, uint64_t tag, int64_t i) {
  return Generator(Generator::mix(seed, uint64_t(i), tag));
}

// A copy of d's metadata with new tensors.
Dataset like(const Dataset& d, const std::string& suffix, const Tensor& images, const Tensor& labels) {
  Dataset o;
  o.name = d.name + suffix;
  o.images = images;
  o.labels = labels;
  o.num_classes = d.num_classes;
  o.class_names = d.class_names;
  o.mean = d.mean;
  o.std = d.std;
  return o;
}

void require_u8(const Dataset& d, const char* what) {
  MINIMA_CHECK(d.images.dtype() == DType::u8, what, " needs uint8 images, ", d.name, " holds ", d.images.dtype());
}

void fisher_yates(std::vector<int64_t>& p, Generator& g) {
  for (int64_t i = int64_t(p.size()) - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(g.below(uint64_t(i + 1)))]);
}

}  // namespace

Dataset subset(const Dataset& d, int64_t n, bool class_balanced) {
  MINIMA_CHECK(n > 0, "subset: size must be positive, got ", n);
  const int64_t N = d.size(), K = d.num_classes;
  std::vector<int64_t> keep;
  if (!class_balanced) {
    for (int64_t i = 0; i < std::min(n, N); ++i) keep.push_back(i);
  } else {
    MINIMA_CHECK(n <= N, "subset: ", n, " class-balanced samples requested from ", d.name, " of ", N);
    std::vector<int64_t> quota(size_t(K), n / K), taken(size_t(K), 0);
    for (int64_t c = 0; c < n % K; ++c) quota[size_t(c)]++;
    const int64_t* y = d.labels.data<int64_t>();
    for (int64_t i = 0; i < N && int64_t(keep.size()) < n; ++i)
      if (taken[size_t(y[i])] < quota[size_t(y[i])]) {
        taken[size_t(y[i])]++;
        keep.push_back(i);
      }
    for (int64_t c = 0; c < K; ++c)
      MINIMA_CHECK(taken[size_t(c)] == quota[size_t(c)], "subset: class ", c, " of ", d.name, " has only ",
                   taken[size_t(c)], " samples, a balanced subset of ", n, " needs ", quota[size_t(c)]);
  }
  const int64_t m = int64_t(keep.size()), per = d.sample_numel();
  Shape s = d.images.shape();
  s[0] = m;
  Tensor images = empty(s, d.images.dtype()), labels = empty({m}, DType::i64);
  const size_t bytes = size_t(per) * d.images.element_size();
  for (int64_t k = 0; k < m; ++k) {
    std::memcpy(static_cast<char*>(images.data_ptr()) + k * bytes,
                static_cast<const char*>(d.images.data_ptr()) + keep[size_t(k)] * bytes, bytes);
    labels.data<int64_t>()[k] = d.labels.data<int64_t>()[keep[size_t(k)]];
  }
  return like(d, str("[subset ", m, class_balanced ? " balanced]" : "]"), images, labels);
}

int64_t zero_out_count(int64_t values_per_image, double fraction) {
  MINIMA_CHECK(fraction >= 0 && fraction <= 1, "zero-out fraction must be in [0, 1], got ", fraction);
  return int64_t(double(values_per_image) * fraction);  // truncation, like Python's int()
}

Dataset adversarial_set(const Dataset& train, int64_t replication, double zero_out, uint64_t seed) {
  require_u8(train, "adversarial_set");
  MINIMA_CHECK(replication >= 1, "adversarial_set: replication must be >= 1, got ", replication);
  const int64_t N = train.size(), n = train.sample_numel(), K = train.num_classes;
  const int64_t k = zero_out_count(n, zero_out);
  int64_t total = 0;
  MINIMA_CHECK(!__builtin_mul_overflow(N, replication, &total), "adversarial_set: ", N, " images x replication ",
               replication, " is too large a set");
  Shape s = train.images.shape();
  s[0] = total;
  Tensor images = empty(s, DType::u8), labels = empty({total}, DType::i64);
  const uint8_t* src = train.images.data<uint8_t>();
  uint8_t* dst = images.data<uint8_t>();
  int64_t* y = labels.data<int64_t>();
#pragma omp parallel
  {
    std::vector<uint8_t> chosen(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t j = 0; j < total; ++j) {
      Generator g = sample_generator(seed, kTagAdversarial, j);
      y[j] = int64_t(g.below(uint64_t(K)));
      uint8_t* out = dst + j * n;
      std::memcpy(out, src + (j % N) * n, size_t(n));
      // Floyd's algorithm: k distinct positions, each k-subset equally likely.
      std::fill(chosen.begin(), chosen.end(), 0);
      for (int64_t t = n - k; t < n; ++t) {
        int64_t r = int64_t(g.below(uint64_t(t + 1)));
        int64_t pick = chosen[size_t(r)] ? t : r;
        chosen[size_t(pick)] = 1;
        out[pick] = 0;
      }
    }
  }
  return like(train, str("[adversarial R=", replication, " zero-out=", zero_out, "]"), images, labels);
}

Dataset corrupt_labels(const Dataset& d, double p, uint64_t seed) {
  MINIMA_CHECK(p >= 0 && p <= 1, "corrupt_labels: probability must be in [0, 1], got ", p);
  Tensor labels = d.labels.clone();
  int64_t* y = labels.data<int64_t>();
  for (int64_t i = 0; i < d.size(); ++i) {
    Generator g = sample_generator(seed, kTagCorrupt, i);
    if (g.uniform() < p) y[i] = int64_t(g.below(uint64_t(d.num_classes)));
  }
  return like(d, p == 1 ? "[random labels]" : str("[corrupt labels p=", p, "]"), d.images, labels);
}

std::vector<int64_t> pixel_permutation(int64_t positions, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(positions));
  for (int64_t i = 0; i < positions; ++i) p[size_t(i)] = i;
  Generator g = sample_generator(seed, kTagShuffle, 0);
  fisher_yates(p, g);
  return p;
}

namespace {
// out[c][q] = in[c][perm[q]] over the H*W positions q of each channel, for one image.
template <class T>
void permute_one(const T* in, T* out, int64_t C, int64_t HW, const int64_t* perm) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t q = 0; q < HW; ++q) out[c * HW + q] = in[c * HW + perm[q]];
}

template <class T>
void permute_all(const T* in, T* out, int64_t N, int64_t C, int64_t HW, const int64_t* perm) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) permute_one(in + i * C * HW, out + i * C * HW, C, HW, perm);
}

template <class T>
void random_permute_all(const T* in, T* out, int64_t N, int64_t C, int64_t HW, uint64_t seed) {
#pragma omp parallel
  {
    std::vector<int64_t> perm(static_cast<size_t>(HW));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t q = 0; q < HW; ++q) perm[size_t(q)] = q;
      Generator g = sample_generator(seed, kTagRandomPixels, i);
      fisher_yates(perm, g);
      permute_one(in + i * C * HW, out + i * C * HW, C, HW, perm.data());
    }
  }
}
}  // namespace

Dataset permute_pixels(const Dataset& d, const std::vector<int64_t>& perm) {
  const int64_t C = d.channels(), HW = d.height() * d.width();
  MINIMA_CHECK(int64_t(perm.size()) == HW, "permute_pixels: permutation of ", perm.size(), " positions for ",
               d.height(), "x", d.width(), " images");
  std::vector<char> seen(size_t(HW), 0);
  for (int64_t q : perm) {
    MINIMA_CHECK(q >= 0 && q < HW && !seen[size_t(q)], "permute_pixels: not a permutation of 0..", HW - 1);
    seen[size_t(q)] = 1;
  }
  Tensor images = empty(d.images.shape(), d.images.dtype());
  if (d.images.dtype() == DType::u8)
    permute_all(d.images.data<uint8_t>(), images.data<uint8_t>(), d.size(), C, HW, perm.data());
  else
    permute_all(d.images.data<float>(), images.data<float>(), d.size(), C, HW, perm.data());
  return like(d, "[shuffled pixels]", images, d.labels.clone());
}

void shuffle_pixels(Splits& s, uint64_t seed) {
  auto perm = pixel_permutation(s.train.height() * s.train.width(), seed);
  s.train = permute_pixels(s.train, perm);
  s.test = permute_pixels(s.test, perm);
  if (s.valid) s.valid = permute_pixels(*s.valid, perm);
}

Dataset random_pixels(const Dataset& d, uint64_t seed) {
  const int64_t C = d.channels(), HW = d.height() * d.width();
  Tensor images = empty(d.images.shape(), d.images.dtype());
  if (d.images.dtype() == DType::u8)
    random_permute_all(d.images.data<uint8_t>(), images.data<uint8_t>(), d.size(), C, HW, seed);
  else
    random_permute_all(d.images.data<float>(), images.data<float>(), d.size(), C, HW, seed);
  return like(d, "[random pixels]", images, d.labels.clone());
}

Dataset gaussian_images(const Dataset& d, uint64_t seed) {
  const int64_t C = d.channels(), HW = d.height() * d.width(), N = d.size();
  MINIMA_CHECK(int64_t(d.mean.size()) == C && int64_t(d.std.size()) == C, "gaussian_images: ", d.name,
               " needs one mean and std per channel");
  Tensor images = empty(d.images.shape(), DType::f32);
  float* out = images.data<float>();
  const uint64_t key = Generator::mix(seed, 0, kTagGaussian);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t q = 0; q < HW; ++q) {
        const int64_t e = (i * C + c) * HW + q;
        out[e] = float(d.mean[size_t(c)] + d.std[size_t(c)] * Philox::normal(key, 0, uint64_t(e)));
      }
  return like(d, "[gaussian]", images, d.labels.clone());
}

Dataset whiten_per_image(const Dataset& d) {
  const bool u8 = d.images.dtype() == DType::u8;
  MINIMA_CHECK(u8 || d.images.dtype() == DType::f32, "whiten_per_image: ", d.name, " holds ", d.images.dtype(),
               " images (expected uint8 or float32)");
  const int64_t N = d.size(), n = d.sample_numel();
  Tensor images = empty(d.images.shape(), DType::f32);
  float* out = images.data<float>();
  const uint8_t* in8 = u8 ? d.images.data<uint8_t>() : nullptr;
  const float* in32 = u8 ? nullptr : d.images.data<float>();
  auto value = [&](int64_t i, int64_t e) { return u8 ? double(in8[i * n + e]) / 255.0 : double(in32[i * n + e]); };
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    double s1 = 0;
    for (int64_t e = 0; e < n; ++e) s1 += value(i, e);
    const double mean = s1 / double(n);
    double s2 = 0;  // centred, so no cancellation
    for (int64_t e = 0; e < n; ++e) s2 += (value(i, e) - mean) * (value(i, e) - mean);
    const double sd = std::max(std::sqrt(s2 / double(n)), 1.0 / std::sqrt(double(n)));
    for (int64_t e = 0; e < n; ++e) out[i * n + e] = float((value(i, e) - mean) / sd);
  }
  return like(d, "[whitened]", images, d.labels.clone());
}

Dataset center_crop(const Dataset& d, int64_t size) {
  const int64_t C = d.channels(), H = d.height(), W = d.width(), N = d.size();
  MINIMA_CHECK(size > 0 && size <= H && size <= W, "center_crop: ", size, "x", size, " does not fit ", d.name, "'s ", H,
               "x", W, " images");
  const int64_t oy = (H - size) / 2, ox = (W - size) / 2;
  Tensor images = empty({N, C, size, size}, d.images.dtype());
  const size_t es = d.images.element_size();
  const char* in = static_cast<const char*>(d.images.data_ptr());
  char* out = static_cast<char*>(images.data_ptr());
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < size; ++y)
        std::memcpy(out + (((i * C + c) * size + y) * size) * es, in + (((i * C + c) * H + oy + y) * W + ox) * es,
                    size_t(size) * es);
  return like(d, str("[center ", size, "x", size, "]"), images, d.labels.clone());
}

void center_crop(Splits& s, int64_t size) {
  s.train = center_crop(s.train, size);
  s.test = center_crop(s.test, size);
  if (s.valid) s.valid = center_crop(*s.valid, size);
  if (s.train.images.dtype() == DType::u8) {
    channel_stats(s.train.images, s.train.mean, s.train.std);
    s.test.mean = s.train.mean;
    s.test.std = s.train.std;
    if (s.valid) {
      s.valid->mean = s.train.mean;
      s.valid->std = s.train.std;
    }
  }
}

const std::vector<std::string>& randomization_names() {
  static const std::vector<std::string> v = {"true-labels",     "corrupt-labels", "random-labels",
                                             "shuffled-pixels", "random-pixels",  "gaussian"};
  return v;
}

void apply_randomization(Splits& s, const std::string& kind, double p, uint64_t seed) {
  if (kind == "true-labels") return;
  if (kind == "corrupt-labels") {
    s.train = corrupt_labels(s.train, p, seed);
  } else if (kind == "random-labels") {
    s.train = corrupt_labels(s.train, 1.0, seed);
  } else if (kind == "shuffled-pixels") {
    shuffle_pixels(s, seed);
  } else if (kind == "random-pixels") {
    s.train = random_pixels(s.train, seed);
  } else if (kind == "gaussian") {
    s.train = gaussian_images(s.train, seed);
  } else {
    throw Error(str("unknown randomization '", kind, "' (expected one of ", randomization_names(), ")"));
  }
}

}  // namespace minima::data
