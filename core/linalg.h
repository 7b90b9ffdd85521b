// core/linalg.h: dense float64 linear algebra on CPU tensors, for the experiments that need exact
// reference solutions (minimum-norm interpolants, max-margin directions, spectra of small
// matrices). Everything here is plain, readable Jacobi-style code: accurate to a few ulps and fast
// enough for matrices up to a few hundred rows, not a replacement for LAPACK.
//   svd(A)     one-sided (Hestenes) Jacobi: rotates pairs of columns until all are orthogonal.
//   eigh(A)    cyclic two-sided Jacobi for symmetric matrices.
//   pinv, lstsq_min_norm   the Moore-Penrose pseudo-inverse via the SVD (rank-revealing).
//   cholesky, cholesky_solve   for symmetric positive definite systems (normal equations).
// Inputs of any floating dtype or layout are accepted; they are converted to contiguous float64
// copies, and every result is a new contiguous float64 CPU tensor. Nothing is recorded by autograd.
#pragma once
#include "core/tensor.h"

namespace minima::linalg {

// A = U diag(S) V^T with k = min(m, n): U [m, k], S [k] (descending, >= 0), V [n, k].
// Columns of U that belong to zero singular values are zero (they are never needed for pinv).
struct SVD {
  Tensor U, S, V;
};
SVD svd(const Tensor& A);

// A = V diag(values) V^T for symmetric A [n, n]: values [n] ascending, V [n, n] orthonormal
// columns. Throws when A is not symmetric to within 1e-10 of its largest entry.
struct Eigh {
  Tensor values, vectors;
};
Eigh eigh(const Tensor& A);

// Singular values below rtol * S[0] count as zero. rtol < 0 picks max(m, n) * machine epsilon.
Tensor pinv(const Tensor& A, double rtol = -1.0);
// The minimum-norm least-squares solution A^+ b; b is [m] or [m, k] (result [n] or [n, k]).
Tensor lstsq_min_norm(const Tensor& A, const Tensor& b, double rtol = -1.0);
// Numerical rank: the number of singular values above rtol * S[0] (rtol < 0 as in pinv).
int64_t matrix_rank(const Tensor& A, double rtol = -1.0);

// Lower-triangular L with A = L L^T; throws when A is not (numerically) positive definite.
Tensor cholesky(const Tensor& A);
// Solves (L L^T) X = B for B [n] or [n, k].
Tensor cholesky_solve(const Tensor& L, const Tensor& B);

// Euclidean norm of all elements (Frobenius for matrices), in float64.
double norm(const Tensor& x);
// Largest singular value.
double spectral_norm(const Tensor& A);

}  // namespace minima::linalg
