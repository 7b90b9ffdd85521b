// tests/apps/test_adversarial_init.cpp: `minima adversarial-init` end to end on a tiny
// configuration (both phases, two setups, both inits), its resume behaviour, its outputs and its
// flag errors. The full-size claim (vanilla from the adversarial init tests worse) is measured by
// the experiment itself, not here: a test this small has no statistical power for it.
#include <doctest/doctest.h>

#include "tests/apps/app_test_util.h"

using namespace apptest;

namespace {
const char* kTiny =
    "adversarial-init --arch mlp --subset 60 --replication 2 --seeds 0 --epochs 2 --adv-epochs 3 "
    "--adv-check-every 1 --eval-every 1 --complexity-every 1 --threads 1 --no-plot --batch 32";
}

TEST_CASE("adversarial-init: a tiny run writes every phase, run and table, and --resume skips finished runs") {
  std::string out = temp_dir("advinit");
  Run r = run_minima(std::string(kTiny) + " --out " + out);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  for (const char* f : {"config.json", "summary.json", "results.md", "phase1/seed0-R2/summary.json",
                        "phase1/seed0-R2/adversarial_init.safetensors", "runs/random-vanilla-seed0/metrics.csv",
                        "runs/adversarial-sota-seed0-R2/final.safetensors"})
    CHECK_MESSAGE(file_exists(out + "/" + f), f);
  minima::Json s = summary(out);
  REQUIRE(s.at("runs").size() == 4);
  for (const auto& run : s.at("runs").elements()) {
    double test = run.at("test_acc").as_double(), train = run.at("train_acc").as_double();
    CHECK(test >= 0.0);
    CHECK(test <= 100.0);
    CHECK(train >= 0.0);
    CHECK(run.at("frobenius_sq").as_double() > 0.0);
    CHECK(run.at("l2_path_norm").as_double() > 0.0);
    CHECK(run.at("dist_from_init").as_double() > 0.0);  // SGD moved the weights
  }
  // Phase 1 trained on C = 2 x 60 images; its metrics have one row per epoch with the accuracy on C.
  auto p1 = read_csv(out + "/phase1/seed0-R2/metrics.csv");
  CHECK(p1.size() == 3);
  CHECK(summary(out + "/phase1/seed0-R2").at("C_size").as_int() == 120);
  auto rows = read_csv(out + "/runs/adversarial-vanilla-seed0-R2/metrics.csv");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].count("log10_spectral_product") == 1);

  // Without --resume the finished experiment is protected; with it every run is skipped and the
  // summary is unchanged.
  Run again = run_minima(std::string(kTiny) + " --out " + out);
  CHECK(again.rc != 0);
  CHECK(again.output.find("--resume") != std::string::npos);
  Run resumed = run_minima(std::string(kTiny) + " --resume --out " + out);
  INFO(resumed.output);
  REQUIRE(resumed.rc == 0);
  CHECK(resumed.output.find("done earlier, skipped") != std::string::npos);
  minima::Json s2 = summary(out);
  for (size_t i = 0; i < s.at("runs").size(); ++i)
    CHECK(s2.at("runs")[i].at("test_acc").as_double() == s.at("runs")[i].at("test_acc").as_double());
}

TEST_CASE("adversarial-init: a run killed mid-way resumes from its checkpoint to the same result") {
  std::string a = temp_dir("advinit-a"), b = temp_dir("advinit-b");
  const char* cfg =
      "adversarial-init --arch mlp --subset 40 --replication 2 --seeds 1 --epochs 3 --adv-epochs 2 "
      "--setups vanilla --inits adversarial,random --threads 1 --no-plot --batch 16 --eval-every 1";
  REQUIRE(run_minima(std::string(cfg) + " --out " + a).rc == 0);
  // Stopped after 2 of the first run's 3 epochs: its checkpoint holds epoch 2.
  Run halted = run_minima(std::string(cfg) + " --halt-after 2 --out " + b);
  CHECK(halted.rc != 0);
  CHECK(!file_exists(b + "/runs/adversarial-vanilla-seed1-R2/summary.json"));
  Run r = run_minima(std::string(cfg) + " --resume --out " + b);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("resuming after epoch 2") != std::string::npos);
  for (const char* run : {"/runs/adversarial-vanilla-seed1-R2", "/runs/random-vanilla-seed1"}) {
    minima::Json sa = summary(a + run), sb = summary(b + run);
    CHECK(sa.at("test_acc").as_double() == sb.at("test_acc").as_double());
    CHECK(sa.at("test_loss").as_double() == sb.at("test_loss").as_double());
    CHECK(sa.at("l1_path_norm").as_double() == sb.at("l1_path_norm").as_double());
  }
  CHECK(read_csv(b + "/runs/adversarial-vanilla-seed1-R2/metrics.csv").size() == 3);
}

TEST_CASE("adversarial-init: bad flags give clear errors") {
  check_rejects("adversarial-init --setups vanilla,foo --out /tmp/x", "unknown setup 'foo'");
  check_rejects("adversarial-init --inits random,bad --out /tmp/x", "unknown init 'bad'");
  check_rejects("adversarial-init --replication 0 --out /tmp/x", "--replication");
  check_rejects("adversarial-init --zero-out 1.5 --out /tmp/x", "--zero-out");
  check_rejects("adversarial-init --adv-schedule cosine --out /tmp/x", "--adv-schedule");
  check_rejects("adversarial-init --arch nonet --out /tmp/x", "unknown architecture");
}
