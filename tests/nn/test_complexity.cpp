// tests/nn/test_complexity.cpp: the complexity measures of nn/complexity.h on networks whose
// answers are known in closed form.
#include <doctest/doctest.h>

#include <cmath>

#include "core/ops.h"
#include "core/random.h"
#include "nn/complexity.h"
#include "nn/models.h"

using namespace minima;

namespace {
// A 4-512-3 ReLU MLP with every first-layer weight a, every second-layer weight b, zero biases.
std::shared_ptr<nn::Module> constant_mlp(double a, double b) {
  Generator g(3);
  auto m = nn::make_model("mlp1x512", {1, 2, 2}, 3, g);
  NoGradGuard ng;
  int layer = 0;
  for (auto& [name, t] : m->named_parameters()) {
    if (t.dim() == 2)
      t.fill_(layer++ == 0 ? a : b);
    else
      t.fill_(0.0);
  }
  REQUIRE(layer == 2);
  return m;
}
}  // namespace

TEST_CASE("complexity measures of a constant two-layer network match their closed forms") {
  double a = 0.5, b = 0.25;
  auto m = constant_mlp(a, b);
  nn::Complexity c = nn::complexity_measures(*m,
                                             [] {
                                               Generator g(9);
                                               return nn::make_model("mlp1x512", {1, 2, 2}, 3, g);
                                             },
                                             {1, 2, 2});
  CHECK(c.frobenius_sq == doctest::Approx(512 * 4 * a * a + 3 * 512 * b * b).epsilon(1e-9));
  // A constant m x n matrix has one non-zero singular value, its value times sqrt(m n).
  double spectral = a * std::sqrt(512.0 * 4) * b * std::sqrt(3.0 * 512);
  CHECK(c.log10_spectral_product == doctest::Approx(std::log10(spectral)).epsilon(1e-6));
  // Every input-output path has weight a*b: 4 * 512 * 3 paths.
  CHECK(c.l1_path_norm == doctest::Approx(4 * 512 * 3 * a * b).epsilon(1e-5));
  CHECK(c.l2_path_norm == doctest::Approx(std::sqrt(4 * 512 * 3 * a * a * b * b)).epsilon(1e-5));
}

TEST_CASE("spectral_norm finds the largest singular value of a random matrix") {
  // diag(3, 2, 1) rotated by a permutation: sigma_max = 3.
  std::vector<double> w = {0, 2, 0, 0, 0, 1, 3, 0, 0};
  CHECK(nn::spectral_norm(w, 3, 3, 100) == doctest::Approx(3.0).epsilon(1e-9));
  // Rank one u v^T: sigma = |u| |v|.
  std::vector<double> u = {1, 2, 2}, v = {3, 4}, r;
  for (double x : u)
    for (double y : v) r.push_back(x * y);
  CHECK(nn::spectral_norm(r, 3, 2, 50) == doctest::Approx(3.0 * 5.0).epsilon(1e-9));
}

TEST_CASE("spectral_norm of a 37x29 random matrix, whose rows go eight at a time and then one by one") {
  // Against sqrt of the largest eigenvalue of W^T W, found by iterating x <- W^T W x from another
  // start (29 columns, no row blocks). A row block that read the wrong rows, or a remainder that
  // skipped some, multiplies by another matrix, whose largest singular value differs.
  const int64_t rows = 37, cols = 29;
  Generator g(41);
  std::vector<double> w(size_t(rows * cols));
  for (double& x : w) x = g.normal();
  std::vector<double> wtw(size_t(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t r = 0; r < rows; ++r) wtw[size_t(i * cols + j)] += w[size_t(r * cols + i)] * w[size_t(r * cols + j)];
  std::vector<double> x(static_cast<size_t>(cols), 1.0), y(static_cast<size_t>(cols), 0.0);
  double lambda = 0;
  for (int it = 0; it < 3000; ++it) {
    for (int64_t i = 0; i < cols; ++i) {
      y[size_t(i)] = 0;
      for (int64_t j = 0; j < cols; ++j) y[size_t(i)] += wtw[size_t(i * cols + j)] * x[size_t(j)];
    }
    double n = 0;
    for (double v : y) n += v * v;
    n = std::sqrt(n);
    lambda = n;  // |W^T W x| for a unit x: the largest eigenvalue once x has converged
    for (int64_t i = 0; i < cols; ++i) x[size_t(i)] = y[size_t(i)] / n;
  }
  CHECK(nn::spectral_norm(w, rows, cols, 3000) == doctest::Approx(std::sqrt(lambda)).epsilon(1e-10));
  // The same matrix with its rows cut to 8 (one block, no remainder) and to 5 (no block).
  for (int64_t r : {8, 5}) {
    const std::vector<double> top(w.begin(), w.begin() + r * cols);
    const double s = nn::spectral_norm(top, r, cols, 3000);
    double frob = 0;
    for (double v : top) frob += v * v;
    CHECK(s > 0);
    CHECK(s * s <= frob * (1 + 1e-12));                              // sigma_max^2 <= ||W||_F^2
    CHECK(s * s * double(std::min(r, cols)) >= frob * (1 - 1e-12));  // and >= ||W||_F^2 / rank
  }
}

TEST_CASE("relative distance from the initialization") {
  Generator g(5);
  auto m = nn::make_model("mlp1x512", {1, 2, 2}, 3, g);
  nn::NamedTensors w0 = nn::snapshot(m->named_parameters());
  CHECK(nn::relative_distance(m->named_parameters(), w0) == 0.0);
  {
    NoGradGuard ng;
    for (auto& [name, t] : m->named_parameters()) t.mul_(3.0);  // w = 3 w0: ||w - w0|| / ||w0|| = 2
  }
  CHECK(nn::relative_distance(m->named_parameters(), w0) == doctest::Approx(2.0).epsilon(1e-6));
}

TEST_CASE("batch norm is folded into the preceding convolution for the spectral product") {
  // smallcnn at init: BN scale is 1/sqrt(1 + eps), so folding changes the product only by that factor
  // per folded layer; scaling a BN's weight by 4 multiplies the product by 4.
  Generator g(2);
  auto m = nn::make_model("smallcnn", {1, 8, 8}, 3, g);
  auto fresh = [] {
    Generator g2(2);
    return nn::make_model("smallcnn", {1, 8, 8}, 3, g2);
  };
  double before = nn::complexity_measures(*m, fresh, {1, 8, 8}).log10_spectral_product;
  {
    NoGradGuard ng;
    for (auto& [name, t] : m->state_dict())
      if (name == "features.1.weight") t.mul_(4.0);
  }
  double after = nn::complexity_measures(*m, fresh, {1, 8, 8}).log10_spectral_product;
  CHECK(after - before == doctest::Approx(std::log10(4.0)).epsilon(1e-4));
}

TEST_CASE("path norms of a deep network stay finite (computed in float64)") {
  // DenseNet40's l1 path norm at initialization is about 1.9e38, next to float32's largest value:
  // computed in float32 its path network overflowed to infinity. The measure runs it in float64.
  Generator g(5);
  auto m = nn::make_model("densenet40", {3, 32, 32}, 10, g);
  auto fresh = [] {
    Generator g2(5);
    return nn::make_model("densenet40", {3, 32, 32}, 10, g2);
  };
  nn::Complexity c = nn::complexity_measures(*m, fresh, {3, 32, 32});
  CHECK(std::isfinite(c.l1_path_norm));
  CHECK(c.l1_path_norm > 1e37);
  CHECK(std::isfinite(c.l2_path_norm));
  CHECK(c.l2_path_norm > 0);
  CHECK(std::isfinite(c.frobenius_sq));
  CHECK(std::isfinite(c.log10_spectral_product));
}

TEST_CASE("path norms carry the scale of batch norms without affine parameters") {
  // inception-small's batch norms have no weight; everything after its stem is positively
  // homogeneous in the path network (convs and a linear without bias, ReLU, max-pool, fixed
  // per-channel scales, mean), so multiplying the stem's folded scale by 4 multiplies both path
  // norms by 4 (l2: the p = 2 network sees 16, and its square root 4).
  Generator g(4);
  auto m = nn::make_model("inception-small", {3, 8, 8}, 10, g);
  auto fresh = [] {
    Generator g2(4);
    return nn::make_model("inception-small", {3, 8, 8}, 10, g2);
  };
  nn::Complexity before = nn::complexity_measures(*m, fresh, {3, 8, 8});
  {
    NoGradGuard ng;
    bool found = false;
    for (auto& [name, t] : m->state_dict())
      if (name == "conv1.bn.running_var") {
        t.fill_((1.0 + 1e-5) / 16.0 - 1e-5);  // 1 / sqrt(var + eps) becomes 4 / sqrt(1 + eps)
        found = true;
      }
    REQUIRE(found);
  }
  nn::Complexity after = nn::complexity_measures(*m, fresh, {3, 8, 8});
  // (to float32 precision: running_var is a float32 buffer)
  CHECK(after.l1_path_norm / before.l1_path_norm == doctest::Approx(4.0).epsilon(1e-6));
  CHECK(after.l2_path_norm / before.l2_path_norm == doctest::Approx(4.0).epsilon(1e-6));
  // The spectral product folds the same scale into conv1.conv: one factor of 4.
  CHECK(after.log10_spectral_product - before.log10_spectral_product == doctest::Approx(std::log10(4.0)).epsilon(1e-6));
}
