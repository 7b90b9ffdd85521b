// tests/apps/test_linalg.cpp: the float64 solvers of core/linalg.h that the implicit-bias
// experiments rely on, checked against each other and against matrices with known spectra.
#include <doctest/doctest.h>

#include <cmath>

#include "core/linalg.h"
#include "core/ops.h"
#include "core/random.h"

using namespace minima;

namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

Tensor eye(int64_t n) {
  std::vector<double> v(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
  return from_vector<double>(v, {n, n}, DType::f64);
}

// A = U diag(S) V^T, U^T U = I and V^T V = I on the nonzero singular values, S descending.
void check_svd(const Tensor& A) {
  linalg::SVD d = linalg::svd(A);
  int64_t k = std::min(A.size(0), A.size(1));
  REQUIRE(d.U.shape() == Shape{A.size(0), k});
  REQUIRE(d.S.shape() == Shape{k});
  REQUIRE(d.V.shape() == Shape{A.size(1), k});
  Tensor rec = matmul(d.U * d.S, d.V.t());
  CHECK(max_abs(rec - A) < 1e-12 * (1 + max_abs(A)));
  auto s = d.S.to_vector<double>();
  for (size_t i = 1; i < s.size(); ++i) CHECK(s[i] <= s[i - 1]);
  CHECK(max_abs(matmul(d.V.t(), d.V) - eye(k)) < 1e-12);
  int64_t r = 0;
  for (double v : s) r += v > 1e-10 * s[0] ? 1 : 0;
  Tensor Ur = d.U.narrow(1, 0, r);
  CHECK(max_abs(matmul(Ur.t(), Ur) - eye(r)) < 1e-12);
  // The squared singular values are the top eigenvalues of A^T A (an independent algorithm).
  auto ev = linalg::eigh(matmul(A.t(), A)).values.to_vector<double>();
  for (int64_t i = 0; i < k; ++i)
    CHECK(s[i] * s[i] == doctest::Approx(ev[ev.size() - 1 - i]).epsilon(1e-9).scale(s[0] * s[0]));
}

}  // namespace

TEST_CASE("svd reconstructs tall, wide and rank-deficient matrices") {
  Generator g(11);
  check_svd(randn({9, 4}, g, DType::f64));
  check_svd(randn({5, 13}, g, DType::f64));
  check_svd(randn({1, 6}, g, DType::f64));
  Tensor low = matmul(randn({8, 2}, g, DType::f64), randn({2, 7}, g, DType::f64));  // rank 2
  check_svd(low);
  CHECK(linalg::matrix_rank(low) == 2);
  CHECK(linalg::matrix_rank(randn({6, 9}, g, DType::f64)) == 6);
  // Non-contiguous float32 input is accepted.
  check_svd(randn({7, 5}, g).t().to(DType::f64));
}

TEST_CASE("eigh matches a matrix with a known spectrum") {
  // Tridiagonal Toeplitz (a on the diagonal, b next to it): eigenvalues a + 2b cos(k pi / (n+1)).
  const int64_t n = 12;
  const double a = 2.0, b = -0.7;
  std::vector<double> m(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    m[size_t(i * n + i)] = a;
    if (i + 1 < n) m[size_t(i * n + i + 1)] = m[size_t((i + 1) * n + i)] = b;
  }
  Tensor A = from_vector<double>(m, {n, n}, DType::f64);
  linalg::Eigh e = linalg::eigh(A);
  std::vector<double> expect;
  for (int64_t k = 1; k <= n; ++k) expect.push_back(a + 2 * b * std::cos(double(k) * M_PI / double(n + 1)));
  std::sort(expect.begin(), expect.end());
  auto got = e.values.to_vector<double>();
  for (int64_t k = 0; k < n; ++k) CHECK(got[k] == doctest::Approx(expect[k]).epsilon(1e-12));
  CHECK(max_abs(matmul(e.vectors.t(), e.vectors) - eye(n)) < 1e-12);
  CHECK(max_abs(matmul(e.vectors * e.values, e.vectors.t()) - A) < 1e-12);
}

TEST_CASE("eigh of a random symmetric matrix with repeated eigenvalues") {
  Generator g(5);
  Tensor W = randn({10, 3}, g, DType::f64);
  Tensor A = matmul(W, W.t());  // eigenvalue 0 seven times
  linalg::Eigh e = linalg::eigh(A);
  auto v = e.values.to_vector<double>();
  for (int i = 0; i < 7; ++i) CHECK(std::fabs(v[i]) < 1e-12 * v[9]);
  CHECK(max_abs(matmul(e.vectors * e.values, e.vectors.t()) - A) < 1e-12 * max_abs(A));
}

TEST_CASE("pinv satisfies the Moore-Penrose conditions and lstsq_min_norm gives the minimum-norm solution") {
  Generator g(3);
  Tensor A = matmul(randn({7, 3}, g, DType::f64), randn({3, 5}, g, DType::f64));  // 7x5, rank 3
  Tensor P = linalg::pinv(A);
  REQUIRE(P.shape() == Shape{5, 7});
  CHECK(max_abs(matmul(matmul(A, P), A) - A) < 1e-11);
  CHECK(max_abs(matmul(matmul(P, A), P) - P) < 1e-11);
  Tensor AP = matmul(A, P), PA = matmul(P, A);
  CHECK(max_abs(AP - AP.t()) < 1e-11);
  CHECK(max_abs(PA - PA.t()) < 1e-11);

  // Under-determined full row rank: the min-norm solution is X^T (X X^T)^-1 y.
  Tensor X = randn({6, 15}, g, DType::f64), y = randn({6}, g, DType::f64);
  Tensor w = linalg::lstsq_min_norm(X, y);
  REQUIRE(w.shape() == Shape{15});
  Tensor ref = matmul(X.t(), linalg::cholesky_solve(linalg::cholesky(matmul(X, X.t())), y));
  CHECK(max_abs(w - ref) < 1e-12);
  CHECK(max_abs(matmul(X, w) - y) < 1e-12);
  // Any other interpolant is longer: add a null-space direction.
  Tensor z = randn({15}, g, DType::f64);
  Tensor other = w + z - matmul(linalg::pinv(X), matmul(X, z));
  CHECK(max_abs(matmul(X, other) - y) < 1e-11);
  CHECK(linalg::norm(other) > linalg::norm(w));
  // Several right-hand sides at once.
  Tensor Y = randn({6, 2}, g, DType::f64);
  Tensor W2 = linalg::lstsq_min_norm(X, Y);
  CHECK(max_abs(W2.select(1, 1) - linalg::lstsq_min_norm(X, Y.select(1, 1).contiguous())) < 1e-13);
}

TEST_CASE("cholesky factors and solves a positive definite system") {
  Generator g(8);
  Tensor B = randn({6, 6}, g, DType::f64);
  Tensor A = matmul(B, B.t()) + eye(6);
  Tensor L = linalg::cholesky(A);
  CHECK(max_abs(matmul(L, L.t()) - A) < 1e-12);
  auto l = L.to_vector<double>();
  for (int i = 0; i < 6; ++i)
    for (int j = i + 1; j < 6; ++j) CHECK(l[size_t(i * 6 + j)] == 0.0);
  Tensor rhs = randn({6, 3}, g, DType::f64);
  CHECK(max_abs(matmul(A, linalg::cholesky_solve(L, rhs)) - rhs) < 1e-11);
  CHECK(linalg::spectral_norm(A) == doctest::Approx(linalg::eigh(A).values.to_vector<double>().back()));
}

TEST_CASE("linalg rejects what it cannot handle, saying why") {
  Generator g(1);
  CHECK_THROWS_WITH_AS(linalg::eigh(randn({3, 3}, g, DType::f64)), doctest::Contains("not symmetric"), Error);
  Tensor indefinite = from_vector<double>({1, 2, 2, 1}, {2, 2}, DType::f64);
  CHECK_THROWS_WITH_AS(linalg::cholesky(indefinite), doctest::Contains("not positive definite"), Error);
  CHECK_THROWS_WITH_AS(linalg::svd(randn({4}, g, DType::f64)), doctest::Contains("expected a matrix"), Error);
  CHECK_THROWS_WITH_AS(linalg::lstsq_min_norm(randn({3, 4}, g, DType::f64), randn({4}, g, DType::f64)),
                       doctest::Contains("lstsq_min_norm"), Error);
  // A NaN tolerance used to count every singular value as zero (pinv gave zeros).
  CHECK_THROWS_WITH_AS(linalg::pinv(randn({3, 3}, g, DType::f64), NAN), doctest::Contains("rtol is NaN"), Error);
  CHECK_THROWS_WITH_AS(linalg::matrix_rank(randn({3, 3}, g, DType::f64), NAN), doctest::Contains("rtol is NaN"), Error);
}
