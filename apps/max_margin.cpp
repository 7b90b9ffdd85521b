// apps/max_margin.cpp: `minima max-margin`: Soudry et al. 2018, Figures 1 and 2. On linearly
// separable data the logistic loss has no minimizer; gradient descent from w = 0 diverges in norm
// like log t while its direction converges, slowly (like 1/log t), to the L2 max-margin direction.
// Momentum behaves the same. Adam is biased towards the L-infinity max margin instead (Zhang et
// al. 2024): on Figure 1's data both directions are (1,1), so Adam converges there as well, and
// the difference shows on Figure 2's data (second coordinate x20), which this command also runs.
//
// The reference direction comes from the project's own hard-margin SVM (no bias): dual coordinate
// ascent on  max_a sum(a) - 0.5 ||sum_i a_i y_i x_i||^2,  a >= 0,  followed by an exact "polish":
// the minimum-norm w with y_i w.x_i = 1 on the support set found (core/linalg.h's min-norm
// solve, which also copes with the duplicated rows that symmetric data produces).
//
// The problem is 2-D with 16 points and 10^6 iterations per optimizer, so the optimizers are plain
// float64 loops over the points rather than tensor ops: that is both clearer and ~100x faster
// than launching tensor ops of 16 elements.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/experiment.h"
#include "core/linalg.h"
#include "core/ops.h"
#include "core/parse.h"
#include "core/random.h"

namespace minima {
namespace {

// Labelled points: x row-major [N, d], y in {-1, +1}.
struct Data {
  int64_t N = 0, d = 0;
  std::vector<double> x, y;
  // z_i = y_i x_i: margins are z_i . w.
  std::vector<double> z() const {
    std::vector<double> r(x.size());
    for (int64_t i = 0; i < N; ++i)
      for (int64_t k = 0; k < d; ++k) r[i * d + k] = y[i] * x[i * d + k];
    return r;
  }
};

// More random points per class than any figure needs; every iteration of every optimizer is a
// pass over them.
constexpr int64_t kMaxExtra = 100000;
// The most values (points x dimensions) a --data file may hold: the optimizers pass over all of
// them at every one of their --iters iterations, and the SVM solver's sweeps do as well.
constexpr int64_t kMaxDataValues = 1000000;
// Logged iterations per decade: far more than a figure can show (the default is 20). Each decade
// costs per_decade powers of 10 to schedule and rows to write.
constexpr int64_t kMaxPerDecade = 1000;

// Soudry et al.'s data: support vectors (0.5, 1.5), (1.5, 0.5) labelled +1, their negatives -1,
// and `extra` more points per class with margin >= 1.25 under w = (0.5, 0.5), i.e. strictly
// beyond the margin, so the max-margin solution stays w = (0.5, 0.5).
// x2_scale stretches the second coordinate afterwards (Figure 2).
Data soudry_data(int64_t extra, double range, double min_margin, double x2_scale, uint64_t seed) {
  Data D;
  D.d = 2;
  auto add = [&](double a, double b, double label) {
    D.x.push_back(a);
    D.x.push_back(b);
    D.y.push_back(label);
    ++D.N;
  };
  add(0.5, 1.5, 1);
  add(1.5, 0.5, 1);
  add(-0.5, -1.5, -1);
  add(-1.5, -0.5, -1);
  // A uniform point of [0, R]^2 with a + b >= 2m. While 2m <= R that is at least half the square,
  // so rejection takes at most two draws on average. Beyond, the region is the corner triangle
  // with legs L = 2R - 2m at (R, R), which can be almost nothing (R barely above m): a point of it
  // is drawn directly, by folding a uniform point of the L x L square onto the triangle.
  Generator g(seed);
  const double L = 2.0 * range - 2.0 * min_margin;
  auto draw = [&](double& a, double& b) {
    if (2.0 * min_margin <= range) {
      do {
        a = range * g.uniform();
        b = range * g.uniform();
      } while (a + b < 2.0 * min_margin);
      return;
    }
    double s = L * g.uniform(), t = L * g.uniform();
    if (s + t > L) s = L - s, t = L - t;
    a = range - s;  // >= 2m - R > 0
    b = range - t;
  };
  for (double label : {1.0, -1.0}) {
    for (int64_t k = 0; k < extra; ++k) {
      double a, b;
      draw(a, b);
      add(label * a, label * b, label);
    }
  }
  for (int64_t i = 0; i < D.N; ++i) D.x[i * 2 + 1] *= x2_scale;
  return D;
}

// A CSV file with one point per line: x_1,...,x_d,label (label -1 or +1; '#' starts a comment).
Data csv_data(const std::string& path) {
  std::ifstream f(path);
  MINIMA_CHECK(f.good(), "--data: cannot open '", path, "'");
  MINIMA_CHECK(std::filesystem::is_regular_file(path), "--data: '", path, "' is not a file");
  Data D;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    std::vector<double> v;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      // The whole cell, blanks (and a Windows line end) aside, must be one number: std::stod alone
      // would read "1x" as 1. Squares of the values are summed, so they are kept well below overflow.
      size_t first = cell.find_first_not_of(" \t\r"), last = cell.find_last_not_of(" \t\r");
      std::string num = first == std::string::npos ? "" : cell.substr(first, last - first + 1);
      std::optional<double> x = parse_double(num);
      MINIMA_CHECK(x && std::fabs(*x) <= 1e100, "--data ", path, " line ", lineno, ": '", cell,
                   "' is not a number of magnitude at most 1e100");
      v.push_back(*x);
      MINIMA_CHECK(D.N * D.d + int64_t(v.size()) <= kMaxDataValues + 1, "--data ", path, ": more than ", kMaxDataValues,
                   " values (points x dimensions) by line ", lineno,
                   "; max-margin passes over all of them at every iteration");
    }
    MINIMA_CHECK(v.size() >= 2, "--data ", path, " line ", lineno, ": expected x_1,...,x_d,label");
    int64_t d = int64_t(v.size()) - 1;
    MINIMA_CHECK(D.N == 0 || d == D.d, "--data ", path, " line ", lineno, ": ", d, " features, earlier lines had ",
                 D.d);
    MINIMA_CHECK(v.back() == 1.0 || v.back() == -1.0, "--data ", path, " line ", lineno,
                 ": label must be -1 or 1, got ", v.back());
    D.d = d;
    D.x.insert(D.x.end(), v.begin(), v.end() - 1);
    D.y.push_back(v.back());
    ++D.N;
  }
  MINIMA_CHECK(D.N >= 2, "--data ", path, ": needs at least two points");
  return D;
}

double dot(const double* a, const double* b, int64_t d) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) s += a[k] * b[k];
  return s;
}

struct SvmResult {
  std::vector<double> w;
  std::vector<int64_t> support;
  int64_t sweeps = 0;
  double kkt_violation = 0;
};

// The work of one sweep of the SVM solver over N points in d dimensions, in the unit of --svm-work:
// two loops over each point's d values, plus the point itself, worth about 16 of their steps.
double svm_sweep_work(int64_t N, int64_t d) { return double(N) * double(d + 16); }

// Hard-margin SVM through the origin: min ||w|| s.t. z_i . w >= 1. At most 200,000 sweeps, and
// at most `work` (svm_sweep_work units) over all of them: large data gets fewer sweeps.
SvmResult hard_margin_svm(const std::vector<double>& Z, int64_t N, int64_t d, double work) {
  std::vector<double> alpha(N, 0.0), w(d, 0.0), zz(N);
  for (int64_t i = 0; i < N; ++i) {
    zz[i] = dot(&Z[i * d], &Z[i * d], d);
    MINIMA_CHECK(zz[i] > 0, "max-margin: point ", i,
                 " is the origin, which no hyperplane through the origin separates");
  }
  SvmResult r;
  // Without a separating direction the dual is unbounded: the iterates never settle (and w may
  // grow without bound), so running out of sweeps means "not separable" (or a tiny margin).
  const int64_t max_by_work = int64_t(std::min(1e18, work / svm_sweep_work(N, d)));
  const int64_t max_sweeps = std::max<int64_t>(1, std::min<int64_t>(200000, max_by_work));
  for (r.sweeps = 1; r.sweeps <= max_sweeps; ++r.sweeps) {
    double violation = 0;
    for (int64_t i = 0; i < N; ++i) {
      double g = dot(w.data(), &Z[i * d], d) - 1.0;  // > 0: constraint slack
      violation = std::max(violation, alpha[i] > 0 ? std::fabs(g) : std::max(0.0, -g));
      double a_new = std::max(0.0, alpha[i] - g / zz[i]);
      for (int64_t k = 0; k < d; ++k) w[k] += (a_new - alpha[i]) * Z[i * d + k];
      alpha[i] = a_new;
    }
    r.kkt_violation = violation;
    if (violation < 1e-13 || !(dot(w.data(), w.data(), d) < 1e16)) break;
  }
  MINIMA_CHECK(r.kkt_violation < 1e-8, "max-margin: the hard-margin SVM did not converge within ",
               std::min(r.sweeps, max_sweeps), " sweeps over the ", N, " points (KKT violation ", r.kkt_violation,
               "): the data is not linearly separable by a hyperplane through the origin (or its margin is tiny)",
               max_sweeps < 200000 ? str("; --svm-work ", work,
                                         " allows no more sweeps of this data (raise it to let the solver run longer)")
                                   : "");
  double amax = *std::max_element(alpha.begin(), alpha.end());
  for (int64_t i = 0; i < N; ++i)
    if (alpha[i] > 1e-9 * amax) r.support.push_back(i);
  // Polish: on the support set the constraints hold with equality, and w is the minimum-norm
  // solution of Z_S w = 1 (w lies in the span of the support vectors).
  std::vector<double> zs;
  for (int64_t i : r.support) zs.insert(zs.end(), Z.begin() + i * d, Z.begin() + (i + 1) * d);
  int64_t S = int64_t(r.support.size());
  Tensor ws = linalg::lstsq_min_norm(from_vector<double>(zs, {S, d}, DType::f64), ones({S}, DType::f64));
  std::vector<double> wp = ws.to_vector<double>();
  double worst = 1e300;
  for (int64_t i = 0; i < N; ++i) worst = std::min(worst, dot(wp.data(), &Z[i * d], d));
  r.w = worst > 1.0 - 1e-10 ? wp : w;  // keep the iterate if polishing broke feasibility
  return r;
}

// ----------------------------------------------------------------------------------------------
// The optimizers on the mean logistic loss L(w) = (1/N) sum_i log(1 + exp(-z_i . w)). (With the
// sum instead, the step 1/sigma_max(X) exceeds the stability bound 8 / sigma_max^2 once
// sigma_max > 8: momentum then overshoots in its first steps to a loss so small that its direction
// is frozen far from the max-margin one.)
struct Tracker {
  const std::vector<double>& Z;
  int64_t N, d;
  std::vector<double> u;  // unit max-margin direction
  double gamma_star;      // max margin = 1 / ||w_hat||

  // Loss and gradient at w.
  double loss_grad(const std::vector<double>& w, std::vector<double>& g) const {
    std::fill(g.begin(), g.end(), 0.0);
    double loss = 0;
    for (int64_t i = 0; i < N; ++i) {
      const double* zi = &Z[i * d];
      double m = dot(w.data(), zi, d);
      double e = std::exp(-m);
      loss += std::log1p(e);
      double s = e / (1.0 + e);  // sigmoid(-m); e overflows only for m < -709, then s -> nan
      if (!std::isfinite(e)) s = 1.0;
      for (int64_t k = 0; k < d; ++k) g[k] -= s * zi[k];
    }
    for (int64_t k = 0; k < d; ++k) g[k] /= double(N);
    return loss / double(N);
  }
  double norm(const std::vector<double>& w) const { return std::sqrt(dot(w.data(), w.data(), d)); }
  // Angle (radians) between w and the max-margin direction, accurate for tiny angles.
  double angle_gap(const std::vector<double>& w) const {
    double c = dot(w.data(), u.data(), d), perp = 0;
    for (int64_t k = 0; k < d; ++k) perp += (w[k] - c * u[k]) * (w[k] - c * u[k]);
    return std::atan2(std::sqrt(perp), c);
  }
  // Max margin minus the normalized margin of w.
  double margin_gap(const std::vector<double>& w) const {
    double nw = norm(w), mn = 1e300;
    for (int64_t i = 0; i < N; ++i) mn = std::min(mn, dot(w.data(), &Z[i * d], d));
    return gamma_star - mn / nw;
  }
};

struct OptConfig {
  std::string name;
  double lr = 0, momentum = 0;
  bool adam = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

struct OptResult {
  std::vector<double> w;
  double loss = 0, angle_gap = 0, margin_gap = 0, norm = 0;
};

OptResult optimize(const std::string& dataset, const OptConfig& c, const Tracker& T, int64_t iters,
                   const std::vector<int64_t>& log_at, apps::Table& table) {
  int64_t d = T.d;
  std::vector<double> w(d, 0.0), g(d), buf(d, 0.0), v2(d, 0.0);
  OptResult r;
  size_t next = 0;
  auto log = [&](int64_t t, double loss) {
    r.w = w;
    r.loss = loss;
    r.norm = T.norm(w);
    r.angle_gap = r.norm > 0 ? T.angle_gap(w) : NAN;
    r.margin_gap = r.norm > 0 ? T.margin_gap(w) : NAN;
    std::vector<std::string> row = {dataset,
                                    c.name,
                                    std::to_string(t),
                                    apps::Table::num(loss),
                                    apps::Table::num(r.norm),
                                    apps::Table::num(r.angle_gap),
                                    apps::Table::num(r.margin_gap),
                                    apps::Table::num(w[0]),
                                    apps::Table::num(d > 1 ? w[1] : 0.0)};
    table.row(row);
  };
  for (int64_t t = 0;; ++t) {
    double loss = T.loss_grad(w, g);  // loss of the current iterate w(t)
    // ||w|| grows like log t; a step too large for the data overflows w or the loss instead, and
    // every figure from there on would be inf or nan.
    const double norm_sq = dot(w.data(), w.data(), d);
    MINIMA_CHECK(std::isfinite(loss) && std::isfinite(norm_sq), "max-margin: ", c.name, " diverged on ", dataset,
                 " at iteration ", t, " (||w||^2 ", norm_sq, ", loss ", loss, "); try a smaller ",
                 c.adam ? "--adam-lr" : "--lr");
    if (next < log_at.size() && log_at[next] == t) {
      log(t, loss);
      ++next;
    }
    if (t == iters) break;
    if (c.adam) {
      double b1t = 1.0 - std::pow(c.beta1, double(t + 1)), b2t = 1.0 - std::pow(c.beta2, double(t + 1));
      for (int64_t k = 0; k < d; ++k) {
        buf[k] = c.beta1 * buf[k] + (1 - c.beta1) * g[k];
        v2[k] = c.beta2 * v2[k] + (1 - c.beta2) * g[k] * g[k];
        w[k] -= c.lr * (buf[k] / b1t) / (std::sqrt(v2[k] / b2t) + c.eps);
      }
    } else if (c.momentum > 0) {  // heavy ball, PyTorch's form: v = mu v + g; w -= lr v
      for (int64_t k = 0; k < d; ++k) {
        buf[k] = c.momentum * buf[k] + g[k];
        w[k] -= c.lr * buf[k];
      }
    } else {
      for (int64_t k = 0; k < d; ++k) w[k] -= c.lr * g[k];
    }
  }
  return r;
}

struct Settings {
  int64_t iters = 0, per_decade = 0;
  double lr = 0, momentum = 0, adam_lr = 0, beta1 = 0, beta2 = 0, adam_eps = 0;
};

// GD, momentum and Adam on one data set, given its SVM solution; rows go to the shared tables,
// figures to the returned summary block.
Json run_dataset(const std::string& name, const Data& D, const SvmResult& svm, const Settings& st, apps::Table& metrics,
                 apps::Table& points) {
  std::vector<double> Z = D.z();
  double wnorm = std::sqrt(dot(svm.w.data(), svm.w.data(), D.d));
  std::vector<int64_t> on_margin;  // every point whose constraint is active, duplicates included
  for (int64_t i = 0; i < D.N; ++i)
    if (std::fabs(dot(svm.w.data(), &Z[i * D.d], D.d) - 1.0) < 1e-9) on_margin.push_back(i);
  double sigma_max = linalg::spectral_norm(from_vector<double>(D.x, {D.N, D.d}, DType::f64));
  double lr = st.lr > 0 ? st.lr : 1.0 / sigma_max;
  double adam_lr = st.adam_lr > 0 ? st.adam_lr : lr;
  Tracker T{Z, D.N, D.d, {}, 1.0 / wnorm};
  for (double v : svm.w) T.u.push_back(v / wnorm);
  std::cout << name << ": " << D.N << " points in " << D.d << "-D; SVM w_hat = " << str(svm.w) << " (margin "
            << cli::fmt(T.gamma_star) << ", " << on_margin.size() << " points on the margin); sigma_max(X) "
            << cli::fmt(sigma_max) << ", lr " << cli::fmt(lr) << "\n";
  // The mean logistic loss has curvature <= sigma_max^2 / (4 N): GD is stable for lr < 8 N / sigma_max^2.
  if (lr * sigma_max * sigma_max >= 8.0 * double(D.N))
    std::cout << "note: lr * sigma_max^2 / N = " << cli::fmt(lr * sigma_max * sigma_max / double(D.N))
              << " >= 8: GD may oscillate before it settles\n";
  for (int64_t i = 0; i < D.N; ++i) {
    bool sv = std::find(on_margin.begin(), on_margin.end(), i) != on_margin.end();
    points.row({name, apps::Table::num(D.x[i * D.d]), apps::Table::num(D.d > 1 ? D.x[i * D.d + 1] : 0.0),
                apps::Table::num(D.y[i]), sv ? "1" : "0"});
  }

  std::vector<OptConfig> opts(3);
  opts[0].name = "gd";
  opts[0].lr = lr;
  opts[1].name = "momentum";
  opts[1].lr = lr;
  opts[1].momentum = st.momentum;
  opts[2].name = "adam";
  opts[2].lr = adam_lr;
  opts[2].adam = true;
  opts[2].beta1 = st.beta1;
  opts[2].beta2 = st.beta2;
  opts[2].eps = st.adam_eps;

  std::vector<int64_t> log_at = apps::log_spaced_steps(st.iters, st.per_decade);
  Json final = Json::object(), gaps = Json::object();
  for (const auto& c : opts) {
    apps::Stopwatch sw;
    OptResult r = optimize(name, c, T, st.iters, log_at, metrics);
    Json j = Json::object();
    j["lr"] = c.lr;
    j["w"] = r.w;
    j["norm"] = r.norm;
    j["loss"] = r.loss;
    j["angle_gap"] = r.angle_gap;
    j["margin_gap"] = r.margin_gap;
    j["seconds"] = sw.seconds();
    final[c.name] = j;
    gaps[c.name] = r.angle_gap;
    std::cout << "  " << c.name << ": " << st.iters << " iterations in " << cli::fmt(sw.seconds(), 3) << " s, ||w|| "
              << cli::fmt(r.norm) << ", loss " << cli::fmt(r.loss, 3) << ", angle gap " << cli::fmt(r.angle_gap, 3)
              << " rad, margin gap " << cli::fmt(r.margin_gap, 3) << "\n";
  }
  Json j = Json::object();
  j["points"] = D.N;
  j["dim"] = D.d;
  j["svm_w"] = svm.w;
  j["svm_margin"] = T.gamma_star;
  j["svm_on_margin"] = on_margin;
  j["svm_kkt_violation"] = svm.kkt_violation;
  j["svm_sweeps"] = svm.sweeps;
  j["sigma_max"] = sigma_max;
  j["lr"] = lr;
  j["angle_gap"] = gaps;
  j["final"] = final;
  return j;
}

int run_max_margin(cli::Args& a) {
  a.set_description(
      "Soudry et al. 2018, Figures 1 and 2: logistic regression (mean loss, no bias, w0 = 0) on separable\n"
      "data. GD and momentum converge in direction to the L2 max-margin separator (found by the project's\n"
      "hard-margin SVM) while ||w|| grows like log t and the loss falls like 1/t.\n"
      "Data sets: 'soudry' (Figure 1: support vectors (0.5,1.5), (1.5,0.5), their negatives, and random\n"
      "points beyond the margin; max margin w = (0.5, 0.5)) and 'soudry-stretched' (Figure 2: the same\n"
      "points with the second coordinate times --stretch). On the first, the L2 and L-infinity max-margin\n"
      "directions coincide ((1,1)), so Adam converges there too; on the stretched data Adam's direction\n"
      "stays away from the L2 max-margin one. --data FILE runs one CSV data set instead (at most\n"
      "10^6 values, points x dimensions).\n"
      "Figure: apps/plot/max_margin.py.");
  std::string out = a.get_string("out", "runs/max-margin", "output directory");
  int64_t seed = a.get_int("seed", 0, "random seed (the extra points)");
  std::string data_path = a.get_string("data", "", "CSV file x_1,...,x_d,label(+-1) instead of the built-in data");
  int64_t extra = a.get_int("extra-per-class", 6, "random points per class beyond the margin (built-in data)");
  double range = a.get_double("extra-range", 3.0, "extra points are drawn from [0, R]^2 (then negated for class -1)");
  double min_margin = a.get_double("extra-min-margin", 1.25, "extra points have margin >= this under w = (0.5, 0.5)");
  double stretch = a.get_double("stretch", 20.0, "second-coordinate factor of the soudry-stretched data");
  Settings st;
  st.iters = a.get_int("iters", 1000000, "iterations of each optimizer");
  st.per_decade = a.get_int("log-per-decade", 20,
                            "logged iterations per decade (log-spaced; at most " + std::to_string(kMaxPerDecade) + ")");
  st.lr = a.get_double("lr", 0.0, "step of GD and momentum (0: 1/sigma_max(X) of each data set)");
  st.momentum = a.get_double("momentum", 0.9, "momentum of the momentum run");
  st.adam_lr = a.get_double("adam-lr", 0.0, "Adam's step (0: the same as GD's)");
  st.beta1 = a.get_double("adam-beta1", 0.9, "Adam beta1");
  st.beta2 = a.get_double("adam-beta2", 0.999, "Adam beta2");
  st.adam_eps = a.get_double("adam-eps", 1e-8, "Adam epsilon");
  const double svm_work =
      a.get_double("svm-work", 1e10,
                   "the SVM solver stops with an error after this much work: sweeps x points x (dimensions + 16), "
                   "about 1e9 a second");
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  if (a.finish()) return 0;
  MINIMA_CHECK(st.iters >= 1, "--iters must be positive, got ", st.iters);
  MINIMA_CHECK(st.per_decade >= 1 && st.per_decade <= kMaxPerDecade, "--log-per-decade must be in [1, ", kMaxPerDecade,
               "], got ", st.per_decade);
  MINIMA_CHECK(extra >= 0 && extra <= kMaxExtra, "--extra-per-class must be in [0, ", kMaxExtra, "], got ", extra);
  MINIMA_CHECK(range > 0 && 2.0 * min_margin < 2.0 * range,
               "--extra-range must be positive and exceed --extra-min-margin");
  MINIMA_CHECK(min_margin > 1.0, "--extra-min-margin must exceed 1 (points strictly beyond the margin), got ",
               min_margin);
  MINIMA_CHECK(stretch > 0, "--stretch must be positive, got ", stretch);
  MINIMA_CHECK(st.lr >= 0 && st.adam_lr >= 0, "--lr and --adam-lr must be >= 0");
  MINIMA_CHECK(st.momentum > 0 && st.momentum < 1, "--momentum must be in (0, 1), got ", st.momentum);
  MINIMA_CHECK(st.beta1 >= 0 && st.beta1 < 1 && st.beta2 >= 0 && st.beta2 < 1 && st.adam_eps > 0,
               "Adam needs 0 <= beta < 1 and eps > 0");
  MINIMA_CHECK(svm_work > 0, "--svm-work must be positive, got ", svm_work);

  apps::Stopwatch clock;
  std::vector<std::pair<std::string, Data>> sets;  // read first: a bad --data file claims no --out
  if (data_path.empty()) {
    sets.emplace_back("soudry", soudry_data(extra, range, min_margin, 1.0, uint64_t(seed)));
    sets.emplace_back("soudry-stretched", soudry_data(extra, range, min_margin, stretch, uint64_t(seed)));
  } else {
    sets.emplace_back("file", csv_data(data_path));
  }
  // The SVM too: data it cannot separate claims no --out either.
  std::vector<SvmResult> svms;
  svms.reserve(sets.size());
  for (const auto& s : sets) svms.push_back(hard_margin_svm(s.second.z(), s.second.N, s.second.d, svm_work));
  cli::RunDir dir(out);
  dir.write_config(a);
  apps::Table metrics({"dataset", "method", "iter", "loss", "norm", "angle_gap", "margin_gap", "w1", "w2"});
  apps::Table points({"dataset", "x1", "x2", "label", "on_margin"});
  Json sm = Json::object();
  sm["iters"] = st.iters;
  Json per = Json::object();
  for (size_t i = 0; i < sets.size(); ++i)
    per[sets[i].first] = run_dataset(sets[i].first, sets[i].second, svms[i], st, metrics, points);
  metrics.write(dir.file("metrics.csv"));
  points.write(dir.file("data.csv"));
  // Headline figures: the SVM solution and the final angle gaps (radians) per data set.
  const Json& first = per.at(sets[0].first);
  sm["svm_w"] = first.at("svm_w");
  for (const auto& s : sets) sm["angle_gap_" + s.first] = per.at(s.first).at("angle_gap");
  sm["datasets"] = per;
  sm["seconds"] = clock.seconds();
  dir.write_summary(sm);
  std::cout << "wrote " << dir.path() << "/{config.json,data.csv,metrics.csv,summary.json} in "
            << cli::fmt(clock.seconds(), 3) << " s\n";
  apps::render_figure("max_margin.py", dir.path(), !no_plot);
  return 0;
}

cli::Register reg("max-margin", "Soudry et al.: GD on separable data converges to the max-margin direction",
                  run_max_margin);

}  // namespace
}  // namespace minima
