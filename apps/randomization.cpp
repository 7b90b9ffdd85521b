// apps/randomization.cpp: `minima randomization`: the randomization tests of Zhang, Bengio, Hardt,
// Recht and Vinyals (2017), "Understanding deep learning requires rethinking generalization"
// (their Figure 1 and the random-label rows of Table 1).
//
// One network, one optimizer and one initialization (the same seed for every run) are trained on
// the training set under each randomization of data/transforms.h:
//   true-labels, random-labels, shuffled-pixels (one permutation, test set permuted too),
//   random-pixels (a permutation per image), gaussian (i.i.d. values with the data's mean and std),
//   and labels corrupted with probability p for each p of --corruption (p = 0 is true-labels and
//   p = 1 random-labels: those runs are shared).
// Each run trains until it fits its training set (eval-mode accuracy over the whole set reaches
// --fit-accuracy, 100% by default) or until --epochs. Recorded per epoch: the mean training loss of
// the epoch's steps (Figure 1a: loss against steps) and the training set's accuracy; per run: the
// steps it took to fit (Figure 1b: time to fit against p) and the test error on the true test
// labels (Figure 1c: test error against p; random labels carry nothing to generalize, so it
// approaches chance as p -> 1).
//
// Zhang et al. train on CIFAR-10 center-cropped to 28x28 and whitened per image, with SGD,
// momentum 0.9, lr 0.01 (0.1 for Inception) decayed x0.95 per epoch, no weight decay, dropout or
// augmentation. --zhang-preprocessing applies their crop and whitening; the default run is a
// CPU-sized version on a subset of Fashion-MNIST (see --help and the README for the numbers).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/experiment.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "core/random.h"
#include "data/transforms.h"
#include "nn/autocast.h"
#include "nn/models.h"

namespace minima::app {
namespace {

// One run: a randomization and, for corrupt-labels, its probability.
struct Variant {
  std::string kind;
  double p = 0;
  std::string label() const {
    if (kind != "corrupt-labels") return kind;
    std::ostringstream s;
    s << "corrupt-labels p=" << p;
    return s.str();
  }
  // The label-corruption level this run stands for in Figure 1b/1c, or -1 when it is a pixel or
  // image randomization.
  double corruption() const {
    if (kind == "true-labels") return 0;
    if (kind == "random-labels") return 1;
    if (kind == "corrupt-labels") return p;
    return -1;
  }
};

// The variants to run, in order, without repeats: every name of --variants, then corrupt-labels at
// each p of --corruption, where p = 0 and p = 1 are the true-labels and random-labels runs.
std::vector<Variant> plan(const std::vector<std::string>& variants, const std::vector<double>& corruption) {
  std::vector<Variant> out;
  auto add = [&](Variant v) {
    if (v.kind == "corrupt-labels" && v.p == 0) v = {"true-labels", 0};
    if (v.kind == "corrupt-labels" && v.p == 1) v = {"random-labels", 0};
    for (const auto& o : out)
      if (o.kind == v.kind && o.p == v.p) return;
    out.push_back(v);
  };
  for (const auto& k : variants) {
    const auto& names = data::randomization_names();
    MINIMA_CHECK(std::find(names.begin(), names.end(), k) != names.end() && k != "corrupt-labels",
                 "--variants: unknown randomization '", k,
                 "' (expected true-labels, random-labels, shuffled-pixels, random-pixels or gaussian; "
                 "label corruption levels go in --corruption)");
    add({k, 0});
  }
  for (double p : corruption) {
    MINIMA_CHECK(p >= 0 && p <= 1, "--corruption: probabilities must be in [0, 1], got ", p);
    add({"corrupt-labels", p});
  }
  MINIMA_CHECK(!out.empty(), "nothing to run: --variants and --corruption are both empty");
  return out;
}

struct RunResult {
  Variant v;
  int64_t epochs = 0, steps = 0, steps_to_fit = -1;
  double train_acc = 0, train_loss = 0, test_acc = 0, test_loss = 0, seconds = 0;
};

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

int run_randomization(cli::Args& a) {
  a.set_description(
      "Zhang et al. 2017's randomization tests (Figure 1): the same network, optimizer and\n"
      "initialization trained on true labels, random labels, shuffled pixels, random pixels, Gaussian\n"
      "images and partially corrupted labels, each until it fits its training set. Reports training\n"
      "loss against steps, steps to fit and test error against the corruption level, and renders\n"
      "apps/plot/randomization.py.\n"
      "example: minima randomization --out runs/randomization");
  std::string arch = a.get_string("arch", "mlp", "network (minima models lists them)");
  std::string dataset = a.get_string("dataset", "fashion-mnist", "dataset name");
  std::string data_dir = a.get_string("data-dir", "", "dataset directory (default: the dataset's usual place)");
  int64_t subset = a.get_int("subset", 5000, "train on the first N training images (0: all)");
  std::vector<std::string> variants = a.get_string_list(
      "variants", "true-labels,random-labels,shuffled-pixels,random-pixels,gaussian",
      "randomizations: true-labels, random-labels, shuffled-pixels, random-pixels, gaussian");
  std::vector<double> corruption =
      a.get_double_list("corruption", "0,0.2,0.4,0.6,0.8,1", "label corruption probabilities (Figure 1b, 1c)");
  int64_t epochs = a.get_int("epochs", 300, "epoch budget per run (a run stops once it fits)");
  double fit_acc = a.get_double("fit-accuracy", 100.0, "training accuracy (%) that counts as fitted");
  int64_t batch = a.get_int("batch", 128, "mini-batch size");
  double lr = a.get_double("lr", 0.01, "learning rate (Zhang et al.: 0.01 for MLPs and AlexNet)");
  double momentum = a.get_double("momentum", 0.9, "SGD momentum");
  double decay = a.get_double("lr-decay", 0.95, "learning rate factor per --decay-steps steps (1: constant)");
  int64_t decay_steps = a.get_int("decay-steps", 391,
                                  "steps per lr decay: Zhang et al. decay once per CIFAR-10 epoch, 391 steps of 128");
  double wd = a.get_double("weight-decay", 0.0, "L2 weight decay (coupled; Zhang et al.'s tests use none)");
  bool zhang_pre = a.get_flag("zhang-preprocessing",
                              "center crop to 28x28 and per-image whitening, as Zhang et al. did for CIFAR-10");
  int64_t seed = a.get_int("seed", 0,
                            "seed of the initialization (the same for every run), data order and randomizations");
  std::string device_s = a.get_string("device", "cpu", "cpu, cuda, cuda:N or auto");
  cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  nn::AutocastGuard precision(nn::precision_from_flag(a.get_string(
      "precision", "fp32", "fp32, or bf16: bfloat16 activations and weights, float32 master weights and BN statistics")));
  int64_t threads = a.get_int("threads", 0, "CPU threads (0: OpenMP default)");
  std::string out = a.get_string("out", "runs/randomization", "output directory");
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  if (a.finish()) return 0;

  MINIMA_CHECK(epochs >= 1, "--epochs must be at least 1, got ", epochs);
  MINIMA_CHECK(batch >= 1, "--batch must be at least 1, got ", batch);
  MINIMA_CHECK(lr > 0, "--lr must be positive, got ", lr);
  MINIMA_CHECK(momentum >= 0 && momentum < 1, "--momentum must be in [0, 1), got ", momentum);
  MINIMA_CHECK(decay > 0 && decay <= 1, "--lr-decay must be in (0, 1], got ", decay);
  MINIMA_CHECK(decay_steps >= 1, "--decay-steps must be at least 1, got ", decay_steps);
  MINIMA_CHECK(wd >= 0, "--weight-decay must be >= 0, got ", wd);
  MINIMA_CHECK(fit_acc > 0 && fit_acc <= 100, "--fit-accuracy must be in (0, 100], got ", fit_acc);
  MINIMA_CHECK(subset >= 0, "--subset must be >= 0, got ", subset);
  std::vector<Variant> runs = plan(variants, corruption);
  set_threads(threads);
  Device device = device_from_flag(device_s);

  apps::Stopwatch clock;
  data::Splits base = data::load_dataset(dataset, data_dir);
  if (subset > 0) {
    MINIMA_CHECK(subset <= base.train.size(), "--subset ", subset, " is larger than the ", base.train.size(),
                 " training images of ", dataset);
    base.train = data::subset(base.train, subset);
  }
  if (zhang_pre && (base.train.height() > 28 || base.train.width() > 28)) data::center_crop(base, 28);
  const data::Normalize norm = zhang_pre ? data::Normalize::per_image : data::Normalize::dataset;
  Shape in_chw = {base.train.channels(), base.train.height(), base.train.width()};
  const int64_t classes = base.train.num_classes;
  const int64_t eval_batch = 1000;

  cli::RunDir dir(out);
  Json extra = Json::object();
  extra["train_images"] = base.train.size();
  extra["test_images"] = base.test.size();
  extra["device"] = device.str();
  dir.write_config(a, extra);

  {
    Generator g0(static_cast<uint64_t>(seed));
    auto probe = nn::make_model(arch, in_chw, classes, g0);
    std::printf("randomization tests: %s (%lld parameters) on %lld %s training images, %zu run%s, "
                "SGD lr %g x%g per %lld steps, momentum %g, batch %lld, until %g%% training accuracy or %lld epochs (%s)\n",
                arch.c_str(), (long long)probe->num_parameters(), (long long)base.train.size(), dataset.c_str(),
                runs.size(), runs.size() == 1 ? "" : "s", lr, decay, (long long)decay_steps, momentum, (long long)batch, fit_acc, (long long)epochs,
                device.str().c_str());
  }

  apps::Table log({"run", "kind", "p", "epoch", "step", "lr", "train_loss", "train_acc"});
  std::vector<RunResult> results;
  for (size_t r = 0; r < runs.size(); ++r) {
    const Variant& v = runs[r];
    apps::Stopwatch sw;
    data::Splits s = base;
    // The randomizations draw from their own stream ("zhang" in ASCII), so a run's labels or
    // permutation do not depend on which other runs were chosen.
    data::apply_randomization(s, v.kind, v.p, Generator::mix(uint64_t(seed), 0x7a68616e67ULL));
    data::Normalize run_norm = norm;  // of the training images; the test images keep `norm`
    if (norm == data::Normalize::per_image && s.train.images.dtype() != DType::u8) {
      // Gaussian images are float32: whitened here, once (the runs have no augmentation, so
      // whitening each batch would give the same values).
      s.train = data::whiten_per_image(s.train);
      run_norm = data::Normalize::none;
    }
    Generator g(static_cast<uint64_t>(seed));
    auto model = nn::make_model(arch, in_chw, classes, g);
    model->to(device);
    optim::SGD opt(model->parameters(), {lr, momentum, 0.0, wd, false});
    data::Loader loader(s.train, batch, /*shuffle=*/true, uint64_t(seed), data::Augment{}, /*drop_last=*/false,
                        device, run_norm);
    RunResult res;
    res.v = v;
    const int64_t steps_per_epoch = loader.batches_per_epoch();
    std::string tag = "[" + std::to_string(r + 1) + "/" + std::to_string(runs.size()) + "] " + v.label();
    cli::Progress prog(tag, epochs);
    for (int64_t e = 0; e < epochs; ++e) {
      // Decayed by the steps taken, not the epochs: a subset's short epochs would otherwise decay
      // the rate hundreds of times faster than in the paper.
      opt.set_lr(lr * std::pow(decay, double(e * steps_per_epoch) / double(decay_steps)));
      EpochResult tr = train_epoch(*model, opt, loader, e);
      MINIMA_CHECK(std::isfinite(tr.loss), v.label(), ": training diverged at epoch ", e + 1, " (loss ", tr.loss,
                   "); try a smaller --lr");
      EpochResult fit = evaluate(*model, s.train, eval_batch, device, run_norm);
      res.epochs = e + 1;
      res.steps = (e + 1) * steps_per_epoch;
      res.train_acc = fit.acc;
      res.train_loss = fit.loss;
      log.row({std::to_string(r), v.kind, apps::Table::num(v.p), std::to_string(e + 1), std::to_string(res.steps),
               apps::Table::num(opt.lr()), apps::Table::num(tr.loss), apps::Table::num(fit.acc)});
      prog.update(e + 1, "| loss " + cli::fmt(tr.loss, 4) + " | train acc " + cli::fmt(fit.acc, 4) + "%",
                  double(tr.samples) / std::max(tr.seconds, 1e-9));
      if (fit.acc >= fit_acc) {
        res.steps_to_fit = res.steps;
        break;
      }
    }
    EpochResult te = evaluate(*model, s.test, eval_batch, device, norm);
    res.test_acc = te.acc;
    res.test_loss = te.loss;
    res.seconds = sw.seconds();
    results.push_back(res);
    std::printf("%s: %s after %lld epochs (%lld steps), train acc %.2f%%, test acc %.2f%% (%s)\n", v.label().c_str(),
                res.steps_to_fit >= 0 ? "fitted" : "NOT fitted", (long long)res.epochs, (long long)res.steps,
                res.train_acc, res.test_acc, cli::format_duration(res.seconds).c_str());
    log.write(dir.file("metrics.csv"));  // after every run, so a killed experiment keeps the finished ones
  }

  // summary.json and results.md
  Json sj = Json::array();
  std::ostringstream md;
  md << "# Randomization tests (Zhang et al. 2017)\n\n"
     << arch << " on " << base.train.size() << " " << dataset << " training images"
     << (zhang_pre ? " (center crop 28x28, per-image whitening)" : "") << "; SGD lr " << lr << " x" << decay
     << " per " << decay_steps << " steps, momentum " << momentum << ", weight decay " << wd << ", batch " << batch
     << "; seed " << seed
     << ". Each run stops at " << fit_acc << "% training accuracy or " << epochs << " epochs.\n\n"
     << "| randomization | train acc % | test acc % | test error % | epochs | steps to fit |\n"
     << "|---|---|---|---|---|---|\n";
  int64_t base_steps = -1;
  for (const auto& r : results)
    if (r.v.kind == "true-labels") base_steps = r.steps_to_fit;
  for (const auto& r : results) {
    Json j = Json::object();
    j["kind"] = r.v.kind;
    j["p"] = r.v.p;
    j["corruption"] = r.v.corruption();
    j["label"] = r.v.label();
    j["fitted"] = r.steps_to_fit >= 0;
    j["steps_to_fit"] = r.steps_to_fit;
    j["epochs"] = r.epochs;
    j["steps"] = r.steps;
    j["train_acc"] = r.train_acc;
    j["train_loss"] = r.train_loss;
    j["test_acc"] = r.test_acc;
    j["test_loss"] = r.test_loss;
    j["seconds"] = r.seconds;
    if (base_steps > 0 && r.steps_to_fit > 0)
      j["fit_time_vs_true_labels"] = double(r.steps_to_fit) / double(base_steps);
    sj.push_back(j);
    md << "| " << r.v.label() << " | " << pct(r.train_acc) << " | " << pct(r.test_acc) << " | "
       << pct(100 - r.test_acc) << " | " << r.epochs << " | "
       << (r.steps_to_fit >= 0 ? std::to_string(r.steps_to_fit) : "not fitted") << " |\n";
  }
  Json s = Json::object();
  s["arch"] = arch;
  s["dataset"] = dataset;
  s["train_images"] = base.train.size();
  s["classes"] = classes;
  s["steps_per_epoch"] = (base.train.size() + batch - 1) / batch;
  s["runs"] = sj;
  s["seconds"] = clock.seconds();
  dir.write_summary(s);
  write_file_atomic(dir.file("results.md"), md.str());
  std::printf("\n%s\nwrote %s/{config.json,metrics.csv,summary.json,results.md} in %s\n", md.str().c_str(),
              dir.path().c_str(), cli::format_duration(clock.seconds()).c_str());
  apps::render_figure("randomization.py", dir.path(), !no_plot);
  return 0;
}

cli::Register reg("randomization",
                  "Zhang et al. 2017's randomization tests: fitting random labels, pixels and noise (Figure 1)",
                  run_randomization);

}  // namespace
}  // namespace minima::app
