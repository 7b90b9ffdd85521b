// apps/min_norm.cpp: `minima min-norm`: the implicit bias of gradient descent on an
// under-determined least-squares problem. For 0.5 ||X w - y||^2 with X [n, d], n < d, every
// update of GD, SGD or momentum is a combination of rows of X, so the component of w in the null
// space of X never changes: from w0 the iterates converge to X^+ y + (I - X^+ X) w0, the
// interpolant closest to w0, and from w0 = 0 to the minimum-norm interpolant X^+ y.
// X^+ comes from the project's float64 Jacobi SVD (core/linalg.h); the optimizers are written as
// float64 tensor matmuls. Step sizes: GD and momentum use 1/sigma_max(X)^2; SGD with batch B
// takes the mean gradient of the batch with step 1/L(B), where L(B) is the "expected smoothness"
// of sampling B rows without replacement (Gower et al. 2019), which interpolates between
// max_i ||x_i||^2 (B = 1, a Kaczmarz step) and sigma_max^2 / n (B = n, plain GD).
#include <cmath>
#include <iostream>

#include "apps/cli.h"
#include "apps/experiment.h"
#include "core/linalg.h"
#include "core/ops.h"
#include "core/random.h"

namespace minima {
namespace {

struct Problem {
  Tensor X, y, w0;
  Tensor pinvX;       // X^+ [d, n]
  Tensor w_min_norm;  // X^+ y
  Tensor w0_null;     // (I - X^+ X) w0
  double sigma_max = 0, sigma_min = 0, max_row_sq = 0;
};

struct RunResult {
  double rel_dist_min_norm = 0, rel_dist_prediction = 0, mse = 0;
};

// The largest n x d: X, its SVD and its pseudo-inverse are several n x d float64 matrices (80 MB
// each at this size), and the SVD's time grows like n^2 d (about half a minute at n = 500, d = 5000).
constexpr int64_t kMaxEntries = 10000000;

double rel_dist(const Tensor& w, const Tensor& ref) { return linalg::norm(w - ref) / linalg::norm(ref); }

// One optimizer from one start; logs one row per pass over the data.
class Runner {
 public:
  Runner(const Problem& p, apps::Table& table) : p_(p), table_(table) {}

  RunResult run(const std::string& method, bool from_w0, int64_t passes, int64_t batch, double lr, double momentum,
                uint64_t seed) {
    NoGradGuard ng;
    const Tensor& X = p_.X;
    const Tensor& y = p_.y;
    int64_t n = X.size(0);
    Tensor prediction = from_w0 ? p_.w_min_norm + p_.w0_null : p_.w_min_norm;
    Tensor w = from_w0 ? p_.w0.clone() : zeros({X.size(1)}, DType::f64);
    Tensor velocity = zeros_like(w);
    std::string init = from_w0 ? "w0" : "zero";
    auto log = [&](int64_t pass) {
      Tensor r = matmul(X, w) - y;
      double mse = sum(square(r)).item() / double(n);
      last_ = {rel_dist(w, p_.w_min_norm), rel_dist(w, prediction), mse};
      table_.row({method, init, std::to_string(pass), apps::Table::num(mse), apps::Table::num(last_.rel_dist_min_norm),
                  apps::Table::num(last_.rel_dist_prediction), apps::Table::num(linalg::norm(w)),
                  apps::Table::num(linalg::norm(w - project_row(w)))});
    };
    log(0);
    for (int64_t pass = 1; pass <= passes; ++pass) {
      if (batch >= n) {  // full-batch GD (with optional heavy-ball momentum)
        Tensor g = matmul(X.t(), matmul(X, w) - y);
        if (momentum > 0) {
          velocity = velocity * momentum + g;
          w.add_(velocity, -lr);
        } else {
          w.add_(g, -lr);
        }
      } else {  // SGD: a fresh permutation each pass, mean gradient of each batch
        Generator g(Generator::mix(seed, uint64_t(pass), uint64_t(batch)));
        Tensor perm = randperm(n, g);
        for (int64_t start = 0; start < n; start += batch) {
          int64_t b = std::min(batch, n - start);
          Tensor idx = perm.narrow(0, start, b);
          Tensor Xb = index_select(X, 0, idx), yb = index_select(y, 0, idx);
          Tensor grad = matmul(Xb.t(), matmul(Xb, w) - yb) * (1.0 / double(b));
          w.add_(grad, -lr);
        }
      }
      log(pass);
    }
    return last_;
  }

 private:
  // X^+ X w: the part of w in the row space of X.
  Tensor project_row(const Tensor& w) const { return matmul(p_.pinvX, matmul(p_.X, w)); }

  const Problem& p_;
  apps::Table& table_;
  RunResult last_;
};

int run_min_norm(cli::Args& a) {
  a.set_description(
      "Gradient descent on under-determined least squares 0.5||Xw - y||^2 (X: n x d Gaussian, n < d)\n"
      "converges to the interpolant closest to its start: X^+ y from w0 = 0, X^+ y + (I - X^+ X) w0\n"
      "from a random w0. Runs GD, heavy-ball momentum and SGD from both starts and logs the distance\n"
      "to both predictions per pass over the data. Figure: apps/plot/min_norm.py.");
  std::string out = a.get_string("out", "runs/min-norm", "output directory");
  int64_t seed = a.get_int("seed", 0, "random seed (data, w0, SGD order)");
  int64_t n = a.get_int("n", 50, "number of samples (rows of X)");
  int64_t d =
      a.get_int("d", 200,
                "number of features (columns of X); must exceed n, with n x d at most " + std::to_string(kMaxEntries));
  int64_t passes = a.get_int("iters", 500, "GD iterations = passes over the data for every method");
  double momentum = a.get_double("momentum", 0.9, "heavy-ball momentum of the momentum run");
  std::vector<int64_t> batches = a.get_int_list("sgd-batches", "1,10", "SGD batch sizes");
  double w0_scale = a.get_double("w0-scale", 1.0, "standard deviation of the random start w0");
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  if (a.finish()) return 0;
  MINIMA_CHECK(n >= 1 && d > n, "--d (", d, ") must exceed --n (", n, ") for an under-determined problem");
  MINIMA_CHECK(d <= kMaxEntries / n, "--n x --d must be at most ", kMaxEntries, " (X is an n x d float64 matrix), got ",
               n, " x ", d);
  MINIMA_CHECK(passes >= 1, "--iters must be positive, got ", passes);
  MINIMA_CHECK(momentum >= 0 && momentum < 1, "--momentum must be in [0, 1), got ", momentum);
  // Squared norms of w0 are summed: beyond 1e100 they overflow to inf and every figure turns NaN.
  MINIMA_CHECK(w0_scale > 0 && w0_scale <= 1e100, "--w0-scale must be in (0, 1e100], got ", w0_scale);
  MINIMA_CHECK(!batches.empty(), "--sgd-batches needs at least one batch size");
  for (int64_t b : batches) MINIMA_CHECK(b >= 1 && b < n, "--sgd-batches: each batch size must be in [1, n), got ", b);

  apps::prefer_single_thread();
  apps::Stopwatch clock;
  cli::RunDir dir(out);
  dir.write_config(a);

  Generator gen(static_cast<uint64_t>(seed));
  Problem p;
  p.X = randn({n, d}, gen, DType::f64);
  p.y = randn({n}, gen, DType::f64);
  p.w0 = randn({d}, gen, DType::f64) * w0_scale;
  linalg::SVD s = linalg::svd(p.X);
  auto sv = s.S.to_vector<double>();
  p.sigma_max = sv.front();
  p.sigma_min = sv.back();
  MINIMA_CHECK(p.sigma_min > 1e-12 * p.sigma_max, "X is rank deficient (sigma_min ", p.sigma_min, ")");
  p.pinvX = linalg::pinv(p.X);
  p.w_min_norm = matmul(p.pinvX, p.y);
  p.w0_null = p.w0 - matmul(p.pinvX, matmul(p.X, p.w0));
  p.max_row_sq = max(sum(square(p.X), {1})).item();
  double interp_residual = linalg::norm(matmul(p.X, p.w_min_norm) - p.y) / linalg::norm(p.y);

  double lr_gd = 1.0 / (p.sigma_max * p.sigma_max);
  auto sgd_lr = [&](int64_t B) {
    double L = p.sigma_max * p.sigma_max / double(n), Lmax = p.max_row_sq;
    double LB = double(n) * double(B - 1) / (double(B) * double(n - 1)) * L +
                double(n - B) / (double(B) * double(n - 1)) * Lmax;
    return 1.0 / LB;
  };
  std::cout << "min-norm: X " << n << "x" << d << ", sigma_max " << cli::fmt(p.sigma_max) << ", sigma_min "
            << cli::fmt(p.sigma_min) << ", ||X^+ y|| " << cli::fmt(linalg::norm(p.w_min_norm))
            << ", ||(I - X^+ X) w0|| " << cli::fmt(linalg::norm(p.w0_null)) << "\n";

  apps::Table table({"method", "init", "pass", "mse", "rel_dist_min_norm", "rel_dist_prediction", "norm", "null_norm"});
  Runner runner(p, table);
  struct Method {
    std::string name;
    int64_t batch;
    double lr, momentum;
  };
  std::vector<Method> methods = {{"gd", n, lr_gd, 0.0}, {"momentum", n, lr_gd, momentum}};
  for (int64_t b : batches) methods.push_back({"sgd-b" + std::to_string(b), b, sgd_lr(b), 0.0});

  Json runs = Json::object();
  for (const auto& m : methods) {
    Json jm = Json::object();
    jm["lr"] = m.lr;
    jm["batch"] = m.batch;
    for (bool from_w0 : {false, true}) {
      RunResult r = runner.run(m.name, from_w0, passes, m.batch, m.lr, m.momentum, uint64_t(seed));
      Json jr = Json::object();
      jr["rel_dist_min_norm"] = r.rel_dist_min_norm;
      jr["rel_dist_prediction"] = r.rel_dist_prediction;
      jr["mse"] = r.mse;
      jm[from_w0 ? "from_w0" : "from_zero"] = jr;
      std::cout << "  " << m.name << " from " << (from_w0 ? "w0  " : "zero") << ": ||w - X^+y||/||X^+y|| "
                << cli::fmt(r.rel_dist_min_norm, 3) << ", distance to the prediction "
                << cli::fmt(r.rel_dist_prediction, 3) << ", mse " << cli::fmt(r.mse, 3) << "\n";
    }
    runs[m.name] = jm;
  }
  table.write(dir.file("metrics.csv"));

  Json sm = Json::object();
  sm["n"] = n;
  sm["d"] = d;
  sm["sigma_max"] = p.sigma_max;
  sm["sigma_min"] = p.sigma_min;
  sm["lr_gd"] = lr_gd;
  sm["min_norm_solution_norm"] = linalg::norm(p.w_min_norm);
  sm["w0_null_space_norm"] = linalg::norm(p.w0_null);
  sm["min_norm_interpolation_residual"] = interp_residual;
  // The headline figures: GD from zero lands on X^+ y; from w0 it misses X^+ y by exactly w0's
  // null-space part and lands on the prediction that includes it.
  sm["gd_from_zero_rel_dist_min_norm"] = runs.at("gd").at("from_zero").at("rel_dist_min_norm");
  sm["gd_from_w0_rel_dist_min_norm"] = runs.at("gd").at("from_w0").at("rel_dist_min_norm");
  sm["gd_from_w0_rel_dist_prediction"] = runs.at("gd").at("from_w0").at("rel_dist_prediction");
  sm["predicted_gap_from_w0"] = linalg::norm(p.w0_null) / linalg::norm(p.w_min_norm);
  sm["runs"] = runs;
  sm["seconds"] = clock.seconds();
  dir.write_summary(sm);
  std::cout << "wrote " << dir.path() << "/{config.json,metrics.csv,summary.json} in " << cli::fmt(clock.seconds(), 3)
            << " s\n";
  apps::render_figure("min_norm.py", dir.path(), !no_plot);
  return 0;
}

cli::Register reg("min-norm", "implicit bias of GD on least squares: the minimum-norm interpolant", run_min_norm);

}  // namespace
}  // namespace minima
