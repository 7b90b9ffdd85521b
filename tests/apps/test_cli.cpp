// tests/apps/test_cli.cpp: what every `minima` command shares (apps/cli.h, apps/main.cpp): how
// flag values are read, and how the command line reports its own failures.
#include "app_test_util.h"
#include "core/random.h"
#include "fashion_mnist.h"
#include "nn/checkpoint.h"
#include "nn/models.h"

using namespace minima;

TEST_CASE("list flags refuse an empty item instead of dropping it") {
  apptest::TempDir tmp("cli_lists");
  const std::string out = " --no-plot --out " + tmp.path() + "/run";
  // "1,,2" used to run 1 and 2, and "1," to run 1, as if the item had not been written.
  apptest::check_rejects("min-norm --n 5 --d 10 --iters 1 --sgd-batches 1,,2" + out,
                         "--sgd-batches has an empty item in '1,,2'");
  apptest::check_rejects("min-norm --n 5 --d 10 --iters 1 --sgd-batches 1," + out,
                         "--sgd-batches has an empty item in '1,'");
  apptest::check_rejects("matrix-factorization --n 4 --rank 1 --measurements 3 --max-iters 1 --alphas ,0.1" + out,
                         "--alphas has an empty item in ',0.1'");
  CHECK(!apptest::file_exists(tmp.path() + "/run/config.json"));
  apptest::check_rejects("bench train --device cpu --arch 'mlp, ,smallcnn' --torch off --iters 1 --warmup 0",
                         "--arch has an empty item in 'mlp, ,smallcnn'");
  // An empty value is an empty list, which each command accepts or refuses by itself.
  apptest::check_rejects("memorize --widths ''", "--widths needs at least one width");
}

TEST_CASE("a number below the normal range of a double is read, and one beyond its range is refused") {
  apptest::TempDir tmp("cli_subnormal");
  // strtod flags 1e-310 as out of range (it is subnormal), and it used to be refused as "not a
  // finite number".
  auto r = apptest::run_minima("max-margin --iters 10 --lr 1e-310 --no-plot --out " + tmp.path() + "/run");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(Json::parse(read_file(tmp.path() + "/run/config.json")).at("flags").at("lr").as_double() == 1e-310);
  apptest::check_rejects("max-margin --lr 1e309", "--lr expects a finite number, got '1e309'");
  apptest::check_rejects("max-margin --lr inf", "--lr expects a finite number, got 'inf'");
}

TEST_CASE("a command whose output cannot be written to stdout fails, saying so") {
  // /dev/full refuses every write (ENOSPC). For these commands stdout is the result, and they used
  // to exit 0 having lost it.
  auto to_full = [](const std::string& args) {
    apptest::Run r = apptest::run_command("(" + std::string(MINIMA_BINARY) + " " + args + " >/dev/full)");
    INFO("minima ", args, " >/dev/full\n", r.output);
    CHECK(r.rc != 0);
    CHECK(r.output.find("error: could not write the output (No space left on device)") != std::string::npos);
  };
  to_full("models --in 1x28x28");
  to_full("--help");
  const data::Splits* s = testutil::fashion_mnist_or_skip("eval and data not checked");
  if (!s) return;
  to_full("data --dataset fashion-mnist");
  apptest::TempDir tmp("cli_full");
  Generator g(1);
  auto model = nn::make_model("mlp", {1, 28, 28}, 10, g);
  nn::save_weights(tmp.path() + "/w.safetensors", *model,
                   {"mlp", {1, 28, 28}, 10, "fashion-mnist", s->train.mean, s->train.std, 1});
  to_full("eval --weights " + tmp.path() + "/w.safetensors --device cpu");
}

// scripts/fuzz-flags.py and scripts/fuzz-files.py run outside the test run, on a sanitized build,
// for tens of minutes. Here they run briefly on this build, so that they keep working as commands
// and formats change, and so that the quick commands keep answering every edge value of every
// flag, and a few damaged files, with success or an `error:` line.
TEST_CASE("the flag and file fuzzers run, and find nothing in a short pass") {
  const std::string python = "/usr/bin/python3", scripts = std::string(MINIMA_SOURCE_DIR) + "/scripts/";
  auto flags = apptest::run_command(python + " " + scripts + "fuzz-flags.py " + MINIMA_BINARY +
                                    " --commands inspect,compare,models,data");
  INFO(flags.output);
  CHECK(flags.rc == 0);
  CHECK(flags.output.find(" runs, 0 found, ") != std::string::npos);
  CHECK(flags.output.find("FOUND") == std::string::npos);
  if (apptest::run_command(python + " -c 'import numpy, PIL'").rc != 0) {
    MESSAGE("skipped the file fuzzer: ", python, " lacks numpy or PIL (python3-numpy, python3-pil)");
    return;
  }
  auto files = apptest::run_command(python + " " + scripts + "fuzz-files.py " + MINIMA_BINARY +
                                    " --targets idx,cifar100 --iterations 4 --seed 7");
  INFO(files.output);
  CHECK(files.rc == 0);
  CHECK(files.output.find(" runs, 0 found") != std::string::npos);
}
