// apps/adversarial_init.cpp: `minima adversarial-init`: Liu, Papailiopoulos, Achlioptas (2020),
// "Bad Global Minima Exist and SGD Can Reach Them", end to end.
//
// Phase 1 (per seed and replication R): build the adversarial set C from the training images
// (R copies of each, a fraction of the raw values zeroed per copy, a random label per copy), train
// a randomly initialized network on it with vanilla SGD until it fits C (accuracy on C, measured
// in eval mode every --adv-check-every epochs, reaches --adv-target), and save those weights.
// Phase 2 (per seed, init and setup): train on the clean training set with true labels for
// --epochs, from the random init (the same draw phase 1 started from) or from the phase-1 weights,
// with a fresh optimizer, under each setup: vanilla (no augmentation, momentum 0, weight decay 0),
// sota (crop+flip, momentum 0.9, weight decay 5e-4) and the ablation's subsets of {DA, M, L2}.
// Every epoch records train/test loss and accuracy and the complexity measures of
// nn/complexity.h. Results: results.md (tables, mean +- std over seeds), summary.json, figures.
//
// Layout of --out: config.json; phase1/seed<S>-R<R>/ (metrics.csv, summary.json,
// adversarial_init.safetensors); runs/<init>-<setup>-seed<S>[-R<R>]/ (metrics.csv, summary.json,
// final.safetensors). A run saves a checkpoint (atomically, and synced to the disk) after an epoch
// that ends --checkpoint-every seconds or more after its last one, so --resume continues a killed
// experiment where it stopped: finished runs are skipped, an interrupted one goes back to its last
// checkpoint, trains the epochs after it again and ends with the same numbers as an uninterrupted
// run (training from a checkpoint is deterministic). Saving after every epoch instead wrote 2.9 GB
// for one seed at R = 8 of the default experiment, whose epochs take milliseconds.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/experiment.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "core/random.h"
#include "data/transforms.h"
#include "nn/autocast.h"
#include "nn/checkpoint.h"
#include "nn/complexity.h"
#include "nn/models.h"
#include "optim/schedule.h"

namespace minima::app {
namespace {

struct Setup {
  std::string name;
  bool da = false, m = false, l2 = false;
};

// "vanilla", "sota", or any '+'-joined subset of DA, M, L2 (case-insensitive), e.g. "DA+L2".
Setup parse_setup(const std::string& s) {
  Setup r;
  std::string low;
  for (char c : s) low += char(std::tolower(static_cast<unsigned char>(c)));
  if (low == "vanilla") return {"vanilla", false, false, false};
  if (low == "sota") return {"sota", true, true, true};
  std::stringstream ss(low);
  std::string tok;
  while (std::getline(ss, tok, '+')) {
    if (tok == "da")
      r.da = true;
    else if (tok == "m")
      r.m = true;
    else if (tok == "l2")
      r.l2 = true;
    else
      throw Error(
          str("unknown setup '", s, "': expected vanilla, sota or a '+'-joined subset of DA, M, L2 (e.g. DA+M)"));
  }
  if (!r.da && !r.m && !r.l2) return {"vanilla", false, false, false};
  if (r.da && r.m && r.l2) return {"sota", true, true, true};
  std::vector<std::string> parts;
  if (r.da) parts.push_back("DA");
  if (r.m) parts.push_back("M");
  if (r.l2) parts.push_back("L2");
  for (size_t i = 0; i < parts.size(); ++i) r.name += (i ? "+" : "") + parts[i];
  return r;
}

// Everything the runs share.
struct Ctx {
  std::string arch, dataset, out;
  data::LoadOptions load;  // how the dataset was loaded (the weights record it)
  data::Dataset train, test;
  Shape in_chw;
  int64_t classes = 0, batch = 128, epochs = 0, adv_epochs = 0, adv_check_every = 25, complexity_every = 1;
  int64_t eval_every = 1;
  int64_t halt_after = 0;        // testing aid: stop after this many phase-2 epochs in total
  double checkpoint_every = 60;  // seconds between a run's checkpoints (0: after every epoch)
  mutable int64_t epochs_run = 0;
  double lr = 0.1, adv_lr = 0.1, momentum = 0.9, wd = 5e-4, zero_out = 0.1, adv_target = 99.99;
  std::string adv_schedule = "multistep";
  Device device;
  bool resume = false;
  int64_t eval_batch = 1000;
};

uint64_t init_seed(int64_t seed) { return Generator::mix(uint64_t(seed), 0x1417); }
uint64_t set_seed(int64_t seed) { return Generator::mix(uint64_t(seed), 0xC); }
uint64_t order_seed(int64_t seed, int64_t phase) { return Generator::mix(uint64_t(seed), 0x0D, uint64_t(phase)); }

std::shared_ptr<nn::Module> fresh_model(const Ctx& c, int64_t seed) {
  Generator g(init_seed(seed));
  return nn::make_model(c.arch, c.in_chw, c.classes, g);
}

nn::ModelInfo model_info(const Ctx& c, int64_t seed) {
  nn::ModelInfo mi;
  mi.arch = c.arch;
  mi.in_chw = c.in_chw;
  mi.classes = c.classes;
  mi.dataset = c.dataset;
  mi.mean = c.train.mean;
  mi.std = c.train.std;
  mi.seed = uint64_t(seed);
  mi.coarse_labels = c.load.coarse_labels;
  mi.merge_valid = c.load.merge_valid;
  return mi;
}

// Refuses to overwrite finished work unless resuming.
void claim_dir(const Ctx& c, const std::string& dir) {
  if (!c.resume && cli::file_exists(dir + "/metrics.csv"))
    throw Error(str(dir, " already holds a run; pass --resume to continue the experiment or choose another --out"));
  cli::make_dirs(dir);
}

// The figures of a phase-2 run that the aggregation averages (null for a diverged run's norms).
const char* const kRunFigures[] = {"train_acc",    "test_acc",     "frobenius_sq",  "log10_spectral_product",
                                   "l2_path_norm", "l1_path_norm", "dist_from_init"};

// The summary.json of a phase 1 or a run finished earlier, which --resume reuses. The fields the
// aggregation reads are checked here, so that a damaged file is named, with what to do about it,
// instead of failing later with a bare JSON error.
Json read_finished(const std::string& file, bool phase1) {
  try {
    Json j = Json::parse(read_file(file));
    MINIMA_CHECK(j.is_object(), "expected an object");
    // j[key] read as the aggregation reads it; null where it may be null.
    auto field = [&](const char* key, bool nullable, auto read) {
      MINIMA_CHECK(j.contains(key), "missing key '", key, "'");
      if (nullable && j.at(key).is_null()) return;
      try {
        read(j.at(key));
      } catch (const Error& e) {
        throw Error(str("key '", key, "': ", e.what()));
      }
    };
    auto integer = [](const Json& v) { v.as_int(); };
    auto number = [](const Json& v) { v.as_double(); };
    auto text = [](const Json& v) { v.as_string(); };
    if (phase1) {
      for (const char* k : {"seed", "replication", "C_size", "epochs"}) field(k, false, integer);
      field("acc_on_C", false, number);
    } else {
      field("init", false, text);
      field("setup", false, text);
      if (j.at("init").as_string() == "adversarial") field("replication", false, integer);
      for (const char* f : kRunFigures) field(f, true, number);
      if (j.contains("diverged_at_epoch")) field("diverged_at_epoch", true, integer);
    }
    return j;
  } catch (const Error& e) {
    throw Error(str("--resume: ", file, " is damaged (", e.what(), "); remove it to ",
                    phase1 ? "run that phase 1 again" : "train that run again"));
  }
}

std::string eta_text(double elapsed, double done, double total) {
  if (done <= 0) return "?";
  return cli::format_duration(elapsed / done * std::max(0.0, total - done));
}

// ---- phase 1 -------------------------------------------------------------------------------
Json run_phase1(const Ctx& c, int64_t seed, int64_t R) {
  std::string dir = c.out + "/phase1/seed" + std::to_string(seed) + "-R" + std::to_string(R);
  std::string weights = dir + "/adversarial_init.safetensors";
  if (cli::file_exists(dir + "/summary.json") && cli::file_exists(weights)) {
    MINIMA_CHECK(c.resume, dir, " already holds a finished phase 1; pass --resume to reuse it or choose another --out");
    std::printf("phase 1 seed %lld R %lld: done earlier, reusing %s\n", (long long)seed, (long long)R, weights.c_str());
    return read_finished(dir + "/summary.json", /*phase1=*/true);
  }
  claim_dir(c, dir);
  uint64_t cseed = set_seed(seed);
  data::Dataset C = data::adversarial_set(c.train, R, c.zero_out, cseed);
  auto model = fresh_model(c, seed);
  model->to(c.device);
  optim::SGD opt(model->parameters(), {c.adv_lr, 0.0, 0.0, 0.0, false});
  auto sched = optim::make_schedule(c.adv_schedule, c.adv_lr, c.adv_epochs);
  data::Loader loader(C, c.batch, true, order_seed(seed, 1), {}, false, c.device);
  nn::TrainState st;
  RunCheckpoint ckpt(dir + "/checkpoint.safetensors", c.checkpoint_every);
  if (c.resume &&
      ckpt.resume(*model, opt, st, c.adv_epochs, c.adv_epochs, "--adv-epochs"))  // the last epoch saves one too
    std::printf("phase 1 seed %lld R %lld: resuming after epoch %lld\n", (long long)seed, (long long)R,
                (long long)st.epoch);
  truncate_metrics(dir + "/metrics.csv", st.epoch);
  cli::MetricsCsv csv(dir + "/metrics.csv", {"epoch", "lr", "train_loss", "train_acc", "acc_on_C", "seconds"},
                      st.epoch > 0);
  std::printf(
      "phase 1 seed %lld R %lld: fitting C = %lld images (%lld x %lld copies, %.0f%% of values zeroed, random "
      "labels)\n",
      (long long)seed, (long long)R, (long long)C.size(), (long long)c.train.size(), (long long)R, 100 * c.zero_out);
  apps::Stopwatch sw;
  double acc_c = st.extra.contains("acc_on_C") ? st.extra.at("acc_on_C").as_double() : 0.0;
  bool reached = false;
  int64_t start = st.epoch;
  for (int64_t e = st.epoch; e < c.adv_epochs; ++e) {
    opt.set_lr(sched->lr_at(e));
    EpochResult tr = train_epoch(*model, opt, loader, e, "phase1", c.adv_epochs);
    MINIMA_CHECK(std::isfinite(tr.loss), "phase 1 diverged at epoch ", e + 1, "; try a smaller --adv-lr");
    bool check = (e + 1) % c.adv_check_every == 0 || e + 1 == c.adv_epochs;
    double acc = NAN;
    if (check) {
      // A Loader per check: on a GPU, one kept for the whole phase would hold a second copy of C
      // (1.5 GB at R = 10 on CIFAR-10) beside the training Loader's; uploading it once per check
      // costs little next to the epochs between checks.
      const EpochResult on_c = evaluate(*model, C, c.eval_batch, c.device);
      // The training loss is summed before each update; this one after the epoch's last.
      MINIMA_CHECK(std::isfinite(on_c.loss), "phase 1 diverged at epoch ", e + 1, " (loss on C ", on_c.loss,
                   "); try a smaller --adv-lr");
      acc = on_c.acc;
      acc_c = acc;
    }
    csv.row({double(e + 1), opt.lr(), tr.loss, tr.acc, acc, tr.seconds});
    std::printf("phase 1 seed %lld R %lld epoch %lld/%lld | loss %.4f acc %.2f%%%s | %.0f img/s | ETA <= %s\n",
                (long long)seed, (long long)R, (long long)e + 1, (long long)c.adv_epochs, tr.loss, tr.acc,
                check ? (" | on C (eval) " + cli::fmt(acc, 5) + "%").c_str() : "", double(tr.samples) / tr.seconds,
                eta_text(sw.seconds(), double(e + 1 - start), double(c.adv_epochs - start)).c_str());
    std::fflush(stdout);
    st.epoch = e + 1;
    st.extra["acc_on_C"] = acc_c;
    if (check && acc >= c.adv_target) {
      reached = true;
      break;
    }
    if (ckpt.due()) ckpt.save(*model, opt, st, model_info(c, seed));
  }
  nn::Metadata meta;
  meta.emplace_back("phase", "adversarial-init");
  meta.emplace_back("C_seed", std::to_string(cseed));
  meta.emplace_back("C_replication", std::to_string(R));
  meta.emplace_back("C_zero_out", cli::fmt(c.zero_out, 6));
  meta.emplace_back("C_source", c.dataset + " train, first " + std::to_string(c.train.size()) + " images");
  meta.emplace_back("phase1_epochs", std::to_string(st.epoch));
  meta.emplace_back("acc_on_C", cli::fmt(acc_c, 6));
  nn::save_weights(weights, *model, model_info(c, seed), meta);
  ckpt.remove();
  Json s = Json::object();
  s["seed"] = seed;
  s["replication"] = R;
  s["C_size"] = C.size();
  s["C_seed"] = std::to_string(cseed);
  s["epochs"] = st.epoch;
  s["acc_on_C"] = acc_c;
  s["reached_target"] = reached;
  s["seconds"] = sw.seconds();
  write_file_atomic(dir + "/summary.json", s.dump(2) + "\n");
  if (!reached)
    std::printf("warning: phase 1 (seed %lld, R %lld) stopped at %.2f%% on C, below the %.2f%% target\n",
                (long long)seed, (long long)R, acc_c, c.adv_target);
  return s;
}

// ---- phase 2 -------------------------------------------------------------------------------
std::string run_name(const std::string& init, const Setup& s, int64_t seed, int64_t R) {
  std::string n = init + "-" + s.name + "-seed" + std::to_string(seed);
  if (init == "adversarial") n += "-R" + std::to_string(R);
  return n;
}

Json run_phase2(const Ctx& c, const std::string& init, const Setup& setup, int64_t seed, int64_t R) {
  std::string name = run_name(init, setup, seed, R);
  std::string dir = c.out + "/runs/" + name;
  if (cli::file_exists(dir + "/summary.json")) {
    MINIMA_CHECK(c.resume, dir, " already holds a finished run; pass --resume to reuse it or choose another --out");
    std::printf("%s: done earlier, skipped\n", name.c_str());
    return read_finished(dir + "/summary.json", /*phase1=*/false);
  }
  claim_dir(c, dir);
  auto model = fresh_model(c, seed);
  if (init == "adversarial") {
    std::string w =
        c.out + "/phase1/seed" + std::to_string(seed) + "-R" + std::to_string(R) + "/adversarial_init.safetensors";
    nn::load_weights(w, *model);
    check_finite(model->named_parameters(), w);
  }
  model->to(c.device);
  nn::NamedTensors w0 = nn::snapshot(model->named_parameters());
  optim::SGD opt(model->parameters(), {c.lr, setup.m ? c.momentum : 0.0, 0.0, setup.l2 ? c.wd : 0.0, false});
  auto sched = optim::make_schedule("multistep", c.lr, c.epochs);
  data::Augment aug{setup.da, 4, setup.da};
  data::Loader loader(c.train, c.batch, true, order_seed(seed, 2), aug, false, c.device);
  data::Loader test_loader(c.test, c.eval_batch, false, 0, {}, false, c.device);
  nn::TrainState st;
  RunCheckpoint ckpt(dir + "/checkpoint.safetensors", c.checkpoint_every);
  if (c.resume && ckpt.resume(*model, opt, st, c.epochs - 1, c.epochs, "--epochs"))  // the last epoch saves none
    std::printf("%s: resuming after epoch %lld\n", name.c_str(), (long long)st.epoch);
  truncate_metrics(dir + "/metrics.csv", st.epoch);
  cli::MetricsCsv csv(dir + "/metrics.csv",
                      {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "frobenius_sq",
                       "log10_spectral_product", "l2_path_norm", "l1_path_norm", "dist_from_init", "seconds"},
                      st.epoch > 0);
  auto factory = [&] { return fresh_model(c, seed); };
  apps::Stopwatch sw;
  EpochResult tr, te;
  nn::Complexity cx;
  double dist = 0;
  int64_t start = st.epoch, diverged_at = 0;
  for (int64_t e = st.epoch; e < c.epochs; ++e) {
    opt.set_lr(sched->lr_at(e));
    tr = train_epoch(*model, opt, loader, e, name, c.epochs);
    if (!std::isfinite(tr.loss)) {
      // A run that blows up is a result of its setup (e.g. momentum from a large-weight init), not
      // a failure of the experiment: it is recorded as diverged and the other runs go on.
      diverged_at = e + 1;
      std::printf("warning: %s diverged at epoch %lld (training loss %s); recorded as diverged\n", name.c_str(),
                  (long long)diverged_at, cli::fmt(tr.loss, 6).c_str());
      break;
    }
    bool last = e + 1 == c.epochs;
    bool test_now = (e + 1) % c.eval_every == 0 || last;
    if (test_now) te = evaluate(*model, test_loader);
    if (test_now && !std::isfinite(te.loss)) {  // the epoch's last update left the weights not finite
      diverged_at = e + 1;
      std::printf("warning: %s diverged at epoch %lld (test loss %s); recorded as diverged\n", name.c_str(),
                  (long long)diverged_at, cli::fmt(te.loss, 6).c_str());
      break;
    }
    bool measure = (e + 1) % c.complexity_every == 0 || last;
    if (measure) {
      cx = nn::complexity_measures(*model, factory, c.in_chw);
      dist = nn::relative_distance(model->named_parameters(), w0);
    }
    double nan = NAN;
    csv.row({double(e + 1), opt.lr(), tr.loss, tr.acc, test_now ? te.loss : nan, test_now ? te.acc : nan,
             measure ? cx.frobenius_sq : nan, measure ? cx.log10_spectral_product : nan,
             measure ? cx.l2_path_norm : nan, measure ? cx.l1_path_norm : nan, measure ? dist : nan,
             tr.seconds + te.seconds});
    std::printf("%s epoch %lld/%lld | loss %.4f acc %.2f%% | test %.2f%% | dist %.3f | %.0f img/s | ETA %s\n",
                name.c_str(), (long long)e + 1, (long long)c.epochs, tr.loss, tr.acc, te.acc, dist,
                double(tr.samples) / tr.seconds,
                eta_text(sw.seconds(), double(e + 1 - start), double(c.epochs - start)).c_str());
    std::fflush(stdout);
    st.epoch = e + 1;
    if (e + 1 < c.epochs && ckpt.due()) ckpt.save(*model, opt, st, model_info(c, seed));
    if (c.halt_after > 0 && ++c.epochs_run == c.halt_after)
      throw Error(str("stopped after ", c.halt_after, " phase-2 epochs as --halt-after asked; rerun with --resume"));
  }
  if (diverged_at > 0) {
    te = evaluate(*model, test_loader);
    cx = nn::Complexity{NAN, NAN, NAN, NAN};
    dist = NAN;
  }
  // Final accuracy on the clean training set in eval mode (the "fits the training set" figure).
  EpochResult train_eval = evaluate(*model, c.train, c.eval_batch, c.device);
  nn::Metadata meta;
  meta.emplace_back("init", init);
  meta.emplace_back("setup", setup.name);
  meta.emplace_back("replication", std::to_string(R));
  nn::save_weights(dir + "/final.safetensors", *model, model_info(c, seed), meta);
  ckpt.remove();
  Json s = Json::object();
  s["init"] = init;
  s["setup"] = setup.name;
  s["seed"] = seed;
  s["replication"] = init == "adversarial" ? Json(R) : Json();
  s["epochs"] = c.epochs;
  s["train_acc"] = train_eval.acc;
  s["train_loss"] = train_eval.loss;
  s["test_acc"] = te.acc;
  s["test_loss"] = te.loss;
  s["frobenius_sq"] = cx.frobenius_sq;
  s["log10_spectral_product"] = cx.log10_spectral_product;
  s["l2_path_norm"] = cx.l2_path_norm;
  s["l1_path_norm"] = cx.l1_path_norm;
  s["dist_from_init"] = dist;
  s["diverged_at_epoch"] = diverged_at > 0 ? Json(diverged_at) : Json();
  s["seconds"] = sw.seconds();
  write_file_atomic(dir + "/summary.json", s.dump(2) + "\n");
  std::printf("%s: train %.2f%% test %.2f%%%s\n", name.c_str(), train_eval.acc, te.acc,
              diverged_at > 0 ? " (diverged)" : "");
  return s;
}

// ---- aggregation ---------------------------------------------------------------------------
struct Stat {
  std::vector<double> v;
  double sum() const {
    double s = 0;
    for (double x : v) s += x;
    return s;
  }
  double mean() const { return v.empty() ? NAN : sum() / double(v.size()); }
  double std() const {
    if (v.size() < 2) return 0;
    double m = mean(), s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / double(v.size() - 1));
  }
  std::string text(int prec = 2) const {
    if (v.empty()) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f ± %.*f", prec, mean(), prec, std());
    return buf;
  }
};

Json aggregate(const Ctx& c, const std::vector<Json>& runs, const std::vector<Json>& phase1,
               const std::vector<Setup>& setups, const std::vector<std::string>& inits,
               const std::vector<int64_t>& reps, const std::vector<int64_t>& seeds) {
  // key: init|setup|R (R = 0 for random init)
  std::map<std::string, std::map<std::string, Stat>> by;
  for (const auto& r : runs) {
    std::string init = r.at("init").as_string();
    int64_t R = init == "adversarial" ? r.at("replication").as_int() : 0;
    std::string key = init + "|" + r.at("setup").as_string() + "|" + std::to_string(R);
    for (const char* f : kRunFigures)
      if (!r.at(f).is_null()) by[key][f].v.push_back(r.at(f).as_double());  // null: a diverged run's norms
    bool diverged = r.contains("diverged_at_epoch") && !r.at("diverged_at_epoch").is_null();
    by[key]["diverged"].v.push_back(diverged ? 1.0 : 0.0);
  }
  auto key = [](const std::string& init, const std::string& setup, int64_t R) {
    return init + "|" + setup + "|" + std::to_string(init == "adversarial" ? R : 0);
  };
  std::ostringstream md;
  md << "# Adversarial initialization (Liu et al. 2020) with minima\n\n";
  md << "`" << c.arch << "` on " << c.dataset << " (" << c.train.size() << " training images, " << c.test.size()
     << " test images), " << c.epochs << " epochs per run, seeds";
  for (auto s : seeds) md << " " << s;
  md << ". Mean ± std over seeds; accuracies in percent; train accuracy is measured on the clean "
        "training set in eval mode after the last epoch.\n\n";
  md << "## Phase 1: fitting the adversarial set C\n\n| seed | R | size of C | epochs | accuracy on C "
        "|\n|---|---|---|---|---|\n";
  for (const auto& p : phase1)
    md << "| " << p.at("seed").as_int() << " | " << p.at("replication").as_int() << " | " << p.at("C_size").as_int()
       << " | " << p.at("epochs").as_int() << " | " << cli::fmt(p.at("acc_on_C").as_double(), 5) << " |\n";
  for (int64_t R : reps) {
    md << "\n## Final accuracy (adversarial init with R = " << R
       << ")\n\n| setup | init | train acc | test acc |\n|---|---|---|---|\n";
    for (const auto& s : setups)
      for (const auto& init : inits) {
        auto it = by.find(key(init, s.name, R));
        if (it == by.end()) continue;
        const Stat& dv = it->second["diverged"];  // 1 per diverged run, 0 per other
        md << "| " << s.name << " | " << init << " | " << it->second["train_acc"].text() << " | "
           << it->second["test_acc"].text();
        if (dv.sum() > 0) md << " (" << std::llround(dv.sum()) << " of " << dv.v.size() << " runs diverged)";
        md << " |\n";
      }
    md << "\n## Complexity of the final models (R = " << R
       << ")\n\n| setup | init | ||W||_F^2 sum | log10 prod "
          "sigma_max | l2 path norm | l1 path norm | ||w - w0|| / ||w0|| |\n|---|---|---|---|---|---|---|\n";
    for (const auto& s : setups)
      for (const auto& init : inits) {
        auto it = by.find(key(init, s.name, R));
        if (it == by.end()) continue;
        auto& m = it->second;
        md << "| " << s.name << " | " << init << " | " << m["frobenius_sq"].text(1) << " | "
           << m["log10_spectral_product"].text(2) << " | " << m["l2_path_norm"].text(3) << " | "
           << m["l1_path_norm"].text(1) << " | " << m["dist_from_init"].text(3) << " |\n";
      }
  }
  if (reps.size() > 1) {
    md << "\n## Test accuracy against R (adversarial init; R = 0 is the random init)\n\n| setup | R = 0 |";
    for (auto R : reps) md << " R = " << R << " |";
    md << "\n|---|---|";
    for (size_t i = 0; i < reps.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& s : setups) {
      md << "| " << s.name << " | ";
      auto r0 = by.find(key("random", s.name, 0));
      md << (r0 == by.end() ? "-" : r0->second["test_acc"].text()) << " |";
      for (auto R : reps) {
        auto it = by.find(key("adversarial", s.name, R));
        md << " " << (it == by.end() ? "-" : it->second["test_acc"].text()) << " |";
      }
      md << "\n";
    }
  }
  write_file_atomic(c.out + "/results.md", md.str());

  Json j = Json::object();
  j["arch"] = c.arch;
  j["dataset"] = c.dataset;
  j["train_images"] = c.train.size();
  j["epochs"] = c.epochs;
  Json table = Json::array();
  for (const auto& [k, m] : by) {
    Json e = Json::object();
    std::stringstream ss(k);
    std::string init, setup, R;
    std::getline(ss, init, '|');
    std::getline(ss, setup, '|');
    std::getline(ss, R, '|');
    e["init"] = init;
    e["setup"] = setup;
    e["replication"] = int64_t(std::stoll(R));
    for (const auto& [f, st] : m) {
      e[f + "_mean"] = st.mean();
      e[f + "_std"] = st.std();
    }
    e["seeds"] = int64_t(m.at("test_acc").v.size());
    table.push_back(e);
  }
  j["results"] = table;
  Json rs = Json::array();
  for (const auto& r : runs) rs.push_back(r);
  j["runs"] = rs;
  Json ps = Json::array();
  for (const auto& p : phase1) ps.push_back(p);
  j["phase1"] = ps;
  return j;
}

int run_adversarial_init(cli::Args& a) {
  a.set_description(
      "Liu, Papailiopoulos, Achlioptas (2020): fit a randomly labelled, noisy replicated copy of the training\n"
      "set (phase 1), then train on the real training set from those weights or from a random init under each\n"
      "setup (phase 2). Defaults are the scaled-down CPU configuration; the paper's protocol is e.g.\n"
      "  minima adversarial-init --dataset cifar10 --arch resnet18 --subset 0 --replication 10 --epochs 350 \\\n"
      "      --adv-epochs 350 --adv-check-every 25 --adv-schedule multistep --setups vanilla,sota \\\n"
      "      --device cuda --out runs/cifar10-resnet18");
  Ctx c;
  c.dataset = a.get_string("dataset", "fashion-mnist",
                           "dataset (fashion-mnist, mnist, cifar10, cifar100, cinic10, restricted-imagenet)");
  std::string data_dir = a.get_string("data-dir", "", "dataset directory (default: the dataset's usual place)");
  std::string normalize = normalize_flag(a);
  c.arch = a.get_string("arch", "mlp-bn", "network");
  int64_t subset = a.get_int("subset", 500, "use the first N training images (0: all)");
  bool balanced = a.get_flag("balanced", "class-balanced subset (the first N/K images of every class)");
  auto reps = a.get_int_list("replication", "2,8,32", "R: copies of each image in C (a list runs the R sweep)");
  c.zero_out = a.get_double("zero-out", 0.1, "fraction of raw values zeroed in each copy");
  auto seeds = a.get_int_list("seeds", "0,1,2", "seeds (mean +- std over them)");
  auto setup_names =
      a.get_string_list("setups", "vanilla,sota,M+L2", "setups: vanilla, sota, DA, M, L2, DA+M, DA+L2, M+L2");
  auto inits = a.get_string_list("inits", "random,adversarial", "phase-2 initializations: random, adversarial");
  c.epochs = a.get_int("epochs", 100, "phase-2 epochs (lr x0.1 at 150/350 and 250/350 of them)");
  c.lr = a.get_double("lr", 0.1, "phase-2 learning rate");
  c.momentum = a.get_double("momentum", 0.9, "momentum of the setups with M");
  c.wd = a.get_double("weight-decay", 5e-4, "weight decay of the setups with L2");
  c.adv_epochs = a.get_int("adv-epochs", 200, "phase 1: at most this many epochs");
  c.adv_lr = a.get_double("adv-lr", 0.1, "phase 1: learning rate");
  c.adv_schedule =
      a.get_string("adv-schedule", "constant",
                   "phase 1: constant, or multistep (x0.1 at 150/350 and 250/350 of --adv-epochs, the official code)");
  c.adv_target = a.get_double("adv-target", 99.99, "phase 1: stop at this accuracy on C (percent, eval mode)");
  c.adv_check_every = a.get_int("adv-check-every", 5, "phase 1: measure accuracy on C every N epochs (official: 25)");
  c.batch = a.get_int("batch", 128, "mini-batch size (both phases)");
  c.complexity_every =
      a.get_int("complexity-every", 10, "compute the complexity measures every N epochs (and at the end)");
  c.eval_every = a.get_int("eval-every", 10, "phase 2: evaluate on the test set every N epochs (and at the end)");
  std::string device_s = a.get_string("device", "cpu", "cpu, cuda, cuda:N or auto");
  cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  nn::AutocastGuard precision(nn::precision_from_flag(
      a.get_string("precision", "fp32",
                   "fp32, or bf16: bfloat16 activations and weights, float32 master weights and BN statistics")));
  int64_t threads =
      a.get_int("threads", 0,
                "CPU threads for compute and for decoding image folders (0: OpenMP default; all cores to decode)");
  c.load = load_flags(a, threads);
  c.out = a.get_string("out", "runs/adversarial-init", "output directory");
  c.resume = a.get_flag("resume", "continue an interrupted experiment in --out (finished runs are skipped)");
  bool plot = !a.get_flag("no-plot", "do not render the figures");
  c.checkpoint_every = checkpoint_every_flag(a);
  c.halt_after = a.get_int("halt-after", 0, "stop after N phase-2 epochs, as if killed (to try --resume)");
  if (a.finish()) return 0;

  MINIMA_CHECK(!reps.empty() && !seeds.empty() && !setup_names.empty() && !inits.empty(),
               "--replication, --seeds, --setups and --inits need at least one value each");
  for (auto R : reps) MINIMA_CHECK(R >= 1, "--replication values must be >= 1, got ", R);
  MINIMA_CHECK(c.zero_out >= 0 && c.zero_out < 1, "--zero-out must be in [0, 1), got ", c.zero_out);
  MINIMA_CHECK(c.epochs >= 1 && c.adv_epochs >= 1, "--epochs and --adv-epochs must be >= 1");
  MINIMA_CHECK(c.adv_check_every >= 1 && c.complexity_every >= 1 && c.eval_every >= 1,
               "--adv-check-every, --complexity-every and --eval-every must be >= 1");
  MINIMA_CHECK(c.lr > 0 && c.adv_lr > 0, "learning rates must be positive");
  MINIMA_CHECK(c.momentum >= 0 && c.momentum < 1, "--momentum must be in [0, 1), got ", c.momentum);
  MINIMA_CHECK(c.wd >= 0, "--weight-decay must be >= 0, got ", c.wd);
  MINIMA_CHECK(c.adv_target > 0 && c.adv_target <= 100, "--adv-target must be in (0, 100] percent, got ", c.adv_target);
  MINIMA_CHECK(c.halt_after >= 0, "--halt-after must be >= 0, got ", c.halt_after);
  MINIMA_CHECK(c.batch >= 1, "--batch must be >= 1");
  MINIMA_CHECK(subset >= 0, "--subset must be >= 0");
  MINIMA_CHECK(!balanced || subset > 0,
               "--balanced chooses which images a --subset takes; with --subset 0 (all) "
               "it has nothing to choose");
  MINIMA_CHECK(c.adv_schedule == "constant" || c.adv_schedule == "multistep",
               "--adv-schedule must be constant or multistep, got '", c.adv_schedule, "'");
  std::vector<Setup> setups;
  for (const auto& s : setup_names) {
    Setup p = parse_setup(s);
    for (const auto& q : setups)
      MINIMA_CHECK(q.name != p.name, "--setups: ", s, " is ", p.name, ", which is listed already");
    setups.push_back(p);
  }
  bool need_adv = false;
  for (const auto& i : inits) {
    MINIMA_CHECK(i == "random" || i == "adversarial", "unknown init '", i, "' (expected random or adversarial)");
    need_adv |= i == "adversarial";
  }
  check_load_flags(a, c.dataset);
  normalize = data::resolve_normalization(c.dataset, normalize);  // "data" or "paper" from here on
  set_threads(threads);
  c.device = device_from_flag(device_s);

  data::Splits sp = data::load_dataset(c.dataset, data_dir, c.load);
  data::set_normalization(sp, c.dataset, normalize);
  MINIMA_CHECK(subset <= sp.train.size(), "--subset ", subset, " is larger than the ", sp.train.size(),
               " training images of ", c.dataset);
  c.train = subset > 0 ? data::subset(sp.train, subset, balanced) : sp.train;
  c.test = sp.test;
  c.classes = c.train.num_classes;
  c.in_chw = {c.train.channels(), c.train.height(), c.train.width()};
  {
    Generator g(0);
    nn::make_model(c.arch, c.in_chw, c.classes, g);  // fail early on a bad --arch
  }
  check_one_sample_batches(c.arch, c.in_chw, c.classes, c.train.size(), c.batch, "--subset or --batch");
  // Phase 1 holds its adversarial set in memory (the pixels and a label per image): one larger than
  // the machine's memory used to fail only after --out was claimed.
  const double memory = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  if (need_adv)
    for (int64_t R : reps) {
      int64_t size = 0;
      MINIMA_CHECK(!__builtin_mul_overflow(c.train.size(), R, &size) && size <= (int64_t(1) << 32), "--replication ", R,
                   " makes an adversarial set of more than 2^32 images from ", c.train.size(), " training images");
      const double bytes = double(size) * double(c.train.sample_numel() + int64_t(sizeof(int64_t)));
      MINIMA_CHECK(memory <= 0 || bytes <= memory, "--replication ", R, " makes an adversarial set of ", size,
                   " images (", cli::fmt(bytes / 1e9, 3), " GB), more than the ", cli::fmt(memory / 1e9, 3),
                   " GB of memory of this machine");
      check_one_sample_batches(c.arch, c.in_chw, c.classes, size, c.batch, "--replication, --subset or --batch");
    }

  cli::RunDir dir(c.out, /*resumable=*/true);
  if (!c.resume && cli::file_exists(dir.file("config.json")))
    throw Error(str(c.out, " already holds an experiment; pass --resume to continue it or choose another --out"));
  // The lists select runs (each in its own directory), so a resume may add seeds, setups or R.
  if (c.resume)
    dir.check_resume_flags(a, {"out", "resume", "threads", "no-plot", "halt-after", "checkpoint-every", "data-dir",
                               "cache-dir", "device", "gemm", "conv", "bn", "tf32", "deterministic", "seeds", "setups",
                               "inits", "replication"});
  Json extra = Json::object();
  extra["train_images"] = c.train.size();
  extra["test_images"] = c.test.size();
  extra["device"] = c.device.str();
  extra["phase2_milestones"] = Json(optim::paper_milestones(c.epochs));
  extra["normalization"] = normalize;
  extra["input_mean"] = Json(c.train.mean);
  extra["input_std"] = Json(c.train.std);
  dir.write_config(a, extra);

  int64_t n_runs = 0;
  for (const auto& init : inits)
    n_runs += int64_t(setups.size() * seeds.size() * (init == "adversarial" ? reps.size() : 1));
  std::printf("adversarial-init: %s on %s (%lld train / %lld test images), %lld phase-2 runs of %lld epochs on %s\n",
              c.arch.c_str(), c.dataset.c_str(), (long long)c.train.size(), (long long)c.test.size(), (long long)n_runs,
              (long long)c.epochs, c.device.str().c_str());
  std::vector<Json> phase1, runs;
  apps::Stopwatch total;
  int64_t done = 0;
  for (int64_t seed : seeds) {
    if (need_adv)
      for (int64_t R : reps) phase1.push_back(run_phase1(c, seed, R));
    for (const auto& init : inits)
      for (const auto& s : setups) {
        if (init == "random") {
          runs.push_back(run_phase2(c, init, s, seed, 0));
          ++done;
        } else {
          for (int64_t R : reps) {
            runs.push_back(run_phase2(c, init, s, seed, R));
            ++done;
          }
        }
        std::printf("[%lld/%lld runs, %s elapsed, ETA %s]\n", (long long)done, (long long)n_runs,
                    cli::format_duration(total.seconds()).c_str(),
                    eta_text(total.seconds(), double(done), double(n_runs)).c_str());
      }
  }
  Json summary = aggregate(c, runs, phase1, setups, inits, reps, seeds);
  summary["seconds"] = total.seconds();
  dir.write_summary(summary);
  std::printf("\n%s\n", read_file(c.out + "/results.md").c_str());
  apps::render_figure("adversarial_init.py", c.out, plot);
  std::printf("results: %s/results.md, %s/summary.json\n", c.out.c_str(), c.out.c_str());
  return 0;
}

cli::Register reg("adversarial-init",
                  "Liu et al. 2020: adversarial initialization, the setups, the ablation, the R sweep",
                  run_adversarial_init);

}  // namespace
}  // namespace minima::app
