// tests/apps/test_memorization.cpp: `minima toy2d` (bad global minima in 2-D) and `minima memorize`
// (Zhang et al.'s construction) on small configurations, asserting the claims they demonstrate,
// plus their rejection of bad flags.
#include <cmath>

#include "app_test_util.h"
#include "data/dataset.h"
#include "fashion_mnist.h"

using namespace minima;

TEST_CASE("toy2d: all three runs fit the training set and the adversarial init tests worst over three seeds") {
  apptest::TempDir tmp("toy2d");
  const std::string& dir = tmp.path();
  auto r = apptest::run_minima("toy2d --seed 0 --repeats 3 --grid 80 --eval-per-class 2000 --no-plot --out " + dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  // (c) regularizes with the official toy code's weight decay of 0.1 by default (it was 5e-4).
  const Json flags = Json::parse(minima::read_file(dir + "/config.json")).at("flags");
  CHECK(flags.at("weight-decay").as_double() == 0.1);
  CHECK(flags.at("momentum").as_double() == 0.9);
  const char* runs[3] = {"a_random_init", "b_adversarial_init", "c_adversarial_init_regularized"};
  REQUIRE(s.at("per_seed").size() == 3);
  for (const auto& seed : s.at("per_seed").elements()) {
    INFO("seed ", seed.at("seed").as_int());
    CHECK(seed.at("pretrain_random_label_acc").as_double() == 1.0);
    for (const char* run : runs) {
      INFO(run);
      CHECK(seed.at(run).at("train_acc").as_double() == 1.0);
      CHECK(seed.at(run).at("first_100_percent_epoch").as_int() >= 1);
    }
  }
  // Means over the seeds: (b) has the lowest test accuracy (and expected accuracy on a large fresh
  // sample) and the longest decision boundary.
  auto mean = [&](const char* run, const char* key) { return s.at(run).at(key).as_double(); };
  CHECK(mean("b_adversarial_init", "test_acc") < mean("a_random_init", "test_acc"));
  CHECK(mean("b_adversarial_init", "test_acc") < mean("c_adversarial_init_regularized", "test_acc"));
  CHECK(mean("b_adversarial_init", "expected_acc") < mean("a_random_init", "expected_acc") - 0.01);
  CHECK(mean("b_adversarial_init", "expected_acc") < mean("c_adversarial_init_regularized", "expected_acc") - 0.01);
  CHECK(mean("b_adversarial_init", "boundary_length") > 1.5 * mean("a_random_init", "boundary_length"));
  auto grid = apptest::read_csv(dir + "/grid.csv");
  CHECK(grid.size() == 80 * 80);
  apptest::check_figure("toy2d.py", dir, "toy2d");
}

TEST_CASE("toy2d rejects bad flags") {
  apptest::check_rejects("toy2d --pre-optimizer rmsprop", "--pre-optimizer must be adam or sgd");
  apptest::check_rejects("toy2d --std 0", "--std must be positive");
  apptest::check_rejects("toy2d --repeats 0", "--repeats must be at least 1");
  // A loss of 0 or below is never reached: the random-label phase used to run all --pre-epochs.
  apptest::check_rejects("toy2d --pre-loss 0", "--pre-loss must be positive");
  // Sizes that used to run for hours (or forever) instead of failing.
  apptest::check_rejects("toy2d --grid 100000000", "--grid must be in [10, 1000], got 100000000");
  apptest::check_rejects("toy2d --aug-copies 4611686018427387904", "--aug-copies must be at most 100");
  apptest::check_rejects("toy2d --per-class 4611686018427387904",
                         "--per-class and --eval-per-class must be at most 1000000, got 4611686018427387904 and 5000");
  apptest::check_rejects("toy2d --eval-per-class 4611686018427387904",
                         "--per-class and --eval-per-class must be at most 1000000, got 50 and 4611686018427387904");
  apptest::check_rejects("toy2d --hidden 100000000", "--hidden must be at most 4096, got 100000000");
  // seed + 1 used to overflow (undefined behaviour) for the second repeat.
  apptest::check_rejects("toy2d --seed 9223372036854775807 --repeats 2",
                         "--seed 9223372036854775807 with --repeats 2 runs seeds past the largest 64-bit integer");
}

TEST_CASE("toy2d stops with an error when training diverges, and refuses data far off the plane's scale") {
  apptest::TempDir tmp("toy2d_diverged");
  const std::string cfg =
      "toy2d --repeats 1 --per-class 5 --eval-per-class 10 --hidden 4 --epochs 5 --pre-epochs 5 "
      "--grid 10 --no-plot --out " +
      tmp.path();
  // These used to finish with nan losses and exit 0.
  apptest::check_rejects(cfg + "/a --lr 1e308",
                         "toy2d: run (a) of seed 0 diverged at epoch 1 (loss nan); try a smaller --lr");
  apptest::check_rejects(cfg + "/a2 --lr 1e308", "); try a smaller --lr");
  apptest::check_rejects(cfg + "/pre --pre-lr 1e308",
                         "toy2d: the random-label phase of seed 0 diverged at epoch 1 (loss ");
  apptest::check_rejects(cfg + "/b --finetune-lr 1e308", "toy2d: run (b) of seed 0 diverged at epoch 1");
  apptest::check_rejects(cfg + "/sep --separation 1e308",
                         "--separation, --std and --aug-std must be at most 1000, got 1e+308, 0.25 and 0.1");
  CHECK(!apptest::file_exists(tmp.path() + "/sep/config.json"));
  apptest::check_rejects(cfg + "/std --std 1e308", "--separation, --std and --aug-std must be at most 1000");
}

TEST_CASE("memorize: the 2n+d-weight construction fits random labels exactly") {
  if (!testutil::fashion_mnist_or_skip()) return;
  apptest::TempDir tmp("memorize");
  const std::string& dir = tmp.path();
  auto r =
      apptest::run_minima("memorize --n 5000 --sgd-n 300 --widths 4,64 --epochs 150 --seed 2 --no-plot --out " + dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  const Json& c = s.at("construction");
  CHECK(c.at("n").as_int() == 5000);
  CHECK(c.at("weights").as_int() == 2 * 5000 + 784);
  CHECK(c.at("train_acc").as_double() == 1.0);
  CHECK(c.at("max_abs_error").as_double() < 1e-3);
  // Random labels carry nothing about the true test labels.
  CHECK(c.at("test_acc_true_labels").as_double() < 0.2);
  CHECK(s.at("construction_on_sgd_subset").at("train_acc").as_double() == 1.0);
  // SGD: a wide network memorizes the 300 random labels, a width-4 one cannot within the budget.
  const Json& sgd = s.at("sgd");
  REQUIRE(sgd.size() == 2);
  CHECK(sgd[0].at("train_acc").as_double() < 1.0);
  CHECK(sgd[1].at("train_acc").as_double() == 1.0);
  CHECK(s.at("sgd_min_width_100_percent").as_int() == 64);
  apptest::check_figure("memorize.py", dir, "memorize");
}

TEST_CASE("memorize rejects bad flags") {
  apptest::check_rejects("memorize --n 100 --sgd-n 200", "--sgd-n must be in [0, n]");
  apptest::check_rejects("memorize --widths 8,0", "--widths must be in [1, 100000], got 0");
  apptest::check_rejects("memorize --widths 2,4,2", "--widths: 2 is listed twice");
  apptest::check_rejects("memorize --n 0", "--n must be positive");
  // An empty list used to train nothing and draw an empty figure.
  apptest::check_rejects("memorize --widths ''", "--widths needs at least one width");
  apptest::check_rejects("memorize --widths ,", "--widths has an empty item in ','");
  // A width whose weight matrix has more than 2^64 elements used to wrap around and crash.
  apptest::check_rejects("memorize --widths 4611686018427387904",
                         "--widths must be in [1, 100000], got 4611686018427387904");
  // The data is read, and --n checked against it, before --out is claimed: a run that failed
  // there used to leave a config.json behind, and the rerun was refused as "already holds a run".
  apptest::TempDir claimed("memorize_claimed");
  const std::string cfg = "memorize --n 20 --sgd-n 10 --widths 2 --epochs 1 --no-plot --out " + claimed.path() + "/run";
  apptest::check_rejects(cfg + " --data-dir /nonexistent", "data directory /nonexistent does not exist");
  CHECK(!apptest::file_exists(claimed.path() + "/run/config.json"));
  if (!testutil::fashion_mnist_or_skip("divergence and --n against the data not checked")) return;
  // An SGD run whose loss turned nan used to be reported as a width that never fits.
  {
    apptest::TempDir tmp("memorize_diverged");
    apptest::check_rejects("memorize --n 20 --sgd-n 10 --widths 2 --epochs 1 --no-plot --lr 1e308 --out " + tmp.path(),
                           "memorize: SGD on width 2 diverged at epoch 1 (training loss nan); try a smaller --lr");
  }
  apptest::check_rejects("memorize --n 70000 --sgd-n 10 --widths 2 --epochs 1 --no-plot --out " + claimed.path() +
                             "/run",
                         "--n 70000 exceeds the 60000 images of fashion-mnist/train");
  CHECK(!apptest::file_exists(claimed.path() + "/run/config.json"));
}
