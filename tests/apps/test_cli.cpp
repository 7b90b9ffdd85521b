// tests/apps/test_cli.cpp: what every `minima` command shares (apps/cli.h, apps/main.cpp): how
// flag values are read, and how the command line reports its own failures.
#include "app_test_util.h"

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

TEST_CASE("a number below the normal range of a double is read; one beyond its range is refused") {
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
