// tests/apps/test_adversarial_init.cpp: `minima adversarial-init` end to end on a tiny
// configuration (both phases, two setups, both inits), its resume behaviour, its outputs and its
// flag errors. The full-size claim (vanilla from the adversarial init tests worse) is measured by
// the experiment itself, not here: a test this small has no statistical power for it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/random.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tests/apps/app_test_util.h"
#include "tests/fashion_mnist.h"

using namespace apptest;

namespace {
const char* kTiny =
    "adversarial-init --arch mlp --subset 60 --replication 2 --seeds 0 --epochs 2 --adv-epochs 3 "
    "--adv-check-every 1 --eval-every 1 --complexity-every 1 --threads 1 --no-plot --batch 32";
}

TEST_CASE("adversarial-init: a tiny run writes every phase, run and table, and --resume skips finished runs") {
  TempDir dir("advinit");
  const std::string& out = dir.path();
  Run r = run_minima(std::string(kTiny) + " --out " + out);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  for (const char* f : {"config.json", "summary.json", "results.md", "phase1/seed0-R2/summary.json",
                        "phase1/seed0-R2/adversarial_init.safetensors", "runs/random-vanilla-seed0/metrics.csv",
                        "runs/adversarial-sota-seed0-R2/final.safetensors", "runs/random-M+L2-seed0/summary.json"})
    CHECK_MESSAGE(file_exists(out + "/" + f), f);
  minima::Json s = summary(out);
  REQUIRE(s.at("runs").size() == 6);  // two inits x the default setups vanilla, sota, M+L2
  for (const auto& run : s.at("runs").elements()) {
    double test = run.at("test_acc").as_double(), train = run.at("train_acc").as_double();
    CHECK(test >= 0.0);
    CHECK(test <= 100.0);
    CHECK(train >= 0.0);
    CHECK(run.at("frobenius_sq").as_double() > 0.0);
    CHECK(run.at("l2_path_norm").as_double() > 0.0);
    CHECK(run.at("dist_from_init").as_double() > 0.0);  // SGD moved the weights
    CHECK(run.at("diverged_at_epoch").is_null());
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
  TempDir da("advinit-a"), db("advinit-b");
  const std::string &a = da.path(), &b = db.path();
  const char* cfg =
      "adversarial-init --arch mlp --subset 40 --replication 2 --seeds 1 --epochs 3 --adv-epochs 2 "
      "--setups vanilla --inits adversarial,random --threads 1 --no-plot --batch 16 --eval-every 1";
  REQUIRE(run_minima(std::string(cfg) + " --out " + a).rc == 0);
  // Stopped after 2 of the first run's 3 epochs, checkpointing after every epoch: its checkpoint
  // holds epoch 2.
  Run halted = run_minima(std::string(cfg) + " --checkpoint-every 0 --halt-after 2 --out " + b);
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

  // With checkpoints far apart, the run stopped after 2 epochs saved none: the resume trains it
  // again from the start, drops the two rows it had logged, and still ends with the same numbers.
  TempDir dc("advinit-c");
  const std::string& c = dc.path();
  Run far = run_minima(std::string(cfg) + " --checkpoint-every 1e6 --halt-after 2 --out " + c);
  CHECK(far.rc != 0);
  const std::string first = c + "/runs/adversarial-vanilla-seed1-R2";
  CHECK(!file_exists(first + "/checkpoint.safetensors"));
  CHECK(read_csv(first + "/metrics.csv").size() == 2);
  Run rc = run_minima(std::string(cfg) + " --checkpoint-every 1e6 --resume --out " + c);
  INFO(rc.output);
  REQUIRE(rc.rc == 0);
  CHECK(rc.output.find("resuming after epoch") == std::string::npos);
  for (const char* run : {"/runs/adversarial-vanilla-seed1-R2", "/runs/random-vanilla-seed1"}) {
    minima::Json sa = summary(a + run), sc = summary(c + run);
    CHECK(sa.at("test_acc").as_double() == sc.at("test_acc").as_double());
    CHECK(sa.at("test_loss").as_double() == sc.at("test_loss").as_double());
    CHECK(sa.at("l1_path_norm").as_double() == sc.at("l1_path_norm").as_double());
  }
  const auto rows_a = read_csv(a + "/runs/adversarial-vanilla-seed1-R2/metrics.csv");
  const auto rows_c = read_csv(first + "/metrics.csv");
  REQUIRE(rows_c.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(rows_a[i].at("train_loss") == rows_c[i].at("train_loss"));
    CHECK(rows_a[i].at("test_acc") == rows_c[i].at("test_acc"));
  }
  check_rejects(std::string(cfg) + " --checkpoint-every -1 --out " + c + "/other",
                "--checkpoint-every must be >= 0 seconds, got -1");
}

TEST_CASE("adversarial-init: a run that diverges is recorded as diverged and the experiment goes on") {
  // lr 1e4 blows the MLP's loss up to inf/NaN within the first epoch of phase 2; phase 1 keeps a
  // sane lr. Both phase-2 runs must still finish the experiment, each marked in its summary.
  TempDir out("advinit-div");
  Run r = run_minima(
      "adversarial-init --arch mlp --subset 40 --replication 2 --seeds 0 --epochs 3 --adv-epochs 2 --lr 1e4 "
      "--setups vanilla --threads 1 --no-plot --batch 16 --out " +
      out.path());
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("diverged at epoch") != std::string::npos);
  minima::Json s = summary(out.path());
  REQUIRE(s.at("runs").size() == 2);
  for (const auto& run : s.at("runs").elements()) {
    CHECK(run.at("diverged_at_epoch").as_int() >= 1);
    CHECK(run.at("frobenius_sq").is_null());
    CHECK(run.at("test_acc").as_double() >= 0.0);
  }
  CHECK(minima::read_file(out.path() + "/results.md").find("1 of 1 runs diverged") != std::string::npos);

  // One batch per epoch and lr 1e308: the training loss, summed before the update, stays finite,
  // and only the test loss after it shows the weights gone. Such a run used to count as finished.
  TempDir one("advinit-div1");
  r = run_minima(
      "adversarial-init --arch mlp --subset 16 --replication 2 --seeds 0 --epochs 1 --adv-epochs 1 --lr 1e308 "
      "--setups vanilla --inits random --threads 1 --no-plot --batch 16 --out " +
      one.path());
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("diverged at epoch 1 (test loss nan); recorded as diverged") != std::string::npos);
  s = summary(one.path());
  REQUIRE(s.at("runs").size() == 1);
  CHECK(s.at("runs")[0].at("diverged_at_epoch").as_int() == 1);

  // Phase 1 has nothing to record instead: its weights are the experiment's input, so it fails.
  TempDir p1("advinit-div-p1");
  r = run_minima(
      "adversarial-init --arch mlp --subset 8 --replication 2 --seeds 0 --epochs 1 --adv-epochs 3 "
      "--adv-check-every 1 --adv-lr 1e308 --setups vanilla --threads 1 --no-plot --batch 16 --out " +
      p1.path());
  INFO(r.output);
  CHECK(r.rc != 0);
  CHECK(r.output.find("error: phase 1 diverged at epoch 1 (loss on C nan); try a smaller --adv-lr") !=
        std::string::npos);
}

TEST_CASE("adversarial-init: the paper's command line (ResNet18, CIFAR-10 files, official schedule) runs end to end") {
  // The six CIFAR-10 binary files with 4 records each (label byte + 3072 pixel bytes), random pixels.
  TempDir data("advinit-cifar");
  minima::Generator g(11);
  const char* files[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                          "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
  for (int f = 0; f < 6; ++f) {
    std::string bytes;
    for (int r = 0; r < 4; ++r) {
      bytes += char((f * 4 + r) % 10);
      for (int i = 0; i < 3072; ++i) bytes += char(g.below(256));
    }
    minima::write_file_atomic(data.path() + "/" + files[f], bytes);
  }
  TempDir out("advinit-resnet");
  Run r = run_minima("adversarial-init --dataset cifar10 --data-dir " + data.path() +
                     " --arch resnet18 --subset 0 --replication 2 --epochs 2 --adv-epochs 2 --adv-check-every 1 "
                     "--adv-schedule multistep --setups vanilla,sota --seeds 0 --batch 8 --threads 1 --no-plot --out " +
                     out.path());
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("resnet18 on cifar10 (20 train / 4 test images)") != std::string::npos);
  minima::Json s = summary(out.path());
  CHECK(s.at("phase1")[0].at("C_size").as_int() == 40);
  REQUIRE(s.at("runs").size() == 4);
  for (const auto& run : s.at("runs").elements()) CHECK(run.at("l2_path_norm").as_double() > 0.0);
  // Phase 1 saved weights whose metadata identifies C.
  std::string meta = minima::read_file(out.path() + "/phase1/seed0-R2/adversarial_init.safetensors").substr(0, 4096);
  CHECK(meta.find("C_replication") != std::string::npos);
  CHECK(meta.find("C_seed") != std::string::npos);
  // On cifar10 the inputs are normalized with the official code's constants by default (--normalize
  // auto), and the weights carry them for eval; --normalize data takes the images' own (uniform
  // random bytes: std about 73.9 / 255 = 0.29).
  auto info = [](const std::string& path) {
    return minima::nn::ModelInfo::from_metadata(minima::nn::load_safetensors(path).metadata);
  };
  const auto paper = info(out.path() + "/phase1/seed0-R2/adversarial_init.safetensors");
  const std::vector<double> paper_mean = {0.4914, 0.4822, 0.4465}, paper_std = {0.2023, 0.1994, 0.2010};
  CHECK(paper.mean == paper_mean);
  CHECK(paper.std == paper_std);
  TempDir own("advinit-cifar-data");
  r = run_minima("adversarial-init --dataset cifar10 --data-dir " + data.path() +
                 " --normalize data --arch mlp --subset 0 --replication 2 --epochs 1 --adv-epochs 1 --setups vanilla "
                 "--inits adversarial --seeds 0 --batch 8 --threads 1 --no-plot --out " +
                 own.path());
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const auto computed = info(own.path() + "/phase1/seed0-R2/adversarial_init.safetensors");
  REQUIRE(computed.std.size() == 3);
  for (int ch = 0; ch < 3; ++ch) {
    CHECK(computed.mean[size_t(ch)] == doctest::Approx(0.5).epsilon(0.05));
    CHECK(computed.std[size_t(ch)] == doctest::Approx(0.29).epsilon(0.05));
  }
  check_rejects("adversarial-init --normalize paper --out /tmp/x", "--normalize paper: the official code's constants");
  check_rejects("adversarial-init --normalize pixel --out /tmp/x", "unknown normalization 'pixel'");
}

TEST_CASE("adversarial-init: bad flags give clear errors") {
  check_rejects("adversarial-init --setups vanilla,foo --out /tmp/x", "unknown setup 'foo'");
  check_rejects("adversarial-init --inits random,bad --out /tmp/x", "unknown init 'bad'");
  check_rejects("adversarial-init --replication 0 --out /tmp/x", "--replication");
  check_rejects("adversarial-init --zero-out 1.5 --out /tmp/x", "--zero-out");
  check_rejects("adversarial-init --adv-schedule cosine --out /tmp/x", "--adv-schedule");
  check_rejects("adversarial-init --arch nonet --out /tmp/x", "unknown architecture");
  // These two used to be accepted: a target of 0 or less ended phase 1 at its first check, and a
  // negative --halt-after was silently ignored.
  check_rejects("adversarial-init --adv-target 0 --out /tmp/x", "--adv-target must be in (0, 100] percent, got 0");
  check_rejects("adversarial-init --adv-target 100.5 --out /tmp/x", "--adv-target must be in (0, 100]");
  check_rejects("adversarial-init --halt-after -1 --out /tmp/x", "--halt-after must be >= 0, got -1");
  // These were accepted and changed silently: a repeated setup was dropped, a --subset beyond the
  // data ran on all of it, and --balanced without a --subset did nothing.
  check_rejects("adversarial-init --setups vanilla,DA+M,M+DA --out /tmp/x",
                "--setups: M+DA is DA+M, which is listed already");
  check_rejects("adversarial-init --subset 0 --balanced --out /tmp/x", "--balanced chooses which images a --subset");
  if (testutil::fashion_mnist_or_skip()) {
    TempDir big("advinit-big-subset");
    check_rejects("adversarial-init --subset 70000 --out " + big.path() + "/run",
                  "--subset 70000 is larger than the 60000 training images of fashion-mnist");
    CHECK(!file_exists(big.path() + "/run/config.json"));
  }
}

// tests/crosscheck/adversarial_init.py runs the same protocol in PyTorch (its own random draws for
// the init, C, batch order and crops). Single runs cannot match, so for every setup and init the
// mean over seeds of minima's final train and test accuracy must fall inside the range PyTorch's
// seeds span, widened by one PyTorch standard deviation plus half a point (four seeds barely
// estimate a spread; the half point keeps a near-zero spread from demanding more than that).
// Measured at 7e6271b: every test-accuracy mean within 0.9 points and every train-accuracy mean
// within 2.2 (sota from the adversarial init, 74.00 vs 71.85 %), e.g. vanilla from the adversarial
// init tests at 76.95 % (minima) vs 77.18 % (PyTorch), sota from it at 68.12 % vs 67.28 %. Both
// sides repeat bitwise on one machine; PyTorch's moves across machines and BLAS builds (77.03 %
// for the same vanilla mean when this test was written).
TEST_CASE("adversarial-init: final accuracies agree with the PyTorch version of the protocol") {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1") != 0) {
    MESSAGE("skipped: /usr/bin/python3 cannot import torch and numpy, so there is no PyTorch reference");
    return;
  }
  const std::string data = "/usr/share/datasets/fashion-mnist";
  if (!file_exists(data + "/train-images-idx3-ubyte.gz") && !file_exists(data + "/train-images-idx3-ubyte")) {
    MESSAGE("skipped: Fashion-MNIST is not in ", data, " (Debian package dataset-fashion-mnist)");
    return;
  }
  const std::string cfg =
      "--arch mlp --subset 500 --replication 2 --seeds 0,1,2,3 --epochs 20 --adv-epochs 100 --setups vanilla,sota";
  TempDir out("advinit-xc");
  Run m = run_minima("adversarial-init " + cfg + " --eval-every 20 --complexity-every 20 --threads 1 --no-plot --out " +
                     out.path());
  INFO(m.output);
  REQUIRE(m.rc == 0);
  Run t = run_command("OMP_NUM_THREADS=1 /usr/bin/python3 " + std::string(MINIMA_SOURCE_DIR) +
                      "/tests/crosscheck/adversarial_init.py " + cfg + " --threads 1");
  INFO(t.output);
  REQUIRE(t.rc == 0);
  size_t start = t.output.find("{\n");
  REQUIRE(start != std::string::npos);
  minima::Json torch = minima::Json::parse(t.output.substr(start));
  minima::Json mine = summary(out.path());
  for (const auto& p : torch.at("phase1").elements()) CHECK(p.at("acc_on_C").as_double() >= 99.99);
  for (const auto& p : mine.at("phase1").elements()) CHECK(p.at("acc_on_C").as_double() >= 99.99);

  int compared = 0;
  for (std::string setup : {"vanilla", "sota"})
    for (std::string init : {"random", "adversarial"})
      for (std::string field : {"train_acc", "test_acc"}) {
        auto stats = [&](const minima::Json& runs) {
          std::vector<double> v;
          for (const auto& r : runs.elements())
            if (r.at("setup").as_string() == setup && r.at("init").as_string() == init)
              v.push_back(r.at(field).as_double());
          return v;
        };
        std::vector<double> tv = stats(torch.at("runs")), mv = stats(mine.at("runs"));
        REQUIRE(tv.size() == 4);
        REQUIRE(mv.size() == 4);
        apptest::SeedSpread sp = apptest::seed_spread(mv, tv, 0.5);
        INFO(setup, " from the ", init, " init, ", field, ": minima mean ", sp.mine_mean, ", PyTorch mean ",
             sp.their_mean, " (accepted ", sp.lo, " .. ", sp.hi, ")");
        CHECK(sp.ok());
        MESSAGE(setup, "/", init, " ", field, ": minima ", sp.mine_mean, " PyTorch ", sp.their_mean, " (accepted ",
                sp.lo, " .. ", sp.hi, ")");
        ++compared;
      }
  CHECK(compared == 8);
}

TEST_CASE("adversarial-init: --resume refuses other settings and checkpoints from outside the run, changing nothing") {
  TempDir dir("advinit-resume");
  const std::string& out = dir.path();
  const std::string cfg =
      "adversarial-init --arch mlp --subset 40 --seeds 1 --epochs 3 --setups vanilla --inits random --no-plot "
      "--batch 16 --out " +
      out;
  Run halted = run_minima(cfg + " --halt-after 2 --checkpoint-every 0 --threads 1");
  INFO(halted.output);
  REQUIRE(halted.rc != 0);
  const std::string run = out + "/runs/random-vanilla-seed1", ckpt = run + "/checkpoint.safetensors";
  REQUIRE(file_exists(ckpt));
  const std::string config = minima::read_file(out + "/config.json"), metrics = minima::read_file(run + "/metrics.csv");
  // Other flags that change the results: refused, naming them, before anything is written.
  check_rejects(cfg + " --resume --threads 1 --lr 0.5 --momentum 0.5",
                "was started with other settings: --lr 0.1 (now 0.5), --momentum 0.9 (now 0.5)");
  CHECK(minima::read_file(out + "/config.json") == config);
  CHECK(minima::read_file(run + "/metrics.csv") == metrics);
  // A checkpoint saved after more epochs than the run has (or fewer than none) used to skip
  // training and record zeros as the run's results.
  minima::nn::SafeTensors f = minima::nn::load_safetensors(ckpt);
  auto with_epoch = [&](int64_t epoch) {
    minima::nn::Metadata meta = f.metadata;
    for (auto& kv : meta)
      if (kv.first == "train_state") {
        minima::Json ts = minima::Json::parse(kv.second);
        ts["epoch"] = epoch;
        kv.second = ts.dump(-1);
      }
    minima::nn::save_safetensors(ckpt, f.tensors, meta);
  };
  for (int64_t epoch : {3, -1}) {
    with_epoch(epoch);
    check_rejects(cfg + " --resume --threads 1", "checkpoint.safetensors was saved after epoch " +
                                                     std::to_string(epoch) +
                                                     ", which does not fit a run of --epochs 3 (expected 0 to 2)");
    CHECK(!file_exists(run + "/summary.json"));
  }
  // Flags that do not change the results may differ.
  with_epoch(2);
  Run resumed = run_minima(cfg + " --resume --threads 2");
  INFO(resumed.output);
  REQUIRE(resumed.rc == 0);
  CHECK(resumed.output.find("resuming after epoch 2") != std::string::npos);
  CHECK(summary(run).at("test_acc").as_double() > 0.0);
}

TEST_CASE("adversarial-init: flags found bad late still fail before --out is claimed") {
  TempDir dir("advinit-flags");
  const std::string base = "adversarial-init --epochs 1 --adv-epochs 1 --threads 1 --no-plot";
  int k = 0;
  auto refused = [&](const std::string& flags, const std::string& expected) {
    const std::string out = dir.path() + "/" + std::to_string(++k);
    check_rejects(base + " " + flags + " --out " + out, expected);
    CHECK_MESSAGE(!file_exists(out + "/config.json"), flags);
  };
  refused("--momentum -1", "--momentum must be in [0, 1), got -1");
  refused("--weight-decay -0.1", "--weight-decay must be >= 0");
  // Repeated values name the same run twice; they used to fail after training the first.
  refused("--inits random,random", "--inits: random is listed twice");
  refused("--seeds 0,0", "--seeds: 0 is listed twice");
  refused("--replication 1,1", "--replication: 1 is listed twice");
  // R copies of 512 images: more than 2^64 bytes used to wrap around and crash.
  refused("--subset 512 --replication 4503599627370496", "--replication 4503599627370496 makes an adversarial set");
  // 4 x 10^9 images of 784 bytes: more than the machine's memory, which used to fail only after
  // --out was claimed.
  refused("--subset 500 --replication 8000000",
          "--replication 8000000 makes an adversarial set of 4000000000 images (");
  // 41 images in batches of 20 (and 2 x 40 = 80 in batches of 79) leave a batch of one sample.
  refused("--arch mlp-bn --subset 41 --batch 20", "41 training samples in batches of 20 make a batch of one sample");
  refused("--arch mlp-bn --subset 40 --replication 2 --batch 79", "80 training samples in batches of 79");
}

TEST_CASE("adversarial-init: --resume names a damaged summary of a finished phase or run, and says what to do") {
  if (!testutil::fashion_mnist_or_skip()) return;
  TempDir dir("advinit-damaged");
  const std::string out = dir.path();
  const std::string cfg =
      "adversarial-init --arch mlp --subset 40 --replication 2 --seeds 0 --epochs 1 --adv-epochs 1 --setups vanilla "
      "--inits adversarial --threads 1 --no-plot --batch 16 --out " +
      out;
  Run r = run_minima(cfg);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const std::string run = out + "/runs/adversarial-vanilla-seed0-R2/summary.json";
  const std::string phase1 = out + "/phase1/seed0-R2/summary.json";
  const std::string good = minima::read_file(run);
  // These used to fail with a bare "json: ..." that named no file.
  auto damaged = [&](const std::string& file, const std::string& text, const std::string& why, const char* redo) {
    minima::write_file_atomic(file, text);
    check_rejects(cfg + " --resume", "--resume: " + file + " is damaged (" + why + "); remove it to " + redo);
  };
  damaged(run, "{\n", "json: expected a string at byte 2", "train that run again");
  damaged(run, "{}", "missing key 'init'", "train that run again");
  damaged(run, "{\"init\": \"adversarial\", \"setup\": \"vanilla\", \"replication\": 2, \"train_acc\": \"x\"}",
          "key 'train_acc': json: expected a number", "train that run again");
  minima::write_file_atomic(run, good);
  damaged(phase1, "{}", "missing key 'seed'", "run that phase 1 again");
  // Removed as the message says, the phase is run again and the experiment finishes.
  std::remove(phase1.c_str());
  Run again = run_minima(cfg + " --resume");
  INFO(again.output);
  CHECK(again.rc == 0);
  CHECK(file_exists(phase1));
}
