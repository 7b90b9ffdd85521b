// apps/randomization.cpp: `minima randomization`: the randomization tests of Zhang, Bengio, Hardt,
// Recht and Vinyals (2017), "Understanding deep learning requires rethinking generalization"
// (their Figure 1, and with --regularizers their Table 1).
//
// One network, one optimizer and one initialization (per seed of --seeds, shared by all variants)
// are trained on the training set under each randomization of data/transforms.h:
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
// --regularizers adds Table 1's explicit regularizers as a second axis: every variant is run once
// per item of none, crop, wd and crop+wd. crop is random-crop augmentation: with
// --zhang-preprocessing, Zhang et al.'s random 28x28 windows of the 32x32 images (the fit check and
// the test take the center window, as without crop); otherwise torchvision's RandomCrop(H,
// padding=4). wd trains with --weight-decay, which then applies to those runs only. Table 1's
// message is that neither is needed to fit, or to generalize: both only move the test accuracy a
// little, and neither stops the network from fitting random labels.
//
// Zhang et al. train on CIFAR-10 center-cropped to 28x28 and whitened per image, with SGD,
// momentum 0.9, lr 0.01 (0.1 for Inception) decayed x0.95 per epoch, no weight decay, dropout or
// augmentation. --zhang-preprocessing applies their crop and whitening; the default run is a
// CPU-sized version on a subset of Fashion-MNIST (see --help and the README for the numbers).
//
// Outputs in --out: metrics.csv (one row per epoch of every run), summary.json (every run, and per
// variant the mean and std over --seeds), results.md, the figure, and runs/ with one file per
// finished run, which --resume loads instead of training the run again. A run in progress also
// saves a checkpoint there on the clock (--checkpoint-every), from which --resume continues it to
// the same result.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/experiment.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "core/random.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "nn/autocast.h"
#include "nn/checkpoint.h"
#include "nn/models.h"

namespace minima::app {
namespace {

// The explicit regularizers of --regularizers (Table 1).
const std::vector<std::string>& regularizer_names() {
  static const std::vector<std::string> v = {"none", "crop", "wd", "crop+wd"};
  return v;
}

// One run: a randomization and, for corrupt-labels, its probability; and its explicit regularizer.
struct Variant {
  std::string kind;
  double p = 0;
  std::string reg = "none";  // one of regularizer_names()
  bool crop() const { return reg == "crop" || reg == "crop+wd"; }
  bool wd() const { return reg == "wd" || reg == "crop+wd"; }
  // "true-labels", "corrupt-labels p=0.2", "random-labels with crop+wd".
  std::string label() const {
    std::ostringstream s;
    s << kind;
    if (kind == "corrupt-labels") s << " p=" << p;
    if (reg != "none") s << " with " << reg;
    return s.str();
  }
  bool same(const Variant& o) const { return kind == o.kind && p == o.p && reg == o.reg; }
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
// each p of --corruption, where p = 0 and p = 1 are the true-labels and random-labels runs; each
// of them once per regularizer of `regs`.
std::vector<Variant> plan(const std::vector<std::string>& variants, const std::vector<double>& corruption,
                          const std::vector<std::string>& regs) {
  for (const auto& r : regs)
    MINIMA_CHECK(std::find(regularizer_names().begin(), regularizer_names().end(), r) != regularizer_names().end(),
                 "--regularizers: unknown regularizer '", r, "' (expected none, crop, wd or crop+wd)");
  MINIMA_CHECK(!regs.empty(), "--regularizers: give at least one (none: no explicit regularization)");
  std::vector<Variant> out;
  auto add = [&](Variant v) {
    if (v.kind == "corrupt-labels" && v.p == 0) v = {"true-labels", 0};
    if (v.kind == "corrupt-labels" && v.p == 1) v = {"random-labels", 0};
    for (const auto& r : regs) {
      Variant w = v;
      w.reg = r;
      if (std::none_of(out.begin(), out.end(), [&](const Variant& o) { return o.same(w); })) out.push_back(w);
    }
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
  int64_t seed = 0, epochs = 0, steps = 0, steps_to_fit = -1;
  double train_acc = 0, train_loss = 0, test_acc = 0, test_loss = 0, seconds = 0;
};

// Everything the runs share.
struct Settings {
  std::string arch, dataset;
  data::LoadOptions load;   // how the dataset was loaded (the weights record it)
  data::Splits base;        // after --subset and the optional crop
  data::Splits full;        // after --subset, before the crop: what Zhang et al.'s random crops cut from
  bool zhang_crop = false;  // crop runs take random 28x28 windows of `full` (else pad-4 crops of `base`)
  data::Normalize norm = data::Normalize::dataset;
  Shape in_chw;
  int64_t classes = 0, batch = 128, epochs = 300, decay_steps = 391;
  double lr = 0.01, momentum = 0.9, wd = 0, decay = 0.95, fit_acc = 100;
  bool wd_runs = false;  // --regularizers names wd runs: c.wd is theirs, and the others train without
  Device device;
  Json settings;                 // what the runs are trained with (the run files and checkpoints record it)
  bool resume = false;           // continue a run from its checkpoint
  double checkpoint_every = 60;  // seconds between a run's checkpoints (0: after every epoch)
  int64_t halt_after = 0;        // testing aid: stop after this many epochs in total
  mutable int64_t epochs_run = 0;
};

// A run's weight decay: --weight-decay for every run, or with wd runs in --regularizers for those.
double run_wd(const Settings& c, const Variant& v) { return !c.wd_runs || v.wd() ? c.wd : 0.0; }

// The settings a run is trained with, as its run file and checkpoint record them: the shared ones
// with that run's weight decay.
Json run_settings(const Settings& c, const Variant& v) {
  Json j = c.settings;
  j["weight_decay"] = run_wd(c, v);
  return j;
}

Json rows_json(const std::vector<std::vector<std::string>>& rows) {
  Json out = Json::array();
  for (const auto& r : rows) {
    Json row = Json::array();
    for (const auto& cell : r) row.push_back(cell);
    out.push_back(row);
  }
  return out;
}

// One variant from seed's initialization, until it fits or runs out of epochs; one metrics row per
// epoch goes to `rows`, under run number `index`, and `ckpt` is the run's checkpoint.
RunResult train_variant(const Settings& c, const Variant& v, int64_t seed, size_t index, size_t total,
                        const std::string& ckpt_path, std::vector<std::vector<std::string>>& rows) {
  const int64_t eval_batch = 1000;
  apps::Stopwatch sw;
  // Zhang et al.'s random crops cut 28x28 windows from the whole images: the run randomizes those,
  // then trains on them and checks the fit, and tests, on their center windows.
  const bool window = v.crop() && c.zhang_crop;
  data::Splits s = window ? c.full : c.base;
  // The randomizations draw from their own stream ("zhang" in ASCII), so a run's labels or
  // permutation do not depend on which other runs were chosen.
  data::apply_randomization(s, v.kind, v.p, Generator::mix(uint64_t(seed), 0x7a68616e67ULL));
  const data::Dataset whole = s.train;  // what the crops cut from
  if (window) {
    s.train = data::center_crop(s.train, c.in_chw[1]);
    s.test = data::center_crop(s.test, c.in_chw[1]);
  }
  data::Augment aug;
  aug.crop = v.crop();
  aug.pad = window ? 0 : 4;
  aug.size = window ? c.in_chw[1] : 0;
  const double wd = run_wd(c, v);
  const std::string settings_text = run_settings(c, v).dump();
  data::Normalize train_norm = c.norm;  // the test images keep c.norm
  if (c.norm == data::Normalize::per_image && s.train.images.dtype() != DType::u8) {
    // Gaussian images are float32: whitened here, once (without random crops, whitening each
    // batch would give the same values; the crop runs of Gaussian images are refused up front).
    s.train = data::whiten_per_image(s.train);
    train_norm = data::Normalize::none;
  }
  Generator g(static_cast<uint64_t>(seed));
  auto model = nn::make_model(c.arch, c.in_chw, c.classes, g);
  model->to(c.device);
  optim::SGD opt(model->parameters(), {c.lr, c.momentum, 0.0, wd, false});
  data::Loader loader(window ? whole : s.train, c.batch, /*shuffle=*/true, uint64_t(seed), aug, /*drop_last=*/false,
                      c.device, train_norm);
  data::Loader fit_loader(s.train, eval_batch, /*shuffle=*/false, 0, data::Augment{}, /*drop_last=*/false, c.device,
                          train_norm);  // the fit check after every epoch, in eval mode
  RunResult res;
  res.v = v;
  res.seed = seed;
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  // Killed part-way earlier: the checkpoint brings back the weights, the optimizer, the epochs
  // done, their metrics rows and the last fit check.
  nn::TrainState st;
  RunCheckpoint ckpt(ckpt_path, c.checkpoint_every);
  if (c.resume && ckpt.resume(*model, opt, st, c.epochs - 1, c.epochs, "--epochs")) {  // the last epoch saves none
    try {
      MINIMA_CHECK(st.extra.at("settings").as_string() == settings_text, "it was saved with other settings (",
                   st.extra.at("settings").as_string(), ", now ", settings_text, ")");
      for (const auto& row : st.extra.at("rows").elements()) {
        std::vector<std::string> r;
        for (const auto& cell : row.elements()) r.push_back(cell.as_string());
        MINIMA_CHECK(r.size() == 9, "a metrics row must have 9 cells, got ", row.dump());
        r[0] = std::to_string(index);
        rows.push_back(r);
      }
      MINIMA_CHECK(int64_t(rows.size()) == st.epoch, "it holds ", rows.size(), " metrics rows for ", st.epoch,
                   " epochs");
      res.train_acc = st.extra.at("train_acc").as_double();
      res.train_loss = st.extra.at("train_loss").as_double();
    } catch (const Error& e) {
      throw Error(
          str("--resume: ", ckpt_path, " cannot continue this run (", e.what(), "); remove it to train the run again"));
    }
    res.epochs = st.epoch;
    res.steps = st.epoch * steps_per_epoch;
    std::printf("%s, seed %lld: resuming after epoch %lld\n", v.label().c_str(), (long long)seed, (long long)st.epoch);
  }
  nn::ModelInfo info{c.arch, c.in_chw, c.classes, c.dataset, s.train.mean, s.train.std, uint64_t(seed)};
  info.coarse_labels = c.load.coarse_labels;
  info.merge_valid = c.load.merge_valid;
  cli::Progress prog("[" + std::to_string(index + 1) + "/" + std::to_string(total) + "] " + v.label() + " seed " +
                         std::to_string(seed),
                     c.epochs);
  for (int64_t e = st.epoch; e < c.epochs; ++e) {
    // Decayed by the steps taken, not the epochs: a subset's short epochs would otherwise decay
    // the rate hundreds of times faster than in the paper.
    opt.set_lr(c.lr * std::pow(c.decay, double(e * steps_per_epoch) / double(c.decay_steps)));
    EpochResult tr = train_epoch(*model, opt, loader, e);
    EpochResult fit = evaluate(*model, fit_loader);
    // The training loss is summed before each update, the fit's loss after the epoch's last.
    MINIMA_CHECK(std::isfinite(tr.loss) && std::isfinite(fit.loss), v.label(), ": training diverged at epoch ", e + 1,
                 " (training loss ", tr.loss, ", loss on the training set ", fit.loss, "); ",
                 divergence_hint(opt.lr(), c.momentum, wd, false));
    res.epochs = e + 1;
    res.steps = (e + 1) * steps_per_epoch;
    res.train_acc = fit.acc;
    res.train_loss = fit.loss;
    rows.push_back({std::to_string(index), std::to_string(seed), v.kind, apps::Table::num(v.p), std::to_string(e + 1),
                    std::to_string(res.steps), apps::Table::num(opt.lr()), apps::Table::num(tr.loss),
                    apps::Table::num(fit.acc)});
    prog.update(e + 1, "| loss " + cli::fmt(tr.loss, 4) + " | train acc " + cli::fmt(fit.acc, 4) + "%",
                double(tr.samples) / std::max(tr.seconds, 1e-9));
    const bool fitted = fit.acc >= c.fit_acc;
    if (fitted) res.steps_to_fit = res.steps;
    st.epoch = e + 1;
    if (!fitted && e + 1 < c.epochs && ckpt.due()) {
      st.extra = Json::object();
      st.extra["settings"] = settings_text;
      st.extra["rows"] = rows_json(rows);
      st.extra["train_acc"] = res.train_acc;
      st.extra["train_loss"] = res.train_loss;
      ckpt.save(*model, opt, st, info);
    }
    if (c.halt_after > 0 && ++c.epochs_run == c.halt_after)
      throw Error(str("stopped after ", c.halt_after, " epochs as --halt-after asked; rerun with --resume"));
    if (fitted) break;
  }
  EpochResult te = evaluate(*model, s.test, eval_batch, c.device, c.norm);
  res.test_acc = te.acc;
  res.test_loss = te.loss;
  res.seconds = sw.seconds();
  std::printf("%s, seed %lld: %s after %lld epochs (%lld steps), train acc %.2f%%, test acc %.2f%% (%s)\n",
              v.label().c_str(), (long long)seed, res.steps_to_fit >= 0 ? "fitted" : "NOT fitted",
              (long long)res.epochs, (long long)res.steps, res.train_acc, res.test_acc,
              cli::format_duration(res.seconds).c_str());
  return res;
}

// ---- finished runs on disk, for --resume ----
// Each finished run is written to runs/seed<S>_<label>.json (atomically): its result, its
// metrics rows and the settings it ran under. --resume loads those files instead of training
// again, after checking that the settings are the same.
std::string run_file(const std::string& out, const Variant& v, int64_t seed) {
  std::string name = "seed" + std::to_string(seed) + "_" + v.label();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.') ch = '_';
  return out + "/runs/" + name + ".json";
}

Json result_json(const RunResult& r) {
  Json j = Json::object();
  j["seed"] = r.seed;
  j["kind"] = r.v.kind;
  j["p"] = r.v.p;
  j["corruption"] = r.v.corruption();
  j["label"] = r.v.label();
  j["regularizer"] = r.v.reg;
  j["fitted"] = r.steps_to_fit >= 0;
  j["steps_to_fit"] = r.steps_to_fit;
  j["epochs"] = r.epochs;
  j["steps"] = r.steps;
  j["train_acc"] = r.train_acc;
  j["train_loss"] = r.train_loss;
  j["test_acc"] = r.test_acc;
  j["test_loss"] = r.test_loss;
  j["seconds"] = r.seconds;
  return j;
}

RunResult result_from_json(const Json& j, const Variant& v) {
  RunResult r;
  r.v = v;
  r.seed = j.at("seed").as_int();
  r.steps_to_fit = j.at("steps_to_fit").as_int();
  r.epochs = j.at("epochs").as_int();
  r.steps = j.at("steps").as_int();
  r.train_acc = j.at("train_acc").as_double();
  r.train_loss = j.at("train_loss").as_double();
  r.test_acc = j.at("test_acc").as_double();
  r.test_loss = j.at("test_loss").as_double();
  r.seconds = j.at("seconds").as_double();
  return r;
}

// Mean and sample standard deviation (0 for fewer than two values).
struct Stat {
  double mean = 0, std = 0;
  size_t n = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  s.n = v.size();
  if (v.empty()) return s;
  for (double x : v) s.mean += x / double(v.size());
  if (v.size() > 1) {
    for (double x : v) s.std += (x - s.mean) * (x - s.mean) / double(v.size() - 1);
    s.std = std::sqrt(s.std);
  }
  return s;
}

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}
std::string mean_std(const Stat& s, int decimals) {
  char b[64];
  if (s.n > 1)
    std::snprintf(b, sizeof b, "%.*f ± %.*f", decimals, s.mean, decimals, s.std);
  else
    std::snprintf(b, sizeof b, "%.*f", decimals, s.mean);
  return b;
}

int run_randomization(cli::Args& a) {
  a.set_description(
      "Zhang et al. 2017's randomization tests (Figure 1): the same network, optimizer and\n"
      "initialization trained on true labels, random labels, shuffled pixels, random pixels, Gaussian\n"
      "images and partially corrupted labels, each until it fits its training set. Reports training\n"
      "loss against steps, steps to fit and test error against the corruption level (mean +- std over\n"
      "--seeds), and renders apps/plot/randomization.py. --regularizers adds Table 1: each run\n"
      "again with random crops, weight decay or both.\n"
      "example: minima randomization --out runs/randomization\n"
      "         minima randomization --variants true-labels,random-labels --corruption '' "
      "--regularizers none,crop,wd,crop+wd --weight-decay 5e-4 --out runs/table1");
  Settings c;
  c.arch = a.get_string("arch", "mlp", "network (minima models lists them)");
  std::string dataset = a.get_string("dataset", "fashion-mnist", "dataset name");
  std::string data_dir = a.get_string("data-dir", "", "dataset directory (default: the dataset's usual place)");
  int64_t subset = a.get_int("subset", 5000, "train on the first N training images (0: all)");
  std::vector<std::string> variants =
      a.get_string_list("variants", "true-labels,random-labels,shuffled-pixels,random-pixels,gaussian",
                        "randomizations: true-labels, random-labels, shuffled-pixels, random-pixels, gaussian");
  std::vector<double> corruption =
      a.get_double_list("corruption", "0,0.2,0.4,0.6,0.8,1", "label corruption probabilities (Figure 1b, 1c)");
  c.epochs = a.get_int("epochs", 300, "epoch budget per run (a run stops once it fits)");
  c.fit_acc = a.get_double("fit-accuracy", 100.0, "training accuracy (%) that counts as fitted");
  c.batch = a.get_int("batch", 128, "mini-batch size");
  c.lr = a.get_double("lr", 0.01, "learning rate (Zhang et al.: 0.01 for MLPs and AlexNet)");
  c.momentum = a.get_double("momentum", 0.9, "SGD momentum");
  c.decay = a.get_double("lr-decay", 0.95, "learning rate factor per --decay-steps steps (1: constant)");
  c.decay_steps =
      a.get_int("decay-steps", 391, "steps per lr decay: Zhang et al. decay once per CIFAR-10 epoch, 391 steps of 128");
  c.wd = a.get_double("weight-decay", 0.0,
                      "L2 weight decay (coupled) of every run, or with wd in --regularizers of those runs only "
                      "(Zhang et al.'s randomization tests use none)");
  std::vector<std::string> regs =
      a.get_string_list("regularizers", "none",
                        "explicit regularizers (Table 1), each run once per item: none, crop (random crops: "
                        "28x28 windows with --zhang-preprocessing, else padding 4), wd (--weight-decay), crop+wd");
  bool zhang_pre = a.get_flag("zhang-preprocessing",
                              "center crop to 28x28 and per-image whitening, as Zhang et al. did for CIFAR-10");
  std::vector<int64_t> seeds =
      a.get_int_list("seeds", "0",
                     "seeds; each gives one initialization (shared by its variants), data order and randomization");
  std::string device_s = a.get_string("device", "cpu", "cpu, cuda, cuda:N or auto");
  cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  std::string precision_s =
      a.get_string("precision", "fp32",
                   "fp32, or bf16: bfloat16 activations and weights, float32 master weights and BN statistics");
  nn::AutocastGuard precision(nn::precision_from_flag(precision_s));
  int64_t threads =
      a.get_int("threads", 0,
                "CPU threads for compute and for decoding image folders (0: OpenMP default; all cores to decode)");
  c.load = load_flags(a, threads);
  std::string out = a.get_string("out", "runs/randomization", "output directory");
  bool no_plot = a.get_flag("no-plot", "do not render the figure");
  bool resume =
      a.get_flag("resume", "continue an interrupted experiment in --out (finished runs are loaded, not rerun)");
  c.checkpoint_every = checkpoint_every_flag(a);
  int64_t halt_after = a.get_int("halt-after-runs", 0, "stop after training N runs, as if killed (to try --resume)");
  c.halt_after =
      a.get_int("halt-after", 0, "stop after N epochs of training in total, as if killed mid-run (to try --resume)");
  if (a.finish()) return 0;
  c.resume = resume;
  c.dataset = dataset;

  MINIMA_CHECK(halt_after >= 0, "--halt-after-runs must be >= 0, got ", halt_after);
  MINIMA_CHECK(c.halt_after >= 0, "--halt-after must be >= 0, got ", c.halt_after);
  MINIMA_CHECK(c.epochs >= 1, "--epochs must be at least 1, got ", c.epochs);
  MINIMA_CHECK(c.batch >= 1, "--batch must be at least 1, got ", c.batch);
  MINIMA_CHECK(c.lr > 0, "--lr must be positive, got ", c.lr);
  MINIMA_CHECK(c.momentum >= 0 && c.momentum < 1, "--momentum must be in [0, 1), got ", c.momentum);
  MINIMA_CHECK(c.decay > 0 && c.decay <= 1, "--lr-decay must be in (0, 1], got ", c.decay);
  MINIMA_CHECK(c.decay_steps >= 1, "--decay-steps must be at least 1, got ", c.decay_steps);
  MINIMA_CHECK(c.wd >= 0, "--weight-decay must be >= 0, got ", c.wd);
  MINIMA_CHECK(c.fit_acc > 0 && c.fit_acc <= 100, "--fit-accuracy must be in (0, 100], got ", c.fit_acc);
  MINIMA_CHECK(subset >= 0, "--subset must be >= 0, got ", subset);
  MINIMA_CHECK(!seeds.empty(), "--seeds: give at least one seed");
  std::vector<Variant> runs = plan(variants, corruption, regs);
  c.wd_runs = std::any_of(runs.begin(), runs.end(), [](const Variant& v) { return v.wd(); });
  MINIMA_CHECK(!c.wd_runs || c.wd > 0,
               "--regularizers wd and crop+wd train with --weight-decay, which is 0: give it a value (e.g. "
               "--weight-decay 5e-4)");
  MINIMA_CHECK(c.wd_runs || c.wd == 0 || regs == std::vector<std::string>{"none"}, "--weight-decay ", c.wd,
               " would also train the runs of --regularizers none and crop with weight decay: add wd or crop+wd "
               "to --regularizers, whose runs alone then have it");
  const bool crop_runs = std::any_of(runs.begin(), runs.end(), [](const Variant& v) { return v.crop(); });
  // Per-image whitening of float images (Gaussian ones) happens once, before batching, so it
  // cannot follow a random crop (its padding, or its window).
  MINIMA_CHECK(!zhang_pre || std::none_of(runs.begin(), runs.end(),
                                          [](const Variant& v) { return v.crop() && v.kind == "gaussian"; }),
               "--regularizers crop with --zhang-preprocessing cannot run the gaussian variant: its float images "
               "are whitened once, not per random crop; leave gaussian out of --variants");
  check_load_flags(a, dataset);
  set_threads(threads);
  c.device = device_from_flag(device_s);

  apps::Stopwatch clock;
  c.base = data::load_dataset(dataset, data_dir, c.load);
  if (subset > 0) {
    MINIMA_CHECK(subset <= c.base.train.size(), "--subset ", subset, " is larger than the ", c.base.train.size(),
                 " training images of ", dataset);
    c.base.train = data::subset(c.base.train, subset);
  }
  if (zhang_pre && (c.base.train.height() > 28 || c.base.train.width() > 28)) {
    if (crop_runs) c.full = c.base;
    c.zhang_crop = crop_runs;
    data::center_crop(c.base, 28);
  }
  c.norm = zhang_pre ? data::Normalize::per_image : data::Normalize::dataset;
  c.in_chw = {c.base.train.channels(), c.base.train.height(), c.base.train.width()};
  c.classes = c.base.train.num_classes;

  {
    Generator g0(static_cast<uint64_t>(seeds[0]));
    int64_t params = nn::make_model(c.arch, c.in_chw, c.classes, g0)->num_parameters();
    std::printf(
        "randomization tests: %s (%lld parameters) on %lld %s training images, %zu variant%s x %zu seed%s, "
        "SGD lr %g x%g per %lld steps, momentum %g, batch %lld, until %g%% training accuracy or %lld "
        "epochs (%s)\n",
        c.arch.c_str(), (long long)params, (long long)c.base.train.size(), dataset.c_str(), runs.size(),
        runs.size() == 1 ? "" : "s", seeds.size(), seeds.size() == 1 ? "" : "s", c.lr, c.decay,
        (long long)c.decay_steps, c.momentum, (long long)c.batch, c.fit_acc, (long long)c.epochs,
        c.device.str().c_str());
  }

  check_one_sample_batches(c.arch, c.in_chw, c.classes, c.base.train.size(), c.batch, "--subset or --batch");

  cli::RunDir dir(out, /*resumable=*/true);
  if (!resume && cli::file_exists(dir.file("config.json")))
    throw Error(str(out, " already holds an experiment; pass --resume to continue it or choose another --out"));
  // The lists select runs (each in its own file), so a resume may add seeds, variants or
  // regularizers; each run file records the weight decay its run had, so that one may change too.
  if (resume) {
    std::vector<std::string> may_change({"out", "resume", "threads", "no-plot", "halt-after-runs", "halt-after",
                                         "checkpoint-every", "data-dir", "cache-dir", "device", "gemm", "conv", "bn",
                                         "tf32", "deterministic"});
    may_change.insert(may_change.end(), {"seeds", "variants", "corruption", "regularizers", "weight-decay"});
    dir.check_resume_flags(a, may_change);
  }
  // What a finished run must have been trained with for --resume to reuse it.
  Json settings = Json::object();
  settings["arch"] = c.arch;
  settings["dataset"] = dataset;
  settings["train_images"] = c.base.train.size();
  settings["zhang_preprocessing"] = zhang_pre;
  settings["lr"] = c.lr;
  settings["momentum"] = c.momentum;
  settings["weight_decay"] = c.wd;
  settings["lr_decay"] = c.decay;
  settings["decay_steps"] = c.decay_steps;
  settings["batch"] = c.batch;
  settings["epochs"] = c.epochs;
  settings["fit_accuracy"] = c.fit_acc;
  settings["precision"] = precision_s;
  c.settings = settings;
  cli::RunDir runs_dir(out + "/runs");  // the finished runs, one file each
  Json extra = Json::object();
  extra["train_images"] = c.base.train.size();
  extra["test_images"] = c.base.test.size();
  extra["device"] = c.device.str();
  dir.write_config(a, extra);

  apps::Table log({"run", "seed", "kind", "p", "epoch", "step", "lr", "train_loss", "train_acc"});
  std::vector<RunResult> results;  // seed by seed, each with every variant in plan order
  const size_t total = runs.size() * seeds.size();
  int64_t trained = 0, loaded = 0;
  for (int64_t seed : seeds)
    for (const Variant& v : runs) {
      const std::string file = run_file(out, v, seed);
      const std::string ckpt = file.substr(0, file.size() - 5) + ".checkpoint.safetensors";  // "x.json" -> "x"
      std::vector<std::vector<std::string>> rows;
      const std::string settings_text = run_settings(c, v).dump();
      if (resume && cli::file_exists(file)) {
        std::string trained_with;
        RunResult res;
        try {
          Json j = Json::parse(read_file(file));
          trained_with = j.at("settings").dump();
          res = result_from_json(j.at("result"), v);
          MINIMA_CHECK(j.at("rows").is_array(), "\"rows\" must be an array");
          for (const auto& row : j.at("rows").elements()) {
            MINIMA_CHECK(row.is_array() && row.size() == log.columns(), "a metrics row must be an array of ",
                         log.columns(), " strings, got ", row.dump());
            std::vector<std::string> r;
            for (const auto& cell : row.elements()) r.push_back(cell.as_string());
            r[0] = std::to_string(results.size());  // the run's number in this experiment's order
            rows.push_back(r);
          }
        } catch (const Error& e) {
          throw Error(str("--resume: ", file, " is damaged (", e.what(), "); remove it to train that run again"));
        }
        MINIMA_CHECK(trained_with == settings_text, "--resume: ", file, " was trained with other settings (",
                     trained_with, ", now ", settings_text, "); choose another --out");
        results.push_back(res);
        ++loaded;
        std::remove(ckpt.c_str());  // left behind if a kill came between the run file and its removal
        std::printf("%s, seed %lld: loaded from %s\n", v.label().c_str(), (long long)seed, file.c_str());
      } else {
        MINIMA_CHECK(halt_after == 0 || trained < halt_after, "stopped after ", trained,
                     " runs as --halt-after-runs asked; rerun with --resume");
        results.push_back(train_variant(c, v, seed, results.size(), total, ckpt, rows));
        ++trained;
        Json j = Json::object();
        j["settings"] = run_settings(c, v);
        j["result"] = result_json(results.back());
        j["rows"] = rows_json(rows);
        write_file_atomic(file, j.dump() + "\n");
        std::remove(ckpt.c_str());  // after the run file: a kill in between leaves both (see above)
      }
      for (auto& r : rows) log.row(r);
      log.write(dir.file("metrics.csv"));
    }
  if (loaded > 0) std::printf("resumed: %lld runs loaded, %lld trained\n", (long long)loaded, (long long)trained);

  // summary.json: every run, and per variant the mean +- std over seeds; results.md: the latter.
  Json runs_j = Json::array();
  for (const auto& r : results) runs_j.push_back(result_json(r));
  std::ostringstream md;
  md << "# Randomization tests (Zhang et al. 2017)\n\n"
     << c.arch << " on " << c.base.train.size() << " " << dataset << " training images"
     << (zhang_pre ? " (center crop 28x28, per-image whitening)" : "") << "; SGD lr " << c.lr << " x" << c.decay
     << " per " << c.decay_steps << " steps, momentum " << c.momentum << ", weight decay " << c.wd
     << (c.wd_runs ? " in the wd runs (0 in the others)" : "") << ", batch " << c.batch << "; "
     << (crop_runs ? (c.zhang_crop ? "crop: random 28x28 windows of the 32x32 images; "
                                   : "crop: random crops of the images padded by 4; ")
                   : "")
     << seeds.size() << " seed" << (seeds.size() == 1 ? "" : "s") << (seeds.size() > 1 ? " (mean ± std)" : "")
     << ". Each run stops at " << c.fit_acc << "% training accuracy or " << c.epochs
     << " epochs; steps to fit are over the runs that fitted.\n\n"
     << "| randomization | fitted | train acc % | test acc % | test error % | steps to fit | vs true labels |\n"
     << "|---|---|---|---|---|---|---|\n";
  // Per variant, over seeds: steps to fit (of the runs that fitted), test and train accuracy.
  struct Aggregate {
    Variant v;
    Stat steps, test, train;
    bool all_fitted = false;
  };
  std::vector<Aggregate> aggs;
  std::map<std::string, double>
      base_steps;  // per regularizer: the true labels' mean steps to fit, when every seed fitted
  for (const Variant& v : runs) {
    std::vector<double> steps, test, train;
    for (const auto& r : results) {
      if (!r.v.same(v)) continue;
      if (r.steps_to_fit >= 0) steps.push_back(double(r.steps_to_fit));
      test.push_back(r.test_acc);
      train.push_back(r.train_acc);
    }
    aggs.push_back({v, stat(steps), stat(test), stat(train), steps.size() == seeds.size()});
    if (v.kind == "true-labels" && aggs.back().all_fitted) base_steps[v.reg] = aggs.back().steps.mean;
  }
  Json variants_j = Json::array();
  for (const Aggregate& g : aggs) {
    Json j = Json::object();
    j["kind"] = g.v.kind;
    j["p"] = g.v.p;
    j["corruption"] = g.v.corruption();
    j["label"] = g.v.label();
    j["regularizer"] = g.v.reg;
    j["seeds"] = int64_t(seeds.size());
    j["fitted"] = int64_t(g.steps.n);
    j["steps_to_fit_mean"] = g.steps.n ? g.steps.mean : -1.0;
    j["steps_to_fit_std"] = g.steps.std;
    j["test_acc_mean"] = g.test.mean;
    j["test_acc_std"] = g.test.std;
    j["train_acc_mean"] = g.train.mean;
    std::string ratio = "-";
    if (base_steps.count(g.v.reg) && g.all_fitted) {
      const double base = base_steps.at(g.v.reg);  // the true labels' under the same regularizer
      j["fit_time_vs_true_labels"] = g.steps.mean / base;
      char b[32];
      std::snprintf(b, sizeof b, "%.2fx", g.steps.mean / base);
      ratio = b;
    }
    variants_j.push_back(j);
    md << "| " << g.v.label() << " | " << g.steps.n << "/" << seeds.size() << " | " << pct(g.train.mean) << " | "
       << mean_std(g.test, 2) << " | " << pct(100 - g.test.mean) << " | " << (g.steps.n ? mean_std(g.steps, 0) : "-")
       << " | " << ratio << " |\n";
  }
  if (regs != std::vector<std::string>{"none"}) {
    // Table 1's layout: a row per randomization, a column per regularizer, train / test accuracy.
    md << "\nTrain / test accuracy % by explicit regularizer (Zhang et al.'s Table 1"
       << (c.wd_runs ? str("; wd: weight decay ", c.wd) : std::string()) << "):\n\n| randomization |";
    for (const auto& r : regs) md << " " << r << " |";
    md << "\n|---|";
    for (size_t k = 0; k < regs.size(); ++k) md << "---|";
    md << "\n";
    for (const Aggregate& g : aggs) {
      if (g.v.reg != regs[0]) continue;  // one row per randomization
      Variant row = g.v;
      row.reg = "none";
      md << "| " << row.label() << " |";
      for (const auto& r : regs)
        for (const Aggregate& h : aggs)
          if (h.v.kind == g.v.kind && h.v.p == g.v.p && h.v.reg == r)
            md << " " << pct(h.train.mean) << " / " << mean_std(h.test, 2) << " |";
      md << "\n";
    }
  }
  Json s = Json::object();
  s["arch"] = c.arch;
  s["dataset"] = dataset;
  s["train_images"] = c.base.train.size();
  s["classes"] = c.classes;
  s["steps_per_epoch"] = data::batch_count(c.base.train.size(), c.batch, /*drop_last=*/false);
  Json seeds_j = Json::array();
  for (int64_t sd : seeds) seeds_j.push_back(sd);
  s["seeds"] = seeds_j;
  s["runs"] = runs_j;
  s["variants"] = variants_j;
  Json regs_j = Json::array();
  for (const auto& r : regs) regs_j.push_back(r);
  s["regularizers"] = regs_j;
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
