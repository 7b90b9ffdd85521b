// tests/apps/test_randomization.cpp: `minima randomization` (Zhang et al. 2017's randomization
// tests) on a small Fashion-MNIST subset, asserting what their Figure 1 shows, plus its handling of
// the variant list and of bad flags.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "app_test_util.h"
#include "core/atomic_file.h"
#include "core/random.h"
#include "data/dataset.h"
#include "fashion_mnist.h"
#include "nn/safetensors.h"

using namespace minima;

namespace {

const Json* find_run(const Json& s, const std::string& label) {
  for (const auto& r : s.at("runs").elements())
    if (r.at("label").as_string() == label) return &r;
  return nullptr;
}

}  // namespace

TEST_CASE("randomization: every variant is fitted, random labels fit slower and test at chance") {
  if (!testutil::fashion_mnist_or_skip()) return;
  apptest::TempDir tmp("randomization");
  const std::string& dir = tmp.path();
  auto r = apptest::run_minima(
      "randomization --subset 500 --variants true-labels,random-labels,shuffled-pixels,gaussian "
      "--corruption 0.5 --epochs 300 --seeds 0 --no-plot --out " +
      dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  REQUIRE(s.at("runs").size() == 5);
  const Json* truth = find_run(s, "true-labels");
  const Json* random = find_run(s, "random-labels");
  const Json* shuffled = find_run(s, "shuffled-pixels");
  const Json* gaussian = find_run(s, "gaussian");
  const Json* half = find_run(s, "corrupt-labels p=0.5");
  REQUIRE((truth && random && shuffled && gaussian && half));
  for (const auto& run : s.at("runs").elements()) {
    INFO(run.at("label").as_string());
    CHECK(run.at("fitted").as_bool());
    CHECK(run.at("train_acc").as_double() == 100.0);
    CHECK(run.at("steps_to_fit").as_int() == run.at("epochs").as_int() * 4);  // 500 images, batch 128
  }
  // Figure 1b: random labels take longer to fit than true ones (about 1.5x at this size).
  CHECK(random->at("steps_to_fit").as_int() > 1.2 * truth->at("steps_to_fit").as_double());
  CHECK(half->at("steps_to_fit").as_int() > truth->at("steps_to_fit").as_int());
  // Figure 1c: test accuracy on the true test labels falls with the corruption, to chance.
  CHECK(truth->at("test_acc").as_double() > 70);
  CHECK(half->at("test_acc").as_double() < truth->at("test_acc").as_double() - 10);
  CHECK(half->at("test_acc").as_double() > random->at("test_acc").as_double() + 20);
  CHECK(random->at("test_acc").as_double() < 20);
  CHECK(gaussian->at("test_acc").as_double() < 20);
  // A fully connected network cannot tell a fixed pixel permutation from the real images.
  CHECK(shuffled->at("test_acc").as_double() > 70);

  // metrics.csv: one row per epoch of every run; each run's last row is its fitted epoch.
  auto rows = apptest::read_csv(dir + "/metrics.csv");
  int64_t total = 0;
  for (const auto& run : s.at("runs").elements()) total += run.at("epochs").as_int();
  CHECK(int64_t(rows.size()) == total);
  for (size_t i = 0; i + 1 < rows.size(); ++i)
    if (rows[i]["run"] != rows[i + 1]["run"]) CHECK(std::stod(rows[i]["train_acc"]) == 100.0);
  // Zhang et al.'s decay, by steps: lr 0.01 * 0.95^(step before the epoch / 391).
  CHECK(std::stod(rows[0]["lr"]) == doctest::Approx(0.01));
  CHECK(std::stod(rows[10]["lr"]) == doctest::Approx(0.01 * std::pow(0.95, 40.0 / 391.0)));
  CHECK(apptest::file_exists(dir + "/results.md"));
  apptest::check_figure("randomization.py", dir, "randomization");
}

TEST_CASE("randomization: seeds are independent and aggregated, and a killed experiment resumes to the same results") {
  if (!testutil::fashion_mnist_or_skip()) return;
  const std::string cfg =
      "randomization --subset 300 --variants true-labels,gaussian --corruption 0.5 --epochs 3 "
      "--threads 1 --no-plot";
  auto same_run = [](const Json& a, const Json& b) {
    CHECK(a.at("seed").as_int() == b.at("seed").as_int());
    CHECK(a.at("label").as_string() == b.at("label").as_string());
    CHECK(a.at("train_loss").as_double() == b.at("train_loss").as_double());
    CHECK(a.at("test_acc").as_double() == b.at("test_acc").as_double());
  };
  apptest::TempDir both("randomization-seeds"), one("randomization-seed"), killed("randomization-killed");
  auto r2 = apptest::run_minima(cfg + " --seeds 3,7 --out " + both.path());
  INFO(r2.output);
  REQUIRE(r2.rc == 0);
  auto r1 = apptest::run_minima(cfg + " --seeds 7 --out " + one.path());
  INFO(r1.output);
  REQUIRE(r1.rc == 0);
  Json s2 = apptest::summary(both.path()), s1 = apptest::summary(one.path());
  REQUIRE(s2.at("runs").size() == 6);
  REQUIRE(s1.at("runs").size() == 3);
  // Seed 7's runs come after seed 3's, in the same variant order, and are bitwise the same as alone.
  for (size_t i = 0; i < 3; ++i) {
    CHECK(s2.at("runs")[i].at("seed").as_int() == 3);
    CHECK(s1.at("runs")[i].at("seed").as_int() == 7);
    same_run(s2.at("runs")[3 + i], s1.at("runs")[i]);
  }
  // Per variant: the mean and sample std of the two seeds' test accuracies.
  REQUIRE(s2.at("variants").size() == 3);
  for (size_t v = 0; v < 3; ++v) {
    const Json& agg = s2.at("variants")[v];
    double x = s2.at("runs")[v].at("test_acc").as_double(), y = s2.at("runs")[3 + v].at("test_acc").as_double();
    CHECK(agg.at("label").as_string() == s2.at("runs")[v].at("label").as_string());
    CHECK(agg.at("seeds").as_int() == 2);
    CHECK(agg.at("test_acc_mean").as_double() == doctest::Approx((x + y) / 2));
    CHECK(agg.at("test_acc_std").as_double() == doctest::Approx(std::abs(x - y) / std::sqrt(2.0)));
  }

  // The same experiment killed after 4 of its 6 runs, then resumed.
  auto k = apptest::run_minima(cfg + " --seeds 3,7 --halt-after-runs 4 --out " + killed.path());
  CHECK(k.rc != 0);
  CHECK(k.output.find("stopped after 4 runs") != std::string::npos);
  // Without --resume the directory is refused; with it the four finished runs are loaded.
  auto again = apptest::run_minima(cfg + " --seeds 3,7 --out " + killed.path());
  CHECK(again.rc != 0);
  CHECK(again.output.find("already holds an experiment; pass --resume") != std::string::npos);
  auto res = apptest::run_minima(cfg + " --seeds 3,7 --resume --out " + killed.path());
  INFO(res.output);
  REQUIRE(res.rc == 0);
  CHECK(res.output.find("resumed: 4 runs loaded, 2 trained") != std::string::npos);
  CHECK(read_file(both.path() + "/metrics.csv") == read_file(killed.path() + "/metrics.csv"));
  Json sk = apptest::summary(killed.path());
  REQUIRE(sk.at("runs").size() == 6);
  for (size_t i = 0; i < 6; ++i) same_run(sk.at("runs")[i], s2.at("runs")[i]);
  CHECK(sk.at("variants").dump() == s2.at("variants").dump());
  // An experiment is not resumed with other settings, and the refusal leaves its config.json as it was.
  const std::string config = read_file(killed.path() + "/config.json");
  auto other = apptest::run_minima(cfg + " --seeds 3,7 --resume --lr 0.02 --out " + killed.path());
  CHECK(other.rc != 0);
  CHECK(other.output.find("was started with other settings: --lr 0.01 (now 0.02)") != std::string::npos);
  CHECK(read_file(killed.path() + "/config.json") == config);
  apptest::check_rejects("randomization --seeds 1,1", "--seeds: 1 is listed twice");
  apptest::check_rejects("randomization --corruption 0.2,0.20", "--corruption: 0.2 is listed twice");
}

TEST_CASE("randomization: a run killed part-way continues from its checkpoint to the same results") {
  if (!testutil::fashion_mnist_or_skip()) return;
  // The true labels fit in about 25 epochs, the random ones in about 30: the kill lands inside the
  // second run, after its 12th epoch.
  const std::string cfg =
      "randomization --subset 100 --variants true-labels,random-labels --corruption 1 --epochs 80 --lr 0.05 "
      "--seeds 2 --threads 1 --no-plot";
  apptest::TempDir whole("randomization-whole"), killed("randomization-midrun");
  auto w = apptest::run_minima(cfg + " --out " + whole.path());
  INFO(w.output);
  REQUIRE(w.rc == 0);
  const Json sw = apptest::summary(whole.path());
  REQUIRE(sw.at("runs").size() == 2);
  const int64_t first_epochs = sw.at("runs")[0].at("epochs").as_int();
  REQUIRE(first_epochs < 40);
  REQUIRE(sw.at("runs")[1].at("epochs").as_int() > 12);

  auto k = apptest::run_minima(cfg + " --checkpoint-every 0 --halt-after " + std::to_string(first_epochs + 12) +
                               " --out " + killed.path());
  CHECK(k.rc != 0);
  CHECK(k.output.find("as --halt-after asked") != std::string::npos);
  const std::string ckpt = killed.path() + "/runs/seed2_random-labels.checkpoint.safetensors";
  REQUIRE(apptest::file_exists(ckpt));
  auto r = apptest::run_minima(cfg + " --resume --out " + killed.path());
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("random-labels, seed 2: resuming after epoch 12") != std::string::npos);
  CHECK(!apptest::file_exists(ckpt));  // removed once the run's file is written
  CHECK(read_file(whole.path() + "/metrics.csv") == read_file(killed.path() + "/metrics.csv"));
  const Json sk = apptest::summary(killed.path());
  for (size_t i = 0; i < 2; ++i)
    for (const char* field : {"epochs", "steps_to_fit", "train_loss", "train_acc", "test_acc", "test_loss"})
      CHECK(sk.at("runs")[i].at(field).dump() == sw.at("runs")[i].at(field).dump());

  // A checkpoint that records other settings than the run's (damaged, or copied from elsewhere)
  // is refused, naming the file, instead of being continued.
  apptest::TempDir other("randomization-other");
  const std::string cfg_other =
      "randomization --subset 100 --variants random-labels --corruption 1 --epochs 80 --lr 0.05 --seeds 2 "
      "--threads 1 --no-plot --out " +
      other.path();
  CHECK(apptest::run_minima(cfg_other + " --checkpoint-every 0 --halt-after 3").rc != 0);
  const std::string ck = other.path() + "/runs/seed2_random-labels.checkpoint.safetensors";
  REQUIRE(apptest::file_exists(ck));
  minima::nn::SafeTensors f = minima::nn::load_safetensors(ck);
  for (auto& kv : f.metadata)
    if (kv.first == "train_state") {
      Json ts = Json::parse(kv.second);
      ts["extra"]["settings"] = "{\"lr\":0.5}";
      kv.second = ts.dump(-1);
    }
  minima::nn::save_safetensors(ck, f.tensors, f.metadata);
  apptest::check_rejects(cfg_other + " --resume",
                         ck + " cannot continue this run (it was saved with other settings ({\"lr\":0.5}");
}

TEST_CASE("randomization: corruption 0 and 1 are the true- and random-label runs, and bad flags are rejected") {
  if (testutil::fashion_mnist_or_skip("only the bad flags checked")) {
    apptest::TempDir tmp("randomization-plan");
    auto r = apptest::run_minima(
        "randomization --subset 200 --variants true-labels --corruption 0,1 --epochs 1 --no-plot --out " + tmp.path());
    INFO(r.output);
    REQUIRE(r.rc == 0);
    Json s = apptest::summary(tmp.path());
    REQUIRE(s.at("runs").size() == 2);
    CHECK(s.at("runs")[0].at("kind").as_string() == "true-labels");
    CHECK(s.at("runs")[1].at("kind").as_string() == "random-labels");
    CHECK(s.at("runs")[1].at("corruption").as_double() == 1.0);
    CHECK(s.at("steps_per_epoch").as_int() == 2);  // 200 images, batch 128
    // Any batch size of at least 1 is taken: the largest is one batch of all 200 images (counting
    // the last partial batch as (n + batch - 1) / batch overflowed).
    apptest::TempDir huge("randomization-huge-batch");
    r = apptest::run_minima("randomization --subset 200 --variants true-labels --corruption '' --epochs 1 --batch " +
                            std::to_string(std::numeric_limits<int64_t>::max()) + " --no-plot --out " + huge.path());
    INFO(r.output);
    REQUIRE(r.rc == 0);
    s = apptest::summary(huge.path());
    CHECK(s.at("steps_per_epoch").as_int() == 1);
    REQUIRE(s.at("runs").size() == 1);
    CHECK(s.at("runs")[0].at("steps").as_int() == s.at("runs")[0].at("epochs").as_int());
  }
  apptest::check_rejects("randomization --variants corrupt-labels", "unknown randomization 'corrupt-labels'");
  apptest::check_rejects("randomization --variants noise", "unknown randomization 'noise'");
  apptest::check_rejects("randomization --corruption 0.5,1.5", "--corruption: probabilities must be in [0, 1]");
  // Corruption 0 is the true-labels run (merged above); the same level twice is a typo.
  apptest::check_rejects("randomization --corruption 0,1,0", "--corruption: 0 is listed twice");
  apptest::check_rejects("randomization --variants '' --corruption ''", "nothing to run");
  apptest::check_rejects("randomization --lr-decay 0", "--lr-decay must be in (0, 1]");
  apptest::check_rejects("randomization --fit-accuracy 0", "--fit-accuracy must be in (0, 100]");
  apptest::check_rejects("randomization --decay-steps 0", "--decay-steps must be at least 1");
  apptest::check_rejects("randomization --halt-after-runs -1", "--halt-after-runs must be >= 0");
}

// tests/crosscheck/randomization.py runs the same protocol in PyTorch (its own random draws for the
// init, labels, Gaussian images, batch order and crops). Single runs cannot match, so for every run
// the mean over four seeds of minima's figure must fall inside the range PyTorch's four seeds span,
// widened by one PyTorch standard deviation plus a margin (four seeds barely estimate a spread).
namespace {

// One figure per seed for every run, keyed as the PyTorch script names its runs: the variant
// ("corrupt-labels:0.5" for a corruption level), then " crop", " wd" or " crop+wd".
struct SeedFigures {
  std::map<std::string, std::vector<double>> steps, test, train;
};

std::string run_key(const std::string& variant, const std::string& regularizer) {
  return regularizer == "none" ? variant : variant + " " + regularizer;
}

bool torch_or_skip() {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1") == 0) return true;
  MESSAGE("skipped: /usr/bin/python3 cannot import torch and numpy, so there is no PyTorch reference");
  return false;
}

// `minima randomization ARGS --seeds 0,1,2,3 --threads 1` and the PyTorch script with TORCH_ARGS
// (it lists corruption levels among its variants, as corrupt-labels:P), each run's steps to fit
// (-1: not fitted), train and test accuracy.
void run_both(const std::string& args, const std::string& torch_args, SeedFigures& mine, SeedFigures& torch) {
  apptest::TempDir tmp("randomization-xc");
  auto r = apptest::run_minima("randomization " + args + " --seeds 0,1,2,3 --threads 1 --no-plot --out " + tmp.path());
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const Json summary = apptest::summary(tmp.path());
  for (const auto& run : summary.at("runs").elements()) {
    std::string kind = run.at("kind").as_string();
    if (kind == "corrupt-labels") {
      std::ostringstream p;
      p << run.at("p").as_double();
      kind += ":" + p.str();
    }
    const std::string key = run_key(kind, run.at("regularizer").as_string());
    mine.steps[key].push_back(run.at("steps_to_fit").as_double());
    mine.test[key].push_back(run.at("test_acc").as_double());
    mine.train[key].push_back(run.at("train_acc").as_double());
  }
  auto t = apptest::run_command("OMP_NUM_THREADS=1 /usr/bin/python3 " + std::string(MINIMA_SOURCE_DIR) +
                                "/tests/crosscheck/randomization.py " + torch_args + " --seeds 0,1,2,3 --threads 1");
  INFO(t.output);
  REQUIRE(t.rc == 0);
  size_t start = t.output.find("{\n");
  REQUIRE(start != std::string::npos);
  const Json theirs = Json::parse(t.output.substr(start));
  for (const auto& run : theirs.at("runs").elements()) {
    const std::string key = run_key(run.at("variant").as_string(), run.at("regularizer").as_string());
    torch.steps[key].push_back(run.at("steps_to_fit").as_double());
    torch.test[key].push_back(run.at("test_acc").as_double());
    torch.train[key].push_back(run.at("train_acc").as_double());
  }
}

// minima's mean over the seeds of one figure of one run inside PyTorch's spread (see above).
void check_spread(const std::map<std::string, std::vector<double>>& mine,
                  const std::map<std::string, std::vector<double>>& torch, const std::string& key,
                  const std::string& what, double margin) {
  REQUIRE(mine.count(key));
  REQUIRE(torch.count(key));
  REQUIRE(mine.at(key).size() == 4);
  REQUIRE(torch.at(key).size() == 4);
  apptest::SeedSpread sp = apptest::seed_spread(mine.at(key), torch.at(key), margin);
  INFO(key, " ", what, ": minima mean ", sp.mine_mean, ", PyTorch mean ", sp.their_mean, " (accepted ", sp.lo, " .. ",
       sp.hi, ")");
  CHECK(sp.ok());
  MESSAGE(key, " ", what, ": minima ", sp.mine_mean, " PyTorch ", sp.their_mean, " (accepted ", sp.lo, " .. ", sp.hi,
          ")");
}

double mean(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x / double(v.size());
  return m;
}

}  // namespace

// Measured when written, means over seeds 0-3 of the steps to fit for true labels, random labels,
// p = 0.5 and Gaussian images: 187 / 297 / 284 / 100 (minima) against 182 / 288 / 299 / 92
// (PyTorch); test accuracy 78.6 / 9.0 / 53.3 / 10.0 % against 78.8 / 10.2 / 51.7 / 9.2 %. Margins:
// 5 % of the steps, half a point of accuracy.
TEST_CASE("randomization: steps to fit and test accuracy agree with the PyTorch version of the protocol") {
  if (!torch_or_skip() || !testutil::fashion_mnist_or_skip()) return;
  SeedFigures mine, torch;
  run_both("--subset 500 --variants true-labels,random-labels,gaussian --corruption 0.5",
           "--subset 500 --variants true-labels,random-labels,corrupt-labels:0.5,gaussian", mine, torch);
  REQUIRE(mine.test.size() == 4);  // four runs of each seed, no other
  REQUIRE(torch.test.size() == 4);
  for (const char* key : {"true-labels", "random-labels", "corrupt-labels:0.5", "gaussian"}) {
    for (double s : mine.steps[key]) CHECK(s > 0);  // every run fits
    for (double s : torch.steps[key]) CHECK(s > 0);
    check_spread(mine.steps, torch.steps, key, "steps to fit", 0.05 * mean(torch.steps[key]));
    check_spread(mine.test, torch.test, key, "test accuracy", 0.5);
  }
}

// Table 1's regularizers on the same footing: random crops (padding 4) keep the MLP from fitting
// in 60 epochs, to about the same training accuracy in both, and weight decay fits in about the
// same steps. Measured when written (means over seeds 0-3, minima against PyTorch): with crops
// 79.4 against 79.6 % training and 71.8 against 72.1 % test accuracy; with weight decay 189
// against 184 steps to fit and 78.7 against 78.8 % test accuracy. Margins: 5 % of the steps, half
// a point of test accuracy, a point of training accuracy.
TEST_CASE("randomization: random crops and weight decay agree with the PyTorch version (Table 1)") {
  if (!torch_or_skip() || !testutil::fashion_mnist_or_skip()) return;
  SeedFigures mine, torch;
  const std::string shared =
      "--subset 500 --variants true-labels --regularizers crop,wd --weight-decay 5e-4 --epochs 60";
  run_both(shared + " --corruption ''", shared, mine, torch);
  REQUIRE(mine.test.size() == 2);
  REQUIRE(torch.test.size() == 2);
  for (double s : mine.steps["true-labels crop"]) CHECK(s == -1);
  for (double s : torch.steps["true-labels crop"]) CHECK(s == -1);
  check_spread(mine.train, torch.train, "true-labels crop", "training accuracy", 1.0);
  check_spread(mine.test, torch.test, "true-labels crop", "test accuracy", 0.5);
  for (double s : mine.steps["true-labels wd"]) CHECK(s > 0);
  check_spread(mine.steps, torch.steps, "true-labels wd", "steps to fit", 0.05 * mean(torch.steps["true-labels wd"]));
  check_spread(mine.test, torch.test, "true-labels wd", "test accuracy", 0.5);
}

TEST_CASE("randomization: a damaged run file, a bad --arch or a one-sample batch fail cleanly, claiming nothing") {
  if (!testutil::fashion_mnist_or_skip()) return;
  const std::string cfg =
      "randomization --subset 100 --variants true-labels --corruption '' --epochs 1 --threads 1 --no-plot";
  apptest::TempDir tmp("randomization-damaged");
  const std::string out = tmp.path() + "/run";
  auto r = apptest::run_minima(cfg + " --out " + out);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const std::string file = out + "/runs/seed0_true-labels.json";
  REQUIRE(apptest::file_exists(file));
  Json j = Json::parse(read_file(file));
  auto damaged = [&](const Json& rows, const std::string& expected) {
    Json k = j;
    k["rows"] = rows;
    write_file_atomic(file, k.dump() + "\n");
    apptest::check_rejects(cfg + " --resume --out " + out, "--resume: " + file + " is damaged (" + expected);
  };
  Json empty_row = Json::array();
  empty_row.push_back(Json::array());
  damaged(empty_row, "a metrics row must be an array of 9 strings, got []");  // used to crash
  Json numbers = Json::array();
  numbers.push_back(Json(std::vector<int64_t>{0, 0, 0, 0, 0, 0, 0, 0, 0}));
  damaged(numbers, "json: expected a string");
  damaged(Json("rows"), "\"rows\" must be an array");

  // Flags found bad only once the data is loaded still fail before --out is claimed.
  apptest::check_rejects(cfg + " --arch bogus --out " + tmp.path() + "/bogus", "unknown architecture 'bogus'");
  CHECK(!apptest::file_exists(tmp.path() + "/bogus/config.json"));
  // 101 images in batches of 100 leave a batch of one, on which batch norm cannot train.
  apptest::check_rejects(
      "randomization --subset 101 --batch 100 --arch mlp-bn --variants true-labels --corruption '' --epochs 1 "
      "--no-plot --out " +
          tmp.path() + "/bn",
      "101 training samples in batches of 100 make a batch of one sample");
  CHECK(!apptest::file_exists(tmp.path() + "/bn/config.json"));
  // One batch per epoch at lr 1e308: the training loss, summed before the update, is finite; the
  // loss on the training set after it is not, and the run stops there.
  apptest::check_rejects(cfg + " --lr 1e308 --out " + tmp.path() + "/diverged",
                         "training diverged at epoch 1 (training loss 2.");
  apptest::check_rejects(cfg + " --lr 1e308 --out " + tmp.path() + "/diverged2",
                         ", loss on the training set nan); try a smaller --lr");
}

// Zhang et al.'s Table 1: the explicit regularizers as a second axis of the runs. Weight decay is
// the wd runs' alone, random crops make random labels far harder to fit, and results.md lays the
// accuracies out as the paper's table.
TEST_CASE("randomization: --regularizers runs every variant with crops, weight decay or both (Table 1)") {
  // Bad combinations are refused before any data is read, so these run with or without the dataset.
  apptest::check_rejects("randomization --regularizers none,dropout", "unknown regularizer 'dropout'");
  apptest::check_rejects("randomization --regularizers none,wd", "which is 0: give it a value");
  apptest::check_rejects("randomization --regularizers none,crop --weight-decay 1e-3",
                         "would also train the runs of --regularizers none and crop with weight decay");
  apptest::check_rejects("randomization --regularizers ''", "--regularizers: give at least one");
  // Gaussian images are whitened once, so no crop of theirs can be (28x28 Fashion-MNIST: padded crops).
  apptest::check_rejects("randomization --zhang-preprocessing --variants gaussian --corruption '' --regularizers crop",
                         "cannot run the gaussian variant");
  if (!testutil::fashion_mnist_or_skip("only the bad flags checked")) return;
  apptest::TempDir tmp("randomization-table1");
  const std::string dir = tmp.path() + "/run";
  auto r = apptest::run_minima(
      "randomization --subset 300 --variants true-labels,random-labels --corruption '' "
      "--regularizers none,crop,wd,crop+wd --weight-decay 5e-4 --epochs 150 --no-plot --out " +
      dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  REQUIRE(s.at("runs").size() == 8);
  CHECK(s.at("regularizers").size() == 4);
  for (const char* kind : {"true-labels", "random-labels"}) {
    const Json* none = find_run(s, kind);
    const Json* crop = find_run(s, std::string(kind) + " with crop");
    const Json* wd = find_run(s, std::string(kind) + " with wd");
    const Json* both = find_run(s, std::string(kind) + " with crop+wd");
    REQUIRE((none && crop && wd && both));
    CHECK(none->at("regularizer").as_string() == "none");
    CHECK(both->at("regularizer").as_string() == "crop+wd");
    // Without crops the MLP fits either labelling, weight decay or not.
    CHECK(none->at("fitted").as_bool());
    CHECK(wd->at("fitted").as_bool());
    // Each run file records the weight decay its run trained with: --weight-decay for the wd runs only.
    for (const Json* run : {none, crop, wd, both}) {
      const std::string label = run->at("label").as_string();
      std::string name = "seed0_" + label;
      std::replace(name.begin(), name.end(), ' ', '_');
      std::replace(name.begin(), name.end(), '+', '_');
      Json file = Json::parse(read_file(dir + "/runs/" + name + ".json"));
      INFO(label);
      CHECK(file.at("settings").at("weight_decay").as_double() == (run == wd || run == both ? 5e-4 : 0.0));
    }
  }
  // Random crops: a 28x28 image shifted by up to 4 pixels each epoch is a new point for an MLP, so
  // random labels are not fitted in 150 epochs, where the plain run fits them.
  const Json* random_crop = find_run(s, "random-labels with crop");
  CHECK(!random_crop->at("fitted").as_bool());
  CHECK(random_crop->at("train_acc").as_double() < 80);
  // The runs differ: weight decay changes the trajectory (from the same init and batches).
  auto rows = apptest::read_csv(dir + "/metrics.csv");
  auto losses = [&](const std::string& label) {
    size_t index = 0;
    while (s.at("runs")[index].at("label").as_string() != label) ++index;
    std::vector<std::string> out;
    for (const auto& row : rows)
      if (row.at("run") == std::to_string(index)) out.push_back(row.at("train_loss"));
    return out;
  };
  CHECK(losses("true-labels").size() > 1);
  CHECK(losses("true-labels") != losses("true-labels with wd"));
  // results.md: Table 1's layout, a row per randomization and train / test per regularizer.
  const std::string md = read_file(dir + "/results.md");
  CHECK(md.find("| randomization | none | crop | wd | crop+wd |") != std::string::npos);
  CHECK(md.find("\n| true-labels | 100.00 / ") != std::string::npos);
  CHECK(md.find("\n| random-labels | 100.00 / ") != std::string::npos);
  CHECK(md.find("weight decay 0.0005 in the wd runs (0 in the others)") != std::string::npos);
  apptest::check_figure("randomization.py", dir, "randomization");
  apptest::check_figure("randomization.py", dir, "regularization");  // Table 1's figure, with --regularizers

  // A resume may add regularizers: the finished runs load, the new ones train.
  r = apptest::run_minima(
      "randomization --subset 300 --variants true-labels,random-labels --corruption '' "
      "--regularizers none,wd --weight-decay 5e-4 --epochs 150 --no-plot --resume --out " +
      dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("resumed: 4 runs loaded, 0 trained") != std::string::npos);
  // Another weight decay is another experiment for the wd runs (the none runs would still load).
  apptest::check_rejects(
      "randomization --subset 300 --variants true-labels,random-labels --corruption '' "
      "--regularizers none,wd --weight-decay 1e-3 --epochs 150 --no-plot --resume --out " +
          dir,
      "with_wd.json was trained with other settings");
}

// With --zhang-preprocessing on 32x32 images, crop is Zhang et al.'s: random 28x28 windows of the
// whole image in training, the center window for the fit check and the test. Generated CIFAR-10
// files in the real binary layout (3073-byte records: label, then 3072 pixels).
TEST_CASE("randomization: Zhang et al.'s random 28x28 crops of 32x32 images") {
  apptest::TempDir tmp("randomization-zhang-crop");
  const std::string data = tmp.path() + "/cifar10";
  std::filesystem::create_directories(data);
  Generator g(5);
  for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                           "data_batch_5.bin", "test_batch.bin"}) {
    std::string bytes(size_t(60 * 3073), '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(g.below(256));
    for (size_t k = 0; k < 60; ++k) bytes[k * 3073] = char(k % 10);
    write_file_atomic(data + "/" + name, bytes);
  }
  const std::string cfg = "randomization --dataset cifar10 --data-dir " + data +
                          " --subset 200 --zhang-preprocessing --corruption '' --regularizers none,crop --epochs 3 "
                          "--no-plot";
  const std::string dir = tmp.path() + "/run";
  auto r = apptest::run_minima(cfg + " --variants true-labels,shuffled-pixels --out " + dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  REQUIRE(s.at("runs").size() == 4);
  CHECK(read_file(dir + "/results.md").find("crop: random 28x28 windows of the 32x32 images") != std::string::npos);
  // The same init and batch order: only the windows differ, so the losses do.
  auto rows = apptest::read_csv(dir + "/metrics.csv");
  REQUIRE(rows.size() == 12);
  for (size_t e = 0; e < 3; ++e) CHECK(rows[e].at("train_loss") != rows[3 + e].at("train_loss"));
  // Gaussian images are whitened once, as float images, so they cannot follow a random window.
  apptest::check_rejects(cfg + " --variants gaussian --out " + tmp.path() + "/gauss",
                         "--regularizers crop with --zhang-preprocessing cannot run the gaussian variant");
}
