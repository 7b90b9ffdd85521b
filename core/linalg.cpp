// core/linalg.cpp: Jacobi SVD and eigen-solver, pseudo-inverse and Cholesky in float64.
// The algorithms work on std::vector<double> copies of the inputs; one-sided Jacobi keeps the
// matrix column-major so each rotation touches two contiguous columns.
#include "core/linalg.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

#include "core/ops.h"

namespace minima::linalg {
namespace {

// Row-major float64 copy of a 2-D tensor (any dtype, layout or device).
std::vector<double> matrix_values(const Tensor& A, const char* op, int64_t& m, int64_t& n) {
  MINIMA_CHECK(A.defined(), op, ": undefined tensor");
  MINIMA_CHECK(A.dim() == 2, op, ": expected a matrix, got shape ", A.shape());
  MINIMA_CHECK(is_floating(A.dtype()), op, ": expected a floating tensor, got ", A.dtype());
  m = A.size(0);
  n = A.size(1);
  return A.detach().to_vector<double>();
}

Tensor matrix_tensor(const std::vector<double>& v, int64_t m, int64_t n) {
  return from_vector<double>(v, {m, n}, DType::f64);
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Givens-style rotation of two vectors: (x, y) <- (c x - s y, s x + c y).
void rotate(double* x, double* y, int64_t n, double c, double s) {
  for (int64_t i = 0; i < n; ++i) {
    double xi = x[i], yi = y[i];
    x[i] = c * xi - s * yi;
    y[i] = s * xi + c * yi;
  }
}

// The t = tan(phi) that zeroes the off-diagonal entry: cot(2 phi) = zeta, smaller root.
double jacobi_tangent(double zeta) {
  double t = 1.0 / (std::fabs(zeta) + std::hypot(1.0, zeta));
  return zeta < 0 ? -t : t;
}

// SVD of a tall matrix (m >= n) given column-major as W [n columns of length m].
SVD svd_tall(std::vector<double> W, int64_t m, int64_t n) {
  std::vector<double> V(size_t(n * n), 0.0);  // column-major too
  for (int64_t j = 0; j < n; ++j) V[j * n + j] = 1.0;
  // Two columns count as orthogonal when |<p,q>| <= m * eps * |p| |q| (Demmel & Veselic).
  const double tol = double(std::max<int64_t>(m, 1)) * DBL_EPSILON;
  const int max_sweeps = 80;
  bool converged = n < 2;
  for (int sweep = 0; sweep < max_sweeps && !converged; ++sweep) {
    converged = true;
    for (int64_t p = 0; p < n - 1; ++p) {
      for (int64_t q = p + 1; q < n; ++q) {
        double* wp = &W[p * m];
        double* wq = &W[q * m];
        double alpha = dot(wp, wp, m), beta = dot(wq, wq, m), gamma = dot(wp, wq, m);
        if (alpha == 0.0 || beta == 0.0 || std::fabs(gamma) <= tol * std::sqrt(alpha * beta)) continue;
        converged = false;
        double t = jacobi_tangent((beta - alpha) / (2.0 * gamma));
        double c = 1.0 / std::sqrt(1.0 + t * t), s = c * t;
        rotate(wp, wq, m, c, s);
        rotate(&V[p * n], &V[q * n], n, c, s);
      }
    }
  }
  MINIMA_CHECK(converged, "svd: Jacobi sweeps did not converge for a ", m, "x", n, " matrix");
  // Singular values are the column norms; order them descending.
  std::vector<double> sig(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) sig[j] = std::sqrt(dot(&W[j * m], &W[j * m], m));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sig[a] > sig[b]; });
  std::vector<double> U(size_t(m * n), 0.0), S(static_cast<size_t>(n)), Vr(static_cast<size_t>(n * n));
  for (int64_t k = 0; k < n; ++k) {
    int64_t j = order[k];
    S[k] = sig[j];
    for (int64_t i = 0; i < m; ++i) U[i * n + k] = sig[j] > 0 ? W[j * m + i] / sig[j] : 0.0;
    for (int64_t i = 0; i < n; ++i) Vr[i * n + k] = V[j * n + i];
  }
  return {matrix_tensor(U, m, n), from_vector<double>(S, {n}, DType::f64), matrix_tensor(Vr, n, n)};
}

double default_rtol(int64_t m, int64_t n) { return double(std::max(m, n)) * DBL_EPSILON; }

}  // namespace

SVD svd(const Tensor& A) {
  int64_t m, n;
  std::vector<double> a = matrix_values(A, "svd", m, n);
  MINIMA_CHECK(m > 0 && n > 0, "svd: empty matrix of shape ", A.shape());
  // Column-major storage of A is row-major storage of A^T.
  if (m >= n) {
    std::vector<double> W(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) W[j * m + i] = a[i * n + j];
    return svd_tall(std::move(W), m, n);
  }
  // Wide: A^T = U' S V'^T is tall, so A = V' S U'^T. A^T column-major is A row-major.
  SVD t = svd_tall(std::move(a), n, m);
  return {t.V, t.S, t.U};
}

Eigh eigh(const Tensor& A0) {
  int64_t n, n2;
  std::vector<double> A = matrix_values(A0, "eigh", n, n2);
  MINIMA_CHECK(n == n2 && n > 0, "eigh: expected a non-empty square matrix, got shape ", A0.shape());
  double amax = 0, frob = 0;
  for (double v : A) {
    amax = std::max(amax, std::fabs(v));
    frob += v * v;
  }
  frob = std::sqrt(frob);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      MINIMA_CHECK(std::fabs(A[i * n + j] - A[j * n + i]) <= 1e-10 * amax, "eigh: matrix is not symmetric (entry (", i,
                   ", ", j, ") is ", A[i * n + j], " but (", j, ", ", i, ") is ", A[j * n + i], ")");
  std::vector<double> V(size_t(n * n), 0.0);  // row-major; columns are the eigenvectors
  for (int64_t i = 0; i < n; ++i) V[i * n + i] = 1.0;
  // Entries this small relative to the whole matrix are rounding noise: leave them.
  const double thr = DBL_EPSILON * frob / double(n);
  const int max_sweeps = 80;
  bool converged = n < 2 || frob == 0.0;
  std::vector<double> colp(static_cast<size_t>(n)), colq(static_cast<size_t>(n));
  for (int sweep = 0; sweep < max_sweeps && !converged; ++sweep) {
    converged = true;
    for (int64_t p = 0; p < n - 1; ++p) {
      for (int64_t q = p + 1; q < n; ++q) {
        double apq = A[p * n + q];
        if (std::fabs(apq) <= thr) continue;
        converged = false;
        double t = jacobi_tangent((A[q * n + q] - A[p * n + p]) / (2.0 * apq));
        double c = 1.0 / std::sqrt(1.0 + t * t), s = c * t;
        // A <- J^T A J: rotate columns p, q, then rows p, q.
        for (int64_t k = 0; k < n; ++k) {
          double akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        rotate(&A[p * n], &A[q * n], n, c, s);
        A[p * n + q] = A[q * n + p] = 0.0;
        for (int64_t k = 0; k < n; ++k) {
          double vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  MINIMA_CHECK(converged, "eigh: Jacobi sweeps did not converge for a ", n, "x", n, " matrix");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return A[a * n + a] < A[b * n + b]; });
  std::vector<double> vals(static_cast<size_t>(n)), vecs(static_cast<size_t>(n * n));
  for (int64_t k = 0; k < n; ++k) {
    vals[k] = A[order[k] * n + order[k]];
    for (int64_t i = 0; i < n; ++i) vecs[i * n + k] = V[i * n + order[k]];
  }
  return {from_vector<double>(vals, {n}, DType::f64), matrix_tensor(vecs, n, n)};
}

Tensor pinv(const Tensor& A, double rtol) {
  SVD d = svd(A);
  int64_t m = A.size(0), n = A.size(1), k = d.S.size(0);
  MINIMA_CHECK(!std::isnan(rtol), "pinv: rtol is NaN");
  if (rtol < 0) rtol = default_rtol(m, n);
  auto U = d.U.to_vector<double>(), S = d.S.to_vector<double>(), V = d.V.to_vector<double>();
  std::vector<double> P(size_t(n * m), 0.0);  // V diag(1/S) U^T
  for (int64_t r = 0; r < k; ++r) {
    if (!(S[r] > rtol * S[0])) break;
    double inv = 1.0 / S[r];
    for (int64_t i = 0; i < n; ++i) {
      double vi = V[i * k + r] * inv;
      for (int64_t j = 0; j < m; ++j) P[i * m + j] += vi * U[j * k + r];
    }
  }
  return matrix_tensor(P, n, m);
}

Tensor lstsq_min_norm(const Tensor& A, const Tensor& b, double rtol) {
  MINIMA_CHECK(A.defined() && b.defined() && A.dim() == 2 && (b.dim() == 1 || b.dim() == 2) && b.size(0) == A.size(0),
               "lstsq_min_norm: expected A [m, n] and b [m] or [m, k], got ", A.defined() ? A.shape() : Shape{},
               " and ", b.defined() ? b.shape() : Shape{});
  Tensor bm = b.dim() == 1 ? b.unsqueeze(1) : b;
  Tensor x = matmul(pinv(A, rtol), bm.detach().to(DType::f64).cpu());
  return b.dim() == 1 ? x.squeeze(1).contiguous() : x;
}

int64_t matrix_rank(const Tensor& A, double rtol) {
  auto S = svd(A).S.to_vector<double>();
  MINIMA_CHECK(!std::isnan(rtol), "matrix_rank: rtol is NaN");
  if (rtol < 0) rtol = default_rtol(A.size(0), A.size(1));
  int64_t r = 0;
  for (double s : S) r += s > rtol * S[0] ? 1 : 0;
  return r;
}

Tensor cholesky(const Tensor& A0) {
  int64_t n, n2;
  std::vector<double> A = matrix_values(A0, "cholesky", n, n2);
  MINIMA_CHECK(n == n2, "cholesky: expected a square matrix, got shape ", A0.shape());
  std::vector<double> L(size_t(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double d = A[j * n + j] - dot(&L[j * n], &L[j * n], j);
    MINIMA_CHECK(d > 0 && std::isfinite(d), "cholesky: matrix is not positive definite (pivot ", j, " is ", d, ")");
    double ljj = std::sqrt(d);
    L[j * n + j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) L[i * n + j] = (A[i * n + j] - dot(&L[i * n], &L[j * n], j)) / ljj;
  }
  return matrix_tensor(L, n, n);
}

Tensor cholesky_solve(const Tensor& L0, const Tensor& B0) {
  int64_t n, n2;
  std::vector<double> L = matrix_values(L0, "cholesky_solve", n, n2);
  MINIMA_CHECK(n == n2, "cholesky_solve: expected a square factor, got shape ", L0.shape());
  MINIMA_CHECK(B0.defined() && (B0.dim() == 1 || B0.dim() == 2) && B0.size(0) == n,
               "cholesky_solve: right-hand side of shape ", B0.defined() ? B0.shape() : Shape{},
               " does not match a factor of shape ", L0.shape());
  int64_t k = B0.dim() == 1 ? 1 : B0.size(1);
  std::vector<double> B = B0.detach().to_vector<double>();  // row-major [n, k]
  std::vector<double> x(static_cast<size_t>(n));
  for (int64_t c = 0; c < k; ++c) {
    for (int64_t i = 0; i < n; ++i) {  // L y = b
      double s = B[i * k + c];
      for (int64_t j = 0; j < i; ++j) s -= L[i * n + j] * x[j];
      x[i] = s / L[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {  // L^T x = y
      double s = x[i];
      for (int64_t j = i + 1; j < n; ++j) s -= L[j * n + i] * x[j];
      x[i] = s / L[i * n + i];
    }
    for (int64_t i = 0; i < n; ++i) B[i * k + c] = x[i];
  }
  return B0.dim() == 1 ? from_vector<double>(B, {n}, DType::f64) : matrix_tensor(B, n, k);
}

double norm(const Tensor& x) {
  double s = 0;
  for (double v : x.detach().to_vector<double>()) s += v * v;
  return std::sqrt(s);
}

double spectral_norm(const Tensor& A) { return svd(A).S.to_vector<double>()[0]; }

}  // namespace minima::linalg
