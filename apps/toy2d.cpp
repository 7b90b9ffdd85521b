// apps/toy2d.cpp: `minima toy2d`: "bad global minima you can see" (Liu et al. 2020, 2-D toy).
// Two Gaussian classes in the plane; an MLP 2-100-100-1 (ReLU, sigmoid output, binary
// cross-entropy) trained with batch 10 in three ways:
//   (a) random init, vanilla SGD (no momentum, no weight decay, no augmentation);
//   (b) adversarial init: first fit the same training points with random labels (to 100%), then
//       vanilla SGD on the true labels: it reaches 100% training accuracy too, but keeps much of
//       the wiggly random-label boundary and tests worse;
//   (c) the same adversarial init, then SGD with augmentation (2 extra noisy copies of every
//       point), momentum and weight decay, which undoes the damage.
// All three reach 100% training accuracy; the figure shows their decision boundaries, and the
// boundary length (marching squares on a grid of the network's output) measures its complexity.
//
// The network is a handful of float64 tensors with requires_grad, trained with the autograd
// tape; the SGD update (PyTorch's rule: g += wd * p; v = mu * v + g; p -= lr * v) is three
// in-place tensor ops under NoGradGuard. Choices (all flags):
//  * each true-label phase stops at the first epoch with 100% accuracy on its own training set
//    ((c): the augmented set), within --epochs; --fixed-epochs trains exactly --epochs instead;
//  * (a) uses lr 0.01; (b) and (c) start from the adversarial init with --finetune-lr 0.003, the
//    fine-tuning rate of the paper's toy code;
//  * the random-label phase only has to produce a memorizing init, so it uses full-batch Adam
//    (fast and reliable here, where SGD with batch 10 takes thousands of epochs) and runs to 100%
//    and a loss below --pre-loss, so the init is a confident fit of the random labels;
//  * the noisy copies of (c) are drawn once (a fixed augmented set of 3x the points);
//  * besides the 100-point test set, accuracy on 10,000 fresh points ("expected accuracy")
//    reports the same thing without the test set's sampling noise.
#include <cmath>
#include <iostream>
#include <limits>

#include "apps/cli.h"
#include "apps/experiment.h"
#include "core/ops.h"
#include "core/random.h"

namespace minima {
namespace {

// The largest --separation, --std and --aug-std: a thousand times the plane's scale of order 1.
constexpr double kMaxScale = 1000;

struct Points {
  Tensor x;  // f64 [N, 2]
  Tensor y;  // f64 [N, 1], 0 or 1
  int64_t size() const { return x.size(0); }
};

// `per_class` points around (-sep/2, 0) (label 0) and (+sep/2, 0) (label 1), isotropic standard deviation `spread`.
Points two_blobs(int64_t per_class, double sep, double spread, Generator& g) {
  Tensor noise = randn({2 * per_class, 2}, g, DType::f64) * spread;
  std::vector<double> centers, labels;
  for (int64_t i = 0; i < 2 * per_class; ++i) {
    double label = i < per_class ? 0.0 : 1.0;
    centers.push_back(label > 0 ? sep / 2 : -sep / 2);
    centers.push_back(0.0);
    labels.push_back(label);
  }
  Points p;
  p.x = noise + from_vector<double>(centers, {2 * per_class, 2}, DType::f64);
  p.y = from_vector<double>(labels, {2 * per_class, 1}, DType::f64);
  return p;
}

// The MLP 2-h-h-1 with PyTorch's default Linear init: weights and biases U(-1/sqrt(fan_in), +).
struct Mlp {
  std::vector<Tensor> params;  // W1, b1, W2, b2, W3, b3

  Mlp(int64_t hidden, Generator& g) {
    auto layer = [&](int64_t in, int64_t out) {
      double k = 1.0 / std::sqrt(double(in));
      params.push_back(uniform({out, in}, -k, k, g, DType::f64).requires_grad_());
      params.push_back(uniform({out}, -k, k, g, DType::f64).requires_grad_());
    };
    layer(2, hidden);
    layer(hidden, hidden);
    layer(hidden, 1);
  }
  Mlp clone() const {
    Mlp m = *this;
    for (auto& p : m.params) p = p.detach().clone().requires_grad_();
    return m;
  }
  Tensor logits(const Tensor& x) const {
    Tensor h = relu(linear(x, params[0], params[1]));
    h = relu(linear(h, params[2], params[3]));
    return linear(h, params[4], params[5]);
  }
  double accuracy(const Points& p) const {
    NoGradGuard ng;
    Tensor pred = gt(logits(p.x), zeros({}, DType::f64)).to(DType::f64);
    return mean(eq(pred, p.y).to(DType::f64)).item();
  }
  double loss(const Points& p) const {
    NoGradGuard ng;
    return binary_cross_entropy_with_logits(logits(p.x), p.y).item();
  }
};

// SGD (PyTorch's rule, coupled weight decay) or, for the random-label phase, Adam.
struct SgdConfig {
  double lr = 0.01, momentum = 0, weight_decay = 0;
  int64_t batch = 10;
  bool adam = false;
  const char* lr_flag = "--lr";  // the flag that sets lr, for the message when training diverges
};

struct PhaseResult {
  int64_t epochs = 0;
  int64_t first_perfect_epoch = -1;  // first epoch after which training accuracy was 100%
};

// Trains `m` on `train` for `epochs`, or until 100% accuracy on `check` with a loss on `check`
// below stop_loss when stop_at_perfect;
// accuracy on `check` is measured after every epoch and logged (every 10th) as (repeat_seed, run).
PhaseResult train(Mlp& m, const Points& train, const Points& check, const SgdConfig& c, int64_t epochs,
                  bool stop_at_perfect, uint64_t seed, uint64_t repeat_seed, const std::string& run, apps::Table& log,
                  double stop_loss = 1e300) {
  std::vector<Tensor> velocity, second;  // momentum (or Adam's first moment), Adam's second moment
  for (const auto& p : m.params) {
    velocity.push_back(zeros_like(p));
    second.push_back(zeros_like(p));
  }
  int64_t steps = 0;
  int64_t n = train.size();
  PhaseResult r;
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    Generator g(Generator::mix(seed, uint64_t(epoch)));
    Tensor perm = randperm(n, g);
    for (int64_t start = 0; start < n; start += c.batch) {
      Tensor idx = perm.narrow(0, start, std::min(c.batch, n - start));
      Tensor loss =
          binary_cross_entropy_with_logits(m.logits(index_select(train.x, 0, idx)), index_select(train.y, 0, idx));
      for (auto& p : m.params) p.set_grad(Tensor());
      loss.backward();
      NoGradGuard ng;
      ++steps;
      for (size_t i = 0; i < m.params.size(); ++i) {
        Tensor& p = m.params[i];
        Tensor grad = p.grad();
        if (c.adam) {  // beta1 0.9, beta2 0.999, eps 1e-8
          velocity[i].mul_(0.9).add_(grad, 0.1);
          second[i].mul_(0.999).add_(grad * grad, 0.001);
          double bc1 = 1.0 - std::pow(0.9, double(steps)), bc2 = 1.0 - std::pow(0.999, double(steps));
          p.add_(velocity[i] / (sqrt(second[i] * (1.0 / bc2)) + 1e-8), -c.lr / bc1);
          continue;
        }
        if (c.weight_decay > 0) grad = grad + p.detach() * c.weight_decay;
        if (c.momentum > 0) {
          velocity[i].mul_(c.momentum).add_(grad);
          grad = velocity[i];
        }
        p.add_(grad, -c.lr);
      }
    }
    double acc = m.accuracy(check);
    r.epochs = epoch;
    if (acc == 1.0 && r.first_perfect_epoch < 0) r.first_perfect_epoch = epoch;
    double loss = m.loss(check);
    // A step too large overflows the weights: the loss turns inf or nan, and so would every figure.
    MINIMA_CHECK(std::isfinite(loss), "toy2d: ", run == "pretrain" ? "the random-label phase" : "run (" + run + ")",
                 " of seed ", repeat_seed, " diverged at epoch ", epoch, " (loss ", loss, "); try a smaller ",
                 c.lr_flag);
    bool stop = stop_at_perfect && acc == 1.0 && loss < stop_loss;
    if (epoch % 10 == 0 || epoch == 1 || epoch == epochs || stop)
      log.row({std::to_string(repeat_seed), run, std::to_string(epoch), apps::Table::num(loss), apps::Table::num(acc)});
    if (stop) break;
  }
  return r;
}

// The decision boundary {p = 0.5} on a G x G grid over [lo, hi]^2: length by marching squares
// with linear interpolation along cell edges.
double boundary_length(const std::vector<double>& f, int64_t G, double x0, double x1, double y0, double y1) {
  double hx = (x1 - x0) / double(G - 1), hy = (y1 - y0) / double(G - 1);
  auto at = [&](int64_t i, int64_t j) { return f[j * G + i]; };  // i: x index, j: y index
  double total = 0;
  for (int64_t j = 0; j + 1 < G; ++j) {
    for (int64_t i = 0; i + 1 < G; ++i) {
      double v[4] = {at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)};  // counter-clockwise
      double cx[4] = {0, 1, 1, 0}, cy[4] = {0, 0, 1, 1};
      std::vector<std::pair<double, double>> pts;
      for (int e = 0; e < 4; ++e) {
        int a = e, b = (e + 1) % 4;
        if ((v[a] < 0) != (v[b] < 0)) {
          double t = v[a] / (v[a] - v[b]);
          pts.push_back({(cx[a] + t * (cx[b] - cx[a])) * hx, (cy[a] + t * (cy[b] - cy[a])) * hy});
        }
      }
      auto seg = [&](size_t p, size_t q) {
        return std::hypot(pts[p].first - pts[q].first, pts[p].second - pts[q].second);
      };
      if (pts.size() == 2) total += seg(0, 1);
      if (pts.size() == 4) total += std::min(seg(0, 1) + seg(2, 3), seg(1, 2) + seg(3, 0));  // saddle
    }
  }
  return total;
}

struct Variant {
  std::string name;
  double train_acc = 0, test_acc = 0, boundary = 0, train_loss = 0;
  double expected_acc = 0;  // accuracy on a large fresh sample: the test accuracy without its noise
  int64_t first_perfect_epoch = -1;
  std::vector<double> grid;  // p(x) on the figure grid
};

int run_toy2d(cli::Args& a) {
  a.set_description(
      "Liu et al. 2020's 2-D toy: an MLP 2-100-100-1 on two Gaussian blobs, trained (a) from a random init\n"
      "with vanilla SGD, (b) from an adversarial init (fitted to random labels first) with vanilla SGD,\n"
      "(c) from the same adversarial init with augmentation, momentum and weight decay. All reach 100%\n"
      "training accuracy; (b) keeps a complex boundary and tests worst. Figure: apps/plot/toy2d.py.");
  std::string out = a.get_string("out", "runs/toy2d", "output directory");
  int64_t seed = a.get_int("seed", 0, "random seed (data, init, order); repeats use seed, seed+1, ...");
  int64_t repeats = a.get_int("repeats", 3, "number of seeds to run (summary: means; the figure shows the first)");
  int64_t per_class = a.get_int("per-class", 50, "training points per class (and as many test points)");
  double sep = a.get_double("separation", 1.3, "distance between the class means (on the x axis)");
  double spread = a.get_double("std", 0.25, "standard deviation of each class");
  int64_t eval_per_class = a.get_int("eval-per-class", 5000,
                                     "fresh points per class for the expected accuracy (less noisy than the test set)");
  int64_t hidden = a.get_int("hidden", 100, "width of the two hidden layers");
  int64_t batch = a.get_int("batch", 10, "batch size");
  double lr = a.get_double("lr", 0.01, "learning rate of (a)");
  double ft_lr = a.get_double("finetune-lr", 0.003, "learning rate of (b) and (c) (from the adversarial init)");
  int64_t epochs = a.get_int("epochs", 1000, "epoch limit of (a) and of the true-label phases of (b) and (c)");
  bool fixed_epochs =
      a.get_flag("fixed-epochs", "train (a), (b), (c) for exactly --epochs instead of to 100% training accuracy");
  std::string pre_opt = a.get_string("pre-optimizer", "adam", "optimizer on random labels: adam or sgd");
  double pre_lr = a.get_double("pre-lr", 0.01, "learning rate on random labels (adversarial init)");
  double pre_momentum = a.get_double("pre-momentum", 0.9, "momentum on random labels (sgd)");
  int64_t pre_batch = a.get_int("pre-batch", 100, "batch size on random labels");
  double pre_loss = a.get_double("pre-loss", 0.01, "the random-label phase runs to 100% and a loss below this");
  int64_t pre_epochs = a.get_int("pre-epochs", 20000, "at most this many epochs on random labels");
  int64_t copies = a.get_int("aug-copies", 2, "(c): extra noisy copies of each training point");
  double aug_std = a.get_double("aug-std", 0.1, "(c): standard deviation of the copies' noise");
  double momentum = a.get_double("momentum", 0.9, "(c): momentum");
  double wd = a.get_double("weight-decay", 0.1, "(c): weight decay (the official toy code's 0.1)");
  int64_t grid = a.get_int("grid", 200, "grid points per side for the boundary figure and its length");
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  if (a.finish()) return 0;
  MINIMA_CHECK(pre_opt == "adam" || pre_opt == "sgd", "--pre-optimizer must be adam or sgd, got '", pre_opt, "'");
  MINIMA_CHECK(repeats >= 1, "--repeats must be at least 1, got ", repeats);
  MINIMA_CHECK(eval_per_class >= 1, "--eval-per-class must be positive");
  MINIMA_CHECK(per_class >= 1 && hidden >= 1 && batch >= 1 && pre_batch >= 1,
               "--per-class, --hidden, --batch and --pre-batch must be positive");
  // Far beyond a toy in the plane, and small enough that no size computed from them overflows.
  MINIMA_CHECK(per_class <= 1000000 && eval_per_class <= 1000000,
               "--per-class and --eval-per-class must be at most 1000000, got ", per_class, " and ", eval_per_class);
  MINIMA_CHECK(hidden <= 4096, "--hidden must be at most 4096, got ", hidden);
  MINIMA_CHECK(seed <= std::numeric_limits<int64_t>::max() - (repeats - 1), "--seed ", seed, " with --repeats ",
               repeats, " runs seeds past the largest 64-bit integer");
  MINIMA_CHECK(spread > 0 && sep >= 0, "--std must be positive and --separation non-negative");
  // A toy in the plane: the classes lie within a few units of the origin (separation 1.3, std
  // 0.25). Far larger values overflowed the network's first layer to inf, and every figure was nan.
  MINIMA_CHECK(sep <= kMaxScale && spread <= kMaxScale && aug_std <= kMaxScale,
               "--separation, --std and --aug-std must be at most ", kMaxScale, ", got ", sep, ", ", spread, " and ",
               aug_std);
  MINIMA_CHECK(lr > 0 && ft_lr > 0 && pre_lr > 0, "--lr, --finetune-lr and --pre-lr must be positive");
  MINIMA_CHECK(pre_loss > 0, "--pre-loss must be positive (a cross-entropy below it ends the random-label phase), got ",
               pre_loss);
  MINIMA_CHECK(epochs >= 1 && pre_epochs >= 1, "--epochs and --pre-epochs must be positive");
  MINIMA_CHECK(copies >= 0 && aug_std >= 0, "--aug-copies and --aug-std must be non-negative");
  // Each copy adds a training set's worth of points to every epoch of (c).
  MINIMA_CHECK(copies <= 100, "--aug-copies must be at most 100, got ", copies);
  MINIMA_CHECK(momentum >= 0 && momentum < 1 && pre_momentum >= 0 && pre_momentum < 1, "momentum must be in [0, 1)");
  MINIMA_CHECK(wd >= 0, "--weight-decay must be non-negative, got ", wd);
  // The boundary is evaluated at grid^2 points by every network: 1000 already means 10^6 of them.
  MINIMA_CHECK(grid >= 10 && grid <= 1000, "--grid must be in [10, 1000], got ", grid);

  bool until100 = !fixed_epochs;
  apps::prefer_single_thread();
  apps::Stopwatch clock;
  cli::RunDir dir(out);
  dir.write_config(a);
  // The figure window: the class means +- 4 std, square.
  double half = std::max(sep / 2 + 4 * spread, 4 * spread);
  double x0 = -half, x1 = half, y0 = -half, y1 = half;
  Tensor grid_x;
  {
    std::vector<double> g;
    for (int64_t j = 0; j < grid; ++j)
      for (int64_t i = 0; i < grid; ++i) {
        g.push_back(x0 + (x1 - x0) * double(i) / double(grid - 1));
        g.push_back(y0 + (y1 - y0) * double(j) / double(grid - 1));
      }
    grid_x = from_vector<double>(g, {grid * grid, 2}, DType::f64);
  }

  apps::Table log({"seed", "run", "epoch", "loss", "train_acc"});
  apps::Table points({"split", "x1", "x2", "label"});
  Json per_seed = Json::array();
  std::vector<std::string> names = {"a_random_init", "b_adversarial_init", "c_adversarial_init_regularized"};
  std::vector<double> mean_train(3, 0.0), mean_test(3, 0.0), mean_len(3, 0.0), mean_expected(3, 0.0);
  std::vector<Variant> first_variants;
  for (int64_t rep = 0; rep < repeats; ++rep) {
    uint64_t s = uint64_t(seed + rep);
    Generator g(s);
    Points train_set = two_blobs(per_class, sep, spread, g);
    Points test_set = two_blobs(per_class, sep, spread, g);
    Generator g_eval(Generator::mix(s, 99));
    Points eval_set = two_blobs(eval_per_class, sep, spread, g_eval);
    Points random_labels{train_set.x, randint({2 * per_class, 1}, 2, g).to(DType::f64)};
    Points augmented = train_set;
    if (copies > 0) {
      std::vector<Tensor> xs{train_set.x}, ys{train_set.y};
      for (int64_t c = 0; c < copies; ++c) {
        xs.push_back(train_set.x + randn(train_set.x.shape(), g, DType::f64) * aug_std);
        ys.push_back(train_set.y);
      }
      augmented = Points{cat(xs, 0), cat(ys, 0)};
    }
    Mlp init(hidden, g);
    std::vector<Variant> v(3);
    SgdConfig vanilla{lr, 0.0, 0.0, batch, false, "--lr"};
    // (a) random init, vanilla SGD.
    Mlp ma = init.clone();
    PhaseResult ra = train(ma, train_set, train_set, vanilla, epochs, until100, Generator::mix(s, 1), s, "a", log);
    // (b) adversarial init: fit random labels, then vanilla SGD on the true labels.
    Mlp adv = init.clone();
    SgdConfig pre{pre_lr, pre_momentum, 0.0, pre_batch, pre_opt == "adam", "--pre-lr"};
    PhaseResult rp = train(adv, random_labels, random_labels, pre, pre_epochs, true, Generator::mix(s, 2), s,
                           "pretrain", log, pre_loss);
    double pre_acc = adv.accuracy(random_labels);
    Mlp mb = adv.clone();
    SgdConfig vanilla_ft{ft_lr, 0.0, 0.0, batch, false, "--finetune-lr"};
    PhaseResult rb = train(mb, train_set, train_set, vanilla_ft, epochs, until100, Generator::mix(s, 3), s, "b", log);
    // (c) adversarial init, augmentation + momentum + weight decay.
    Mlp mc = adv.clone();
    SgdConfig reg{ft_lr, momentum, wd, batch, false, "--finetune-lr"};
    PhaseResult rc = train(mc, augmented, until100 ? augmented : train_set, reg, epochs, until100, Generator::mix(s, 4),
                           s, "c", log);

    Mlp* models[3] = {&ma, &mb, &mc};
    PhaseResult* results[3] = {&ra, &rb, &rc};
    Json js = Json::object();
    js["seed"] = int64_t(s);
    js["pretrain_random_label_acc"] = pre_acc;
    js["pretrain_epochs"] = rp.epochs;
    for (int k = 0; k < 3; ++k) {
      Variant& var = v[k];
      var.name = names[k];
      var.train_acc = models[k]->accuracy(train_set);
      var.test_acc = models[k]->accuracy(test_set);
      var.expected_acc = models[k]->accuracy(eval_set);
      var.train_loss = models[k]->loss(train_set);
      var.first_perfect_epoch = results[k]->first_perfect_epoch;
      {
        NoGradGuard ng;
        Tensor logit = models[k]->logits(grid_x).reshape({-1});
        var.grid = sigmoid(logit).to_vector<double>();
        std::vector<double> f = logit.to_vector<double>();  // logit 0 <=> p = 0.5
        var.boundary = boundary_length(f, grid, x0, x1, y0, y1);
      }
      Json jv = Json::object();
      jv["train_acc"] = var.train_acc;
      jv["test_acc"] = var.test_acc;
      jv["expected_acc"] = var.expected_acc;
      jv["train_loss"] = var.train_loss;
      jv["boundary_length"] = var.boundary;
      jv["first_100_percent_epoch"] =
          var.first_perfect_epoch >= 0 ? Json(var.first_perfect_epoch) : Json();  // null: never
      js[names[k]] = jv;
      mean_train[k] += var.train_acc / double(repeats);
      mean_test[k] += var.test_acc / double(repeats);
      mean_expected[k] += var.expected_acc / double(repeats);
      mean_len[k] += var.boundary / double(repeats);
    }
    per_seed.push_back(js);
    std::cout << "seed " << s << ": random labels fitted to " << cli::fmt(100 * pre_acc, 4) << "% in " << rp.epochs
              << " epochs\n";
    for (int k = 0; k < 3; ++k)
      std::cout << "  " << names[k] << ": train " << cli::fmt(100 * v[k].train_acc, 4) << "%, test "
                << cli::fmt(100 * v[k].test_acc, 4) << "% (expected " << cli::fmt(100 * v[k].expected_acc, 4)
                << "%), boundary length " << cli::fmt(v[k].boundary, 4)
                << (v[k].first_perfect_epoch >= 0
                        ? " (100% train from epoch " + std::to_string(v[k].first_perfect_epoch) + ")"
                        : " (never 100% train)")
                << "\n";
    if (rep == 0) {
      first_variants = v;
      for (int64_t i = 0; i < train_set.size(); ++i) {
        auto x = train_set.x.select(0, i).to_vector<double>();
        points.row({"train", apps::Table::num(x[0]), apps::Table::num(x[1]),
                    apps::Table::num(train_set.y.select(0, i).item())});
        points.row({"train_random_label", apps::Table::num(x[0]), apps::Table::num(x[1]),
                    apps::Table::num(random_labels.y.select(0, i).item())});
      }
      for (int64_t i = 0; i < test_set.size(); ++i) {
        auto x = test_set.x.select(0, i).to_vector<double>();
        points.row(
            {"test", apps::Table::num(x[0]), apps::Table::num(x[1]), apps::Table::num(test_set.y.select(0, i).item())});
      }
    }
  }
  log.write(dir.file("metrics.csv"));
  points.write(dir.file("points.csv"));
  {  // p(x) of the three runs of the first seed on the grid
    apps::Table gt({"x1", "x2", "p_a", "p_b", "p_c"});
    auto gx = grid_x.to_vector<double>();
    for (int64_t i = 0; i < grid * grid; ++i)
      gt.row({apps::Table::num(gx[2 * i]), apps::Table::num(gx[2 * i + 1]), apps::Table::num(first_variants[0].grid[i]),
              apps::Table::num(first_variants[1].grid[i]), apps::Table::num(first_variants[2].grid[i])});
    gt.write(dir.file("grid.csv"));
  }
  Json sm = Json::object();
  for (int k = 0; k < 3; ++k) {
    Json j = Json::object();
    j["train_acc"] = mean_train[k];
    j["test_acc"] = mean_test[k];
    j["expected_acc"] = mean_expected[k];
    j["boundary_length"] = mean_len[k];
    sm[names[k]] = j;
  }
  sm["repeats"] = repeats;
  sm["per_seed"] = per_seed;
  sm["grid"] = Json(std::vector<double>{x0, x1, y0, y1});
  sm["seconds"] = clock.seconds();
  dir.write_summary(sm);
  std::cout << "mean over " << repeats << " seed(s): test accuracy a " << cli::fmt(100 * mean_test[0], 4) << "%, b "
            << cli::fmt(100 * mean_test[1], 4) << "%, c " << cli::fmt(100 * mean_test[2], 4)
            << "%; expected accuracy a " << cli::fmt(100 * mean_expected[0], 4) << "%, b "
            << cli::fmt(100 * mean_expected[1], 4) << "%, c " << cli::fmt(100 * mean_expected[2], 4) << "%\n";
  std::cout << "wrote " << dir.path() << "/{config.json,metrics.csv,points.csv,grid.csv,summary.json} in "
            << cli::fmt(clock.seconds(), 3) << " s\n";
  apps::render_figure("toy2d.py", dir.path(), !no_plot);
  return 0;
}

cli::Register reg("toy2d", "Liu et al.'s 2-D toy: bad global minima from an adversarial init", run_toy2d);

}  // namespace
}  // namespace minima
