// apps/matrix_factorization.cpp: `minima matrix-factorization`: Gunasekar et al. 2017, implicit
// regularization in matrix factorization. Symmetric matrix sensing: recover a rank-r PSD matrix
// X* (n x n, nuclear norm 1) from m = 3nr linear measurements y_i = <A_i, X*> with symmetric
// Gaussian A_i. With m < n(n+1)/2 the problem is under-determined; gradient descent on the full
// factorization X = U U^T (U is n x n, so nothing restricts the rank) from U0 = sqrt(alpha) I
// fits the measurements and, as alpha shrinks, lands on the minimum nuclear norm solution, which
// for this many Gaussian measurements is X* itself. For contrast the command also computes the
// minimum Frobenius norm interpolant (what gradient descent on X directly, from 0, would find).
//
// Loss: (1/2m) sum_i (<A_i, U U^T> - y_i)^2, gradient (2/m) (sum_i r_i A_i) U. The measurement
// matrices are stored packed: row i holds the upper triangle (diagonal included) of A_i, so
// <A_i, X> = a_i . (w * x) with x the packed upper triangle of X and w = 1 on the diagonal and 2
// off it, and sum_i r_i A_i unpacks from A^T r. Everything is float64 tensor ops; spectra come
// from the project's Jacobi eigen-solver (core/linalg.h).
//
// Stopping: the relative training loss ||A(X) - y||^2 / ||y||^2 below --tol, or --max-iters. Its
// tail is slow (power law, not geometric): directions that grew a little during the first phase
// decay at a rate proportional to their own size. The smaller alpha, the smaller they are, so the
// runs with small alpha reach the tolerance and the large-alpha ones stop at the iteration limit
// with a small residual; summary.json records both.
#include <cmath>
#include <iostream>

#include "apps/cli.h"
#include "apps/experiment.h"
#include "core/linalg.h"
#include "core/ops.h"
#include "core/random.h"

namespace minima {
namespace {

// The most numbers the measurement matrices may hold (m n^2; 800 MB of float64).
constexpr int64_t kMaxMeasurementNumbers = 100000000;

// Packing of symmetric n x n matrices into their upper triangle (row by row).
struct Packing {
  int64_t n = 0, P = 0;
  Tensor to_packed;  // i64 [P]: flat index (i * n + j, i <= j) of each packed entry
  Tensor to_full;    // i64 [n * n]: packed index of each full entry (symmetric)
  Tensor weight;     // f64 [P]: 1 on the diagonal, 2 off it

  explicit Packing(int64_t n_) : n(n_), P(n_ * (n_ + 1) / 2) {
    std::vector<int64_t> tp, tf(static_cast<size_t>(n * n));
    std::vector<double> w;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i; j < n; ++j) {
        tf[size_t(i * n + j)] = tf[size_t(j * n + i)] = int64_t(tp.size());
        tp.push_back(i * n + j);
        w.push_back(i == j ? 1.0 : 2.0);
      }
    to_packed = from_vector<int64_t>(tp, {P}, DType::i64);
    to_full = from_vector<int64_t>(tf, {n * n}, DType::i64);
    weight = from_vector<double>(w, {P}, DType::f64);
  }
  Tensor pack(const Tensor& X) const { return index_select(X.reshape({n * n}), 0, to_packed); }
  Tensor unpack(const Tensor& x) const { return index_select(x, 0, to_full).reshape({n, n}); }
};

struct Spectrum {
  double nuclear = 0, effective_rank = 0;
  int64_t rank = 0;
  std::vector<double> eig;  // descending
};

// Nuclear norm, numerical rank (eigenvalues above rank_tol * the largest) and effective rank
// exp(entropy of the normalized eigenvalue magnitudes) (Roy & Vetterli 2007).
Spectrum spectrum(const Tensor& X, double rank_tol) {
  auto ev = linalg::eigh(X).values.to_vector<double>();
  Spectrum s;
  double top = 0;
  for (double v : ev) {
    s.nuclear += std::fabs(v);
    top = std::max(top, std::fabs(v));
  }
  double h = 0;
  for (double v : ev) {
    double p = std::fabs(v) / s.nuclear;
    if (p > 0) h -= p * std::log(p);
    if (std::fabs(v) > rank_tol * top) ++s.rank;
  }
  s.effective_rank = std::exp(h);
  for (auto it = ev.rbegin(); it != ev.rend(); ++it) s.eig.push_back(*it);
  return s;
}

int run_matrix_factorization(cli::Args& a) {
  a.set_description(
      "Gunasekar et al. 2017: gradient descent on X = U U^T (full n x n U) from U0 = sqrt(alpha) I fits an\n"
      "under-determined symmetric matrix-sensing problem (rank-r PSD ground truth with nuclear norm 1,\n"
      "m = 3nr Gaussian measurements). As alpha shrinks, the solution's nuclear norm falls to the minimum\n"
      "(the ground truth's) and its distance to the ground truth to zero. Figure: apps/plot/matrix_factorization.py.");
  std::string out = a.get_string("out", "runs/matrix-factorization", "output directory");
  int64_t seed = a.get_int("seed", 0, "random seed (ground truth, measurements)");
  int64_t n = a.get_int("n", 50, "matrix size");
  int64_t r = a.get_int("rank", 5, "rank of the ground truth");
  int64_t m = a.get_int("measurements", 0, "number of measurements (0: 3 n r)");
  std::vector<double> alphas =
      a.get_double_list("alphas", "1e-1,1e-2,1e-3,1e-4,1e-5,1e-6", "init scales alpha (U0 = sqrt(alpha) I)");
  double lr = a.get_double("lr", 0.5, "gradient descent step");
  int64_t max_iters = a.get_int("max-iters", 4000, "iteration limit per alpha");
  double tol = a.get_double("tol", 1e-6, "stop when the relative training loss ||A(X) - y||^2 / ||y||^2 is below this");
  double rank_tol = a.get_double("rank-tol", 1e-2, "eigenvalues above rank-tol x the largest count for the rank");
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  if (a.finish()) return 0;
  // The measurements are stored as m dense n x n matrices (m up to n(n+1)/2), so n is kept small.
  MINIMA_CHECK(n >= 2 && n <= 1000, "--n must be in [2, 1000], got ", n);
  MINIMA_CHECK(r >= 1 && r <= n, "--rank must be in [1, n] (got n ", n, ", rank ", r, ")");
  const int64_t unknowns = n * (n + 1) / 2;
  if (m == 0) {
    m = 3 * n * r;
    MINIMA_CHECK(m <= unknowns, "the default --measurements 3 n r = ", m, " exceeds the n(n+1)/2 = ", unknowns,
                 " unknowns of a symmetric ", n, " x ", n,
                 " matrix (the problem would not be under-determined); raise --n, lower --rank or set --measurements");
  }
  MINIMA_CHECK(m >= 1 && m <= unknowns, "--measurements must be in [1, n(n+1)/2 = ", unknowns, "], got ", m);
  // They are drawn as m dense n x n float64 matrices and symmetrized through two more of that size;
  // beyond kMaxMeasurementNumbers the run failed out of memory after claiming --out.
  MINIMA_CHECK(m * n * n <= kMaxMeasurementNumbers, "the ", m, " measurements of ", n, " x ", n,
               " matrices hold m n^2 = ", m * n * n, " numbers, more than ", kMaxMeasurementNumbers,
               "; lower --n, --rank or --measurements");
  MINIMA_CHECK(!alphas.empty(), "--alphas needs at least one value");
  for (double al : alphas) MINIMA_CHECK(al > 0, "--alphas must be positive, got ", al);
  MINIMA_CHECK(lr > 0 && max_iters >= 1 && tol > 0 && rank_tol > 0 && rank_tol < 1,
               "--lr, --max-iters and --tol must be positive and --rank-tol in (0, 1)");

  // Matrix-vector products of this size gain little from a second thread and lose a lot when the
  // machine is busy, so run single-threaded unless OMP_NUM_THREADS says otherwise.
  apps::prefer_single_thread();
  apps::Stopwatch clock;
  cli::RunDir dir(out);
  dir.write_config(a);
  Generator gen(static_cast<uint64_t>(seed));
  Packing pk(n);
  // Ground truth: W W^T / trace, W Gaussian n x r.
  Tensor W = randn({n, r}, gen, DType::f64);
  Tensor Xstar = matmul(W, W.t());
  auto trace = [n](const Tensor& X) { return sum(X.reshape({n * n}).slice(0, 0, n * n, n + 1)).item(); };
  Xstar = Xstar * (1.0 / trace(Xstar));
  // Measurements A_i = (G_i + G_i^T) / 2, G_i Gaussian; stored packed, one row per measurement.
  Tensor G = randn({m, n, n}, gen, DType::f64);
  Tensor A = index_select(((G + G.transpose(1, 2)) * 0.5).reshape({m, n * n}), 1, pk.to_packed);
  G = Tensor();
  auto measure = [&](const Tensor& X) { return matmul(A, pk.pack(X) * pk.weight); };
  Tensor y = measure(Xstar);
  double ynorm = linalg::norm(y), xstar_norm = linalg::norm(Xstar);

  // Minimum Frobenius norm interpolant: ||X||_F^2 = x . (w * x) in packed form, so with
  // z = sqrt(w) * x it is the minimum-norm z with (a_i * sqrt(w)) . z = y_i: z = B^T (B B^T)^-1 y
  // for B = A diag(sqrt w), solved by Cholesky (B B^T is m x m and well conditioned for Gaussian
  // B with m well below the packed dimension).
  Tensor sqrt_w = sqrt(pk.weight);
  Tensor B = A * sqrt_w;
  Tensor z = matmul(B.t(), linalg::cholesky_solve(linalg::cholesky(matmul(B, B.t())), y));
  Tensor Xfro = pk.unpack(z / sqrt_w);
  Spectrum sfro = spectrum(Xfro, rank_tol);
  Spectrum sstar = spectrum(Xstar, rank_tol);
  double fro_residual = linalg::norm(measure(Xfro) - y) / ynorm;
  double fro_error = linalg::norm(Xfro - Xstar) / xstar_norm;
  std::cout << "matrix-factorization: n " << n << ", rank " << r << ", " << m << " measurements for " << pk.P
            << " unknowns; ground truth nuclear norm " << cli::fmt(sstar.nuclear) << "; minimum Frobenius norm "
            << "interpolant: nuclear norm " << cli::fmt(sfro.nuclear) << ", relative error " << cli::fmt(fro_error)
            << " (residual " << cli::fmt(fro_residual, 2) << ")\n";

  apps::Table log({"alpha", "iter", "rel_residual", "nuclear_norm", "rel_error", "effective_rank", "rank"});
  apps::Table spectra({"solution", "index", "eigenvalue"});
  auto add_spectrum = [&](const std::string& name, const Spectrum& sp) {
    for (size_t k = 0; k < sp.eig.size(); ++k) spectra.row({name, std::to_string(k + 1), apps::Table::num(sp.eig[k])});
  };
  add_spectrum("ground_truth", sstar);
  add_spectrum("min_frobenius", sfro);
  std::vector<int64_t> log_at = apps::log_spaced_steps(max_iters, 10);
  Json runs = Json::array();
  std::vector<double> nuclear, errors, eff_ranks, residuals;
  std::vector<int64_t> ranks, iters_used;
  for (double alpha : alphas) {
    apps::Stopwatch sw;
    std::vector<double> eye(size_t(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) eye[size_t(i * n + i)] = std::sqrt(alpha);
    Tensor U = from_vector<double>(eye, {n, n}, DType::f64);
    size_t next = 0;
    Spectrum sp;
    double rel = 0, err = 0;
    int64_t it = 0;
    for (;; ++it) {
      Tensor X = matmul(U, U.t());
      Tensor res = measure(X) - y;
      rel = linalg::norm(res) / ynorm;
      MINIMA_CHECK(std::isfinite(rel) && rel < 1e6, "matrix-factorization: gradient descent diverged at alpha ", alpha,
                   " (iteration ", it, "); lower --lr");
      bool done = rel * rel < tol || it == max_iters;
      while (next < log_at.size() && log_at[next] < it) ++next;
      if (done || (next < log_at.size() && log_at[next] == it)) {
        sp = spectrum(X, rank_tol);
        err = linalg::norm(X - Xstar) / xstar_norm;
        log.row({apps::Table::num(alpha), std::to_string(it), apps::Table::num(rel), apps::Table::num(sp.nuclear),
                 apps::Table::num(err), apps::Table::num(sp.effective_rank), std::to_string(sp.rank)});
      }
      if (done) break;
      Tensor grad = matmul(pk.unpack(matmul(A.t(), res)), U) * (2.0 / double(m));
      U.add_(grad, -lr);
    }
    add_spectrum(cli::fmt(alpha, 3), sp);
    Json j = Json::object();
    j["alpha"] = alpha;
    j["iters"] = it;
    j["rel_residual"] = rel;
    j["rel_train_loss"] = rel * rel;
    j["nuclear_norm"] = sp.nuclear;
    j["rel_error"] = err;
    j["effective_rank"] = sp.effective_rank;
    j["rank"] = sp.rank;
    j["seconds"] = sw.seconds();
    runs.push_back(j);
    nuclear.push_back(sp.nuclear);
    errors.push_back(err);
    eff_ranks.push_back(sp.effective_rank);
    ranks.push_back(sp.rank);
    residuals.push_back(rel);
    iters_used.push_back(it);
    std::cout << "  alpha " << cli::fmt(alpha, 3) << ": " << it << " iterations (" << cli::fmt(sw.seconds(), 3)
              << " s), residual " << cli::fmt(rel, 3) << ", nuclear norm " << cli::fmt(sp.nuclear, 6)
              << ", ||X - X*||/||X*|| " << cli::fmt(err, 3) << ", effective rank " << cli::fmt(sp.effective_rank, 4)
              << ", rank " << sp.rank << "\n";
    if (rel * rel >= tol)
      std::cout << "  note: the relative training loss " << cli::fmt(rel * rel, 3) << " is above --tol " << tol
                << " after --max-iters " << max_iters << "\n";
  }
  log.write(dir.file("metrics.csv"));
  spectra.write(dir.file("spectra.csv"));

  Json sm = Json::object();
  sm["n"] = n;
  sm["rank"] = r;
  sm["measurements"] = m;
  sm["unknowns"] = pk.P;
  sm["alphas"] = alphas;
  sm["nuclear_norm"] = nuclear;
  sm["rel_error"] = errors;
  sm["effective_rank"] = eff_ranks;
  sm["numerical_rank"] = ranks;
  sm["rel_residual"] = residuals;
  sm["iters"] = iters_used;
  sm["ground_truth_nuclear_norm"] = sstar.nuclear;
  sm["ground_truth_effective_rank"] = sstar.effective_rank;
  sm["min_frobenius_nuclear_norm"] = sfro.nuclear;
  sm["min_frobenius_rel_error"] = fro_error;
  sm["min_frobenius_effective_rank"] = sfro.effective_rank;
  sm["min_frobenius_rel_residual"] = fro_residual;
  sm["runs"] = runs;
  sm["seconds"] = clock.seconds();
  dir.write_summary(sm);
  std::cout << "wrote " << dir.path() << "/{config.json,metrics.csv,spectra.csv,summary.json} in "
            << cli::fmt(clock.seconds(), 3) << " s\n";
  apps::render_figure("matrix_factorization.py", dir.path(), !no_plot);
  return 0;
}

cli::Register reg("matrix-factorization",
                  "Gunasekar et al.: GD on X = UU^T from a small init finds the minimum nuclear norm solution",
                  run_matrix_factorization);

}  // namespace
}  // namespace minima
