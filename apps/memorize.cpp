// apps/memorize.cpp: `minima memorize`: Zhang et al. 2017, Theorem 1, made concrete, and set
// against what SGD needs. The theorem: a two-layer ReLU network with 2n + d weights represents any
// labelling of n distinct points in d dimensions:
//     f(x) = sum_j w_j relu(a . x - b_j)
// Project the points on a random direction a (distinct projections z_i with probability 1), sort
// them, put one bias between each pair of neighbours (b_1 < z_1 < b_2 < z_2 < ... < b_n < z_n), and
// solve the lower-triangular system relu(z_i - b_j) w = y. Its rows are z_i S_i - T_i with
// S_i = sum_{j<=i} w_j and T_i = sum_{j<=i} w_j b_j, so forward substitution is O(n) after the
// O(n log n) sort. Labels 0..9 are fitted as real numbers and read back by rounding.
//
// The command builds that network for n random labels on Fashion-MNIST training images, checks the
// fit with a tensor forward pass of the network (independent of the recurrence), and then trains
// two-layer ReLU networks (784 -> width -> 10, cross-entropy) of growing width with SGD on the same
// images and random labels, reporting which widths reach 100% training accuracy within the epoch
// budget. The construction needs width n; the figure marks it. Identical images cannot carry
// different random labels, so the subset skips exact duplicates.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <unordered_map>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/experiment.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "core/random.h"
#include "data/dataset.h"

namespace minima {
namespace {

// The first n pairwise-distinct images of `ds` (uint8 [N, 1, 28, 28]) as float64 pixel/255 rows.
struct Subset {
  Tensor x;                    // f64 [n, d]
  std::vector<int64_t> index;  // rows of the dataset used
  int64_t duplicates_skipped = 0;
};

Subset distinct_subset(const data::Dataset& ds, int64_t n) {
  int64_t N = ds.size(), d = ds.sample_numel();
  MINIMA_CHECK(n <= N, "--n ", n, " exceeds the ", N, " images of ", ds.name);
  const uint8_t* px = ds.images.data<uint8_t>();
  std::unordered_map<std::string, int64_t> seen;
  Subset s;
  for (int64_t i = 0; i < N && int64_t(s.index.size()) < n; ++i) {
    std::string key(reinterpret_cast<const char*>(px + i * d), size_t(d));
    if (!seen.emplace(std::move(key), i).second) {
      ++s.duplicates_skipped;
      continue;
    }
    s.index.push_back(i);
  }
  MINIMA_CHECK(int64_t(s.index.size()) == n, "only ", s.index.size(), " distinct images in ", ds.name);
  Tensor idx = from_vector<int64_t>(s.index, {n}, DType::i64);
  s.x = index_select(ds.images.reshape({N, d}), 0, idx).to(DType::f64) * (1.0 / 255.0);
  return s;
}

// The network of Theorem 1: f(x) = sum_j w_j relu(a . x - b_j).
struct Construction {
  Tensor a;            // f64 [d]
  Tensor b, w;         // f64 [n]
  double min_gap = 0;  // smallest distance between neighbouring projections
  double max_abs_w = 0;
};

Construction build(const Tensor& X, const std::vector<double>& y, Generator& g) {
  int64_t n = X.size(0), d = X.size(1);
  Construction c;
  c.a = randn({d}, g, DType::f64);
  std::vector<double> z = matmul(X, c.a).to_vector<double>();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return z[p] < z[q]; });
  c.min_gap = INFINITY;
  for (int64_t k = 1; k < n; ++k) c.min_gap = std::min(c.min_gap, z[order[k]] - z[order[k - 1]]);
  MINIMA_CHECK(n == 1 || c.min_gap > 0, "two points project to the same value; the construction needs distinct points");
  // Biases interleave the sorted projections; the first sits one unit below the smallest.
  std::vector<double> b(static_cast<size_t>(n)), w(static_cast<size_t>(n));
  double S = 0, T = 0;  // running sums of w_j and w_j b_j over the units already placed
  for (int64_t k = 0; k < n; ++k) {
    double zk = z[order[k]];
    double bk = k == 0 ? zk - 1.0 : 0.5 * (z[order[k - 1]] + zk);
    // Row k of the triangular system: zk * (S + w_k) - (T + w_k bk) = y_k.
    double wk = (y[order[k]] - (zk * S - T)) / (zk - bk);
    b[k] = bk;
    w[k] = wk;
    S += wk;
    T += wk * bk;
    c.max_abs_w = std::max(c.max_abs_w, std::fabs(wk));
  }
  c.b = from_vector<double>(b, {n}, DType::f64);
  c.w = from_vector<double>(w, {n}, DType::f64);
  return c;
}

// The network's outputs on the rows of X, through tensor ops, `chunk` rows at a time (the hidden
// layer of a chunk is chunk x n).
std::vector<double> forward(const Construction& c, const Tensor& X, int64_t chunk = 512) {
  std::vector<double> out;
  Tensor z = matmul(X, c.a);  // [rows]
  for (int64_t s = 0; s < X.size(0); s += chunk) {
    int64_t len = std::min(chunk, X.size(0) - s);
    Tensor h = relu(z.narrow(0, s, len).unsqueeze(1) - c.b.unsqueeze(0));  // [len, n]
    auto f = matmul(h, c.w).to_vector<double>();
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

// Fraction of rows whose output, rounded to the nearest class 0..9, equals the target; the largest
// |f(x_i) - y_i| goes to max_err.
double fit_accuracy(const Construction& c, const Tensor& X, const std::vector<double>& target, double& max_err) {
  std::vector<double> f = forward(c, X);
  int64_t correct = 0;
  max_err = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    double pred = std::min(9.0, std::max(0.0, std::round(f[i])));
    correct += pred == target[i] ? 1 : 0;
    max_err = std::max(max_err, std::fabs(f[i] - target[i]));
  }
  return double(correct) / double(f.size());
}

// ---- SGD on two-layer ReLU networks ----
// The widest network trained: wider than the construction's width n can be (Fashion-MNIST has
// 60,000 training images), and its first layer alone is 300 MB of float32.
constexpr int64_t kMaxWidth = 100000;

struct TwoLayer {
  std::vector<Tensor> params;  // W1 [h, d], b1 [h], W2 [10, h], b2 [10]
  TwoLayer(int64_t d, int64_t h, int64_t classes, Generator& g, Device dev) {
    auto layer = [&](int64_t in, int64_t out) {
      double k = 1.0 / std::sqrt(double(in));  // PyTorch's default Linear init
      params.push_back(uniform({out, in}, -k, k, g, TensorOptions(DType::f32, dev)).requires_grad_());
      params.push_back(uniform({out}, -k, k, g, TensorOptions(DType::f32, dev)).requires_grad_());
    };
    layer(d, h);
    layer(h, classes);
  }
  Tensor logits(const Tensor& x) const { return linear(relu(linear(x, params[0], params[1])), params[2], params[3]); }
};

struct SgdRun {
  int64_t width = 0, epochs_run = 0, first_perfect_epoch = -1;
  double train_acc = 0, train_loss = 0, seconds = 0;
  int64_t params = 0;
};

SgdRun train_width(const Tensor& X, const Tensor& labels, int64_t width, int64_t max_epochs, int64_t batch, double lr,
                   double momentum, uint64_t seed, Device dev, apps::Table& log) {
  apps::Stopwatch sw;
  int64_t n = X.size(0), d = X.size(1);
  Generator g(Generator::mix(seed, uint64_t(width), 1));
  TwoLayer net(d, width, 10, g, dev);
  std::vector<Tensor> vel;
  vel.reserve(net.params.size());
  for (const auto& p : net.params) vel.push_back(zeros_like(p));
  SgdRun r;
  r.width = width;
  r.params = width * d + width + 10 * width + 10;
  for (int64_t epoch = 1; epoch <= max_epochs; ++epoch) {
    Generator ge(Generator::mix(seed, uint64_t(width), uint64_t(epoch) + 2));
    Tensor perm = randperm(n, ge).to(dev);
    for (int64_t s = 0; s < n; s += batch) {
      Tensor idx = perm.narrow(0, s, std::min(batch, n - s));
      Tensor loss = cross_entropy(net.logits(index_select(X, 0, idx)), index_select(labels, 0, idx));
      for (auto& p : net.params) p.set_grad(Tensor());
      loss.backward();
      NoGradGuard ng;
      for (size_t i = 0; i < net.params.size(); ++i) {
        vel[i].mul_(momentum).add_(net.params[i].grad());
        net.params[i].add_(vel[i], -lr);
      }
    }
    // Full-set accuracy and loss after the epoch.
    NoGradGuard ng;
    int64_t correct = 0;
    double loss_sum = 0;
    for (int64_t s = 0; s < n; s += 1000) {
      int64_t len = std::min<int64_t>(1000, n - s);
      Tensor lg = net.logits(X.narrow(0, s, len));
      Tensor lb = labels.narrow(0, s, len);
      correct += count_correct(lg, lb);
      loss_sum += cross_entropy(lg, lb).item() * double(len);
    }
    r.train_acc = double(correct) / double(n);
    r.train_loss = loss_sum / double(n);
    // A step too large overflows the weights: the loss turns inf or nan, and so would every figure.
    MINIMA_CHECK(std::isfinite(r.train_loss), "memorize: SGD on width ", width, " diverged at epoch ", epoch,
                 " (training loss ", r.train_loss, "); try a smaller --lr");
    r.epochs_run = epoch;
    log.row(
        {std::to_string(width), std::to_string(epoch), apps::Table::num(r.train_loss), apps::Table::num(r.train_acc)});
    if (correct == n) {
      r.first_perfect_epoch = epoch;
      break;
    }
  }
  r.seconds = sw.seconds();
  return r;
}

int run_memorize(cli::Args& a) {
  a.set_description(
      "Zhang et al. 2017, Theorem 1: a two-layer ReLU network with 2n + d weights, built in O(n log n),\n"
      "fits n random labels of Fashion-MNIST images exactly. Against it: SGD on two-layer ReLU networks\n"
      "(784 -> width -> 10) of growing width, trained on the same random labels; which widths reach 100%\n"
      "training accuracy within the epoch budget. Figure: apps/plot/memorize.py.");
  std::string out = a.get_string("out", "runs/memorize", "output directory");
  int64_t seed = a.get_int("seed", 0, "random seed (labels, direction, SGD)");
  std::string data_dir = a.get_string("data-dir", "", "Fashion-MNIST directory (default: the system's copy)");
  int64_t n = a.get_int("n", 10000, "training images with random labels for the construction (distinct)");
  int64_t sgd_n = a.get_int("sgd-n", 1000, "the first this many of them for the SGD comparison (0: skip SGD)");
  std::vector<int64_t> widths = a.get_int_list("widths", "2,4,8,16,32,64,128",
                                               "hidden widths for SGD (at most " + std::to_string(kMaxWidth) + ")");
  int64_t epochs = a.get_int("epochs", 200, "SGD epoch budget per width (stops at 100% training accuracy)");
  int64_t batch = a.get_int("batch", 32, "SGD batch size");
  double lr = a.get_double("lr", 0.01, "SGD learning rate (Zhang et al.'s for MLPs)");
  double momentum = a.get_double("momentum", 0.9, "SGD momentum");
  std::string device = a.get_string("device", "cpu", "device for the SGD runs: cpu, cuda, cuda:N or auto");
  cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  if (a.finish()) return 0;
  MINIMA_CHECK(n >= 1, "--n must be positive, got ", n);
  MINIMA_CHECK(sgd_n >= 0 && sgd_n <= n, "--sgd-n must be in [0, n], got ", sgd_n);
  MINIMA_CHECK(epochs >= 1 && batch >= 1 && lr > 0 && momentum >= 0 && momentum < 1,
               "--epochs, --batch, --lr must be positive and --momentum in [0, 1)");
  MINIMA_CHECK(sgd_n == 0 || !widths.empty(), "--widths needs at least one width (or --sgd-n 0 to skip SGD)");
  for (int64_t w : widths) MINIMA_CHECK(w >= 1 && w <= kMaxWidth, "--widths must be in [1, ", kMaxWidth, "], got ", w);
  std::sort(widths.begin(), widths.end());
  Device dev = app::device_from_flag(device);
  // Batches of 32 make the CPU products small: a second thread gains little and, on a busy machine,
  // costs several times the run time in waits. OMP_NUM_THREADS overrides this.
  apps::prefer_single_thread();

  apps::Stopwatch clock;
  // The data and --n are checked before --out is claimed: a failure here leaves no run behind.
  data::Splits splits = data::load_dataset("fashion-mnist", data_dir);
  Subset sub = distinct_subset(splits.train, n);
  cli::RunDir dir(out);
  dir.write_config(a);
  int64_t d = sub.x.size(1);
  Generator g(static_cast<uint64_t>(seed));
  Tensor labels = randint({n}, 10, g);
  auto lab = labels.to_vector<int64_t>();
  std::vector<double> y(lab.begin(), lab.end());
  std::cout << "memorize: " << n << " distinct Fashion-MNIST training images (" << sub.duplicates_skipped
            << " duplicates skipped), random labels 0..9\n";

  // ---- the construction ----
  apps::Stopwatch sw;
  Construction c = build(sub.x, y, g);
  double build_seconds = sw.seconds();
  double max_err = 0;
  double fit_acc = fit_accuracy(c, sub.x, y, max_err);
  Json cj = Json::object();
  cj["n"] = n;
  cj["d"] = d;
  cj["weights"] = 2 * n + d;
  cj["width"] = n;
  cj["train_acc"] = fit_acc;
  cj["max_abs_error"] = max_err;
  cj["min_projection_gap"] = c.min_gap;
  cj["max_abs_output_weight"] = c.max_abs_w;
  cj["build_seconds"] = build_seconds;
  {  // on the test images with their true labels: random labels carry nothing to generalize
    int64_t nt = std::min<int64_t>(splits.test.size(), 2000);
    Tensor xt = splits.test.images.narrow(0, 0, nt).reshape({nt, d}).to(DType::f64) * (1.0 / 255.0);
    auto tl = splits.test.labels.narrow(0, 0, nt).to_vector<int64_t>();
    double e = 0;
    cj["test_acc_true_labels"] = fit_accuracy(c, xt, std::vector<double>(tl.begin(), tl.end()), e);
  }
  std::cout << "construction: width " << n << " (" << 2 * n + d << " weights), built in " << cli::fmt(build_seconds, 3)
            << " s; training accuracy " << cli::fmt(100 * fit_acc, 6) << "%, max |f(x_i) - y_i| "
            << cli::fmt(max_err, 3) << " (smallest projection gap " << cli::fmt(c.min_gap, 3) << ")\n";

  // ---- SGD on growing widths, same images (the first sgd_n) and labels ----
  Json sm = Json::object();
  Json sj = Json::array();
  apps::Table log({"width", "epoch", "loss", "train_acc"});
  int64_t min_width = -1;
  if (sgd_n > 0) {
    // Standardized with the training set's pixel mean and std, as for any network input.
    double mu = splits.train.mean.at(0), sd = splits.train.std.at(0);
    Tensor xs = ((sub.x.narrow(0, 0, sgd_n) - mu) * (1.0 / sd)).to(DType::f32).to(dev);
    Tensor ls = labels.narrow(0, 0, sgd_n).to(dev);
    // The construction on exactly these sgd_n points and labels, for the figure's marker.
    {
      std::vector<double> ys(y.begin(), y.begin() + sgd_n);
      Construction cs = build(sub.x.narrow(0, 0, sgd_n), ys, g);
      double err = 0;
      Json j = Json::object();
      j["n"] = sgd_n;
      j["width"] = sgd_n;
      j["weights"] = 2 * sgd_n + d;
      j["train_acc"] = fit_accuracy(cs, sub.x.narrow(0, 0, sgd_n), ys, err);
      j["max_abs_error"] = err;
      sm["construction_on_sgd_subset"] = j;
    }
    std::cout << "SGD on " << sgd_n << " of them (two-layer ReLU, batch " << batch << ", lr " << lr << ", momentum "
              << momentum << ", at most " << epochs << " epochs, " << dev << "):\n";
    for (int64_t w : widths) {
      SgdRun r = train_width(xs, ls, w, epochs, batch, lr, momentum, uint64_t(seed), dev, log);
      Json j = Json::object();
      j["width"] = w;
      j["params"] = r.params;
      j["train_acc"] = r.train_acc;
      j["train_loss"] = r.train_loss;
      j["epochs"] = r.epochs_run;
      j["first_100_percent_epoch"] = r.first_perfect_epoch >= 0 ? Json(r.first_perfect_epoch) : Json();  // null: never
      j["seconds"] = r.seconds;
      sj.push_back(j);
      if (r.first_perfect_epoch > 0 && min_width < 0) min_width = w;
      std::cout << "  width " << w << " (" << r.params << " weights): training accuracy "
                << cli::fmt(100 * r.train_acc, 4) << "% after " << r.epochs_run << " epochs (" << cli::fmt(r.seconds, 3)
                << " s)\n";
    }
  }
  log.write(dir.file("metrics.csv"));

  sm["construction"] = cj;
  sm["sgd_n"] = sgd_n;
  sm["sgd_epochs"] = epochs;
  sm["sgd"] = sj;
  sm["sgd_min_width_100_percent"] = min_width;
  sm["duplicates_skipped"] = sub.duplicates_skipped;
  sm["seconds"] = clock.seconds();
  dir.write_summary(sm);
  std::cout << "wrote " << dir.path() << "/{config.json,metrics.csv,summary.json} in " << cli::fmt(clock.seconds(), 3)
            << " s\n";
  apps::render_figure("memorize.py", dir.path(), !no_plot);
  return 0;
}

cli::Register reg("memorize", "Zhang et al.'s Theorem 1: a 2n+d-weight ReLU net fits any n labels; SGD's width needed",
                  run_memorize);

}  // namespace
}  // namespace minima
