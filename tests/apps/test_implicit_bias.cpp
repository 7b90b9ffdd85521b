// tests/apps/test_implicit_bias.cpp: `minima min-norm`, `minima max-margin` and
// `minima matrix-factorization` on small configurations, each asserting the claim it demonstrates,
// plus their rejection of bad flags. Figures are checked when python3 with matplotlib is present.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "app_test_util.h"

using namespace minima;

TEST_CASE("min-norm: GD lands on X^+ y from zero and keeps w0's null-space part from w0") {
  apptest::TempDir tmp("min_norm");
  const std::string& dir = tmp.path();
  auto r = apptest::run_minima("min-norm --n 20 --d 60 --iters 300 --seed 4 --no-plot --out " + dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  CHECK(s.at("min_norm_interpolation_residual").as_double() < 1e-12);
  CHECK(s.at("gd_from_zero_rel_dist_min_norm").as_double() < 1e-6);
  CHECK(s.at("gd_from_w0_rel_dist_prediction").as_double() < 1e-6);
  // From w0, GD misses X^+ y by exactly the null-space part of w0 (which is far from small).
  double gap = s.at("predicted_gap_from_w0").as_double();
  CHECK(gap > 0.5);
  CHECK(s.at("gd_from_w0_rel_dist_min_norm").as_double() == doctest::Approx(gap).epsilon(1e-6));
  // Momentum and SGD (batch 1 and 10) reach the same two limits.
  for (const char* m : {"momentum", "sgd-b1", "sgd-b10"}) {
    INFO(m);
    const Json& run = s.at("runs").at(m);
    CHECK(run.at("from_zero").at("rel_dist_min_norm").as_double() < 1e-5);
    CHECK(run.at("from_w0").at("rel_dist_prediction").as_double() < 1e-5);
    CHECK(run.at("from_w0").at("rel_dist_min_norm").as_double() == doctest::Approx(gap).epsilon(1e-4));
  }
  // The null-space component never changes along the way.
  auto rows = apptest::read_csv(dir + "/metrics.csv");
  REQUIRE(rows.size() == 8 * 301);
  double null0 = -1;
  for (const auto& row : rows) {
    if (row.at("init") != "w0") continue;
    double v = std::stod(row.at("null_norm"));
    if (null0 < 0) null0 = v;
    CHECK(v == doctest::Approx(null0).epsilon(1e-9));
  }
  apptest::check_figure("min_norm.py", dir, "min_norm");
}

TEST_CASE("min-norm rejects bad flags") {
  apptest::check_rejects("min-norm --n 50 --d 40 --no-plot --out /tmp/minima_unused", "--d (40) must exceed --n (50)");
  apptest::check_rejects("min-norm --iters ten", "--iters expects an integer");
  apptest::check_rejects("min-norm --sgd-batches 0", "--sgd-batches");
  apptest::check_rejects("min-norm --sgd-batches 1,10,1", "--sgd-batches: 1 is listed twice");
  apptest::check_rejects("min-norm --w0-scale 1e300", "--w0-scale must be in (0, 1e100], got 1e+300");
  apptest::check_rejects("min-norm --bogus 1", "unknown flag --bogus");
  apptest::TempDir tmp("min_norm_huge");
  // Sizes whose product wraps around in 64 bits used to allocate a tiny buffer and crash; sizes
  // merely too large ran out of memory after claiming --out.
  apptest::check_rejects(
      "min-norm --n 2 --d 4611686018427387904 --sgd-batches 1 --iters 1 --no-plot --out " + tmp.path() + "/run",
      "--n x --d must be at most 10000000 (X is an n x d float64 matrix), got 2 x 4611686018427387904");
  apptest::check_rejects("min-norm --d 2147483648 --no-plot --out " + tmp.path() + "/run",
                         "--n x --d must be at most 10000000 (X is an n x d float64 matrix), got 50 x 2147483648");
  // An empty list used to run no SGD at all, silently.
  apptest::check_rejects("min-norm --n 5 --d 10 --iters 5 --sgd-batches '' --no-plot --out " + tmp.path() + "/run",
                         "--sgd-batches needs at least one batch size");
  CHECK(!apptest::file_exists(tmp.path() + "/run/config.json"));
}

TEST_CASE("a finished run is never overwritten: --out must be a new directory, not a file") {
  apptest::TempDir tmp("run_dir");
  const std::string run = tmp.path() + "/run";
  const std::string cfg = "min-norm --n 5 --d 10 --iters 3 --sgd-batches 1 --no-plot --out " + run;
  auto first = apptest::run_minima(cfg);
  INFO(first.output);
  REQUIRE(first.rc == 0);
  const std::string summary = read_file(run + "/summary.json");
  apptest::check_rejects(cfg + " --seed 1", "already holds a run (its config.json); choose another --out");
  CHECK(read_file(run + "/summary.json") == summary);
  CHECK(apptest::summary(run).dump() == Json::parse(summary).dump());
  CHECK(Json::parse(read_file(run + "/config.json")).at("flags").at("seed").as_int() == 0);
  {
    std::ofstream f(tmp.path() + "/file");
    f << "not a directory\n";
  }
  apptest::check_rejects("min-norm --n 5 --d 10 --iters 3 --sgd-batches 1 --no-plot --out " + tmp.path() + "/file",
                         "a file of that name exists and is not a directory");
}

TEST_CASE("a run directory in use by another process is refused, and free again once that process ends") {
  apptest::TempDir tmp("run_dir_lock");
  const std::string run = tmp.path() + "/run";
  const std::string cfg = "min-norm --n 5 --d 10 --iters 3 --sgd-batches 1 --no-plot --out " + run;
  REQUIRE(std::filesystem::create_directories(run));
  // This test's process stands in for a minima still running there: it holds the lock a run
  // holds, with its process id in the file as minima writes it.
  const int fd = ::open((run + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  const std::string pid = std::to_string(::getpid());
  REQUIRE(::pwrite(fd, ("pid " + pid + "\n").data(), pid.size() + 5, 0) == ssize_t(pid.size() + 5));
  apptest::check_rejects(cfg, run + " is in use by another minima process (pid " + pid +
                                  "); wait for it to end or choose another --out");
  CHECK(!std::filesystem::exists(run + "/config.json"));  // refused before writing anything
  // A resumable command is refused the same way, even with --resume.
  apptest::check_rejects("train --arch mlp --subset 64 --epochs 1 --resume --out " + run,
                         run + " is in use by another minima process (pid " + pid + ")");
  CHECK(!std::filesystem::exists(run + "/config.json"));
  ::close(fd);  // as when that process ends, however it ends
  auto r = apptest::run_minima(cfg);
  INFO(r.output);
  CHECK(r.rc == 0);
  CHECK(std::filesystem::exists(run + "/summary.json"));
  // The run held the lock with its own process id, which is not this one.
  const std::string note = read_file(run + "/.lock");
  CHECK(note.rfind("pid ", 0) == 0);
  CHECK(note != "pid " + pid + "\n");
}

TEST_CASE("max-margin: the SVM finds (0.5, 0.5) and GD converges in direction where Adam does not on stretched data") {
  apptest::TempDir tmp("max_margin");
  const std::string& dir = tmp.path();
  auto r = apptest::run_minima("max-margin --iters 100000 --no-plot --out " + dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  const Json& w = s.at("svm_w");
  CHECK(w[0].as_double() == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(w[1].as_double() == doctest::Approx(0.5).epsilon(1e-10));
  const Json& fig1 = s.at("datasets").at("soudry");
  CHECK(fig1.at("svm_on_margin").size() == 4);
  CHECK(fig1.at("svm_margin").as_double() == doctest::Approx(std::sqrt(2.0)));
  // GD and momentum approach the max-margin direction on both data sets (slowly: ~1/log t).
  for (const char* ds : {"soudry", "soudry-stretched"}) {
    const Json& gaps = s.at("datasets").at(ds).at("angle_gap");
    INFO(ds);
    CHECK(gaps.at("gd").as_double() < 0.03);
    CHECK(gaps.at("momentum").as_double() < 0.15);
  }
  // On the stretched data (Soudry et al.'s Figure 2) Adam stays far from it.
  CHECK(s.at("datasets").at("soudry-stretched").at("angle_gap").at("adam").as_double() > 0.3);

  // The log t and 1/t laws for GD on the Figure 1 data: ||w|| gains about the same per decade and
  // the loss falls about tenfold per decade.
  std::map<int64_t, std::pair<double, double>> gd;  // iter -> (norm, loss)
  for (const auto& row : apptest::read_csv(dir + "/metrics.csv"))
    if (row.at("dataset") == "soudry" && row.at("method") == "gd")
      gd[std::stoll(row.at("iter"))] = {std::stod(row.at("norm")), std::stod(row.at("loss"))};
  REQUIRE(gd.count(1000));
  REQUIRE(gd.count(10000));
  REQUIRE(gd.count(100000));
  double d1 = gd[10000].first - gd[1000].first, d2 = gd[100000].first - gd[10000].first;
  CHECK(d2 == doctest::Approx(d1).epsilon(0.15));
  CHECK(gd[10000].second / gd[100000].second == doctest::Approx(10.0).epsilon(0.15));
  apptest::check_figure("max_margin.py", dir, "max_margin");
}

TEST_CASE("max-margin runs a CSV data set and refuses non-separable data") {
  apptest::TempDir tmp("max_margin_csv");
  const std::string& dir = tmp.path();
  {
    // Through the origin the max-margin solution of these four points is w = (1, 0).
    std::ofstream f(dir + "/points.csv");
    f << "# x1,x2,label\n1,0,1\n-1,0,-1\n3,1,1\n-2,-3,-1\n";
  }
  auto r = apptest::run_minima("max-margin --data " + dir + "/points.csv --iters 2000 --no-plot --out " + dir + "/run");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir + "/run");
  CHECK(s.at("svm_w")[0].as_double() == doctest::Approx(1.0).epsilon(1e-10));
  CHECK(std::fabs(s.at("svm_w")[1].as_double()) < 1e-10);
  {
    std::ofstream f(dir + "/bad.csv");
    f << "1,0,1\n2,0,-1\n";
  }
  apptest::check_rejects("max-margin --data " + dir + "/bad.csv --no-plot --out " + dir + "/bad",
                         "not linearly separable");
  CHECK(!apptest::file_exists(dir + "/bad/config.json"));  // the SVM runs before --out is claimed
  {
    std::ofstream f(dir + "/labels.csv");
    f << "1,0,1\n2,0,0\n";
  }
  apptest::check_rejects("max-margin --data " + dir + "/labels.csv --no-plot --out " + dir + "/bad",
                         "label must be -1 or 1");
  apptest::check_rejects("max-margin --momentum 1.5", "--momentum must be in (0, 1)");
  // 2^32 + 1 used to be cut to an int of 1, and 10^9 took minutes to schedule the logged steps.
  apptest::check_rejects("max-margin --iters 100 --no-plot --log-per-decade 4294967297 --out " + dir + "/per-decade",
                         "--log-per-decade must be in [1, 1000], got 4294967297");
  CHECK(!apptest::file_exists(dir + "/per-decade/config.json"));
  apptest::check_rejects("max-margin --data /nonexistent.csv --out " + dir + "/bad", "cannot open");
  apptest::check_rejects("max-margin --data " + dir + " --out " + dir + "/bad", "--data: '" + dir + "' is not a file");
}

TEST_CASE("max-margin stops with an error when a step overflows w") {
  apptest::TempDir tmp("max_margin_diverged");
  // Steps of 1e308 overflow w in the first iteration: the runs used to finish with ||w|| inf, a
  // nan angle gap and nulls in summary.json, and exit 0.
  apptest::check_rejects("max-margin --iters 100 --no-plot --lr 1e308 --out " + tmp.path() + "/gd",
                         "max-margin: gd diverged on soudry at iteration 1 (||w||^2 inf, loss 0); try a smaller --lr");
  apptest::check_rejects("max-margin --iters 100 --no-plot --adam-lr 1e308 --out " + tmp.path() + "/adam",
                         "max-margin: adam diverged on soudry at iteration 1 (||w||^2 inf");
  CHECK(!apptest::file_exists(tmp.path() + "/gd/summary.json"));
}

TEST_CASE("max-margin bounds the size of a CSV data set and the work of its SVM solver") {
  apptest::TempDir tmp("max_margin_bounds");
  const std::string& dir = tmp.path();
  // Two points 1000-D, separable through the origin with a tiny margin: x and a slightly moved x,
  // with opposite labels. The solver's sweeps are bounded by --svm-work; two such points in
  // 100,000 dimensions used to take 40 s to give up (200,000 sweeps), and 50,000 points in 2-D
  // with margins near 1e-4 ran for minutes.
  {
    std::ofstream f(dir + "/close.csv");
    for (int label : {1, -1}) {
      for (int k = 0; k < 1000; ++k) f << (k % 7) * 0.25 + (label < 0 && k == 3 ? 1e-3 : 0.0) << ",";
      f << label << "\n";
    }
  }
  apptest::check_rejects("max-margin --data " + dir + "/close.csv --svm-work 1e6 --no-plot --out " + dir + "/close",
                         "max-margin: the hard-margin SVM did not converge within 492 sweeps over the 2 points");
  apptest::check_rejects("max-margin --data " + dir + "/close.csv --svm-work 1e6 --no-plot --out " + dir + "/close",
                         "--svm-work 1e+06 allows no more sweeps of this data (raise it to let the solver run longer)");
  CHECK(!apptest::file_exists(dir + "/close/config.json"));
  apptest::check_rejects("max-margin --svm-work 0", "--svm-work must be positive, got 0");
  {
    std::ofstream f(dir + "/wide.csv");
    for (int k = 0; k < 1000001; ++k) f << "0,";
    f << "1\n";
  }
  apptest::check_rejects("max-margin --data " + dir + "/wide.csv --no-plot --out " + dir + "/wide",
                         "more than 1000000 values (points x dimensions) by line 1");
  CHECK(!apptest::file_exists(dir + "/wide/config.json"));
}

TEST_CASE("max-margin draws its extra points from the whole region beyond the margin, however thin") {
  apptest::TempDir tmp("max_margin_extra");
  const std::string& dir = tmp.path();
  // Points of [0, R]^2 with a + b >= 2m, class -1 negated. With 2m > R that region is the corner
  // triangle with legs L = 2R - 2m; rejection sampling spun for ever when it was almost nothing
  // (R = 1.2500001, m = 1.25: about one draw in 1e14 accepted).
  auto points = [&](const std::string& name, const std::string& R_flag, const std::string& m_flag, int64_t per_class) {
    auto r = apptest::run_minima("max-margin --no-plot --iters 10 --extra-per-class " + std::to_string(per_class) +
                                 " --extra-range " + R_flag + " --extra-min-margin " + m_flag + " --out " + dir + "/" +
                                 name);
    const double R = std::stod(R_flag), m = std::stod(m_flag);
    INFO(r.output);
    REQUIRE(r.rc == 0);
    std::vector<std::array<double, 2>> z;  // label * x of the extra points
    int64_t row = 0;
    for (const auto& p : apptest::read_csv(dir + "/" + name + "/data.csv")) {
      if (p.at("dataset") != "soudry" || row++ < 4) continue;  // the four support vectors come first
      const double y = std::stod(p.at("label"));
      z.push_back({y * std::stod(p.at("x1")), y * std::stod(p.at("x2"))});
    }
    REQUIRE(int64_t(z.size()) == 2 * per_class);
    for (const auto& q : z) {
      CHECK(q[0] + q[1] >= 2 * m - 1e-12);
      CHECK(q[0] <= R);
      CHECK(q[1] <= R);
    }
    CHECK(apptest::summary(dir + "/" + name).at("svm_w")[0].as_double() == doctest::Approx(0.5).epsilon(1e-10));
    return z;
  };
  points("thin", "1.2500001", "1.25", 50);
  // Uniform over the triangle: each coordinate's mean lies L/3 inside R (here 2 - 0.5), and the
  // points spread over all of it (standard deviation L/sqrt(18) = 0.354 per coordinate).
  auto z = points("triangle", "2", "1.25", 2000);
  double mean[2] = {0, 0}, var[2] = {0, 0};
  for (const auto& q : z)
    for (int k = 0; k < 2; ++k) mean[k] += q[k] / double(z.size());
  for (const auto& q : z)
    for (int k = 0; k < 2; ++k) var[k] += (q[k] - mean[k]) * (q[k] - mean[k]) / double(z.size());
  for (int k = 0; k < 2; ++k) {
    CHECK(mean[k] == doctest::Approx(1.5).epsilon(0.03));
    CHECK(std::sqrt(var[k]) == doctest::Approx(1.5 / std::sqrt(18.0)).epsilon(0.08));
  }
  apptest::check_rejects("max-margin --extra-per-class 4611686018427387904",
                         "--extra-per-class must be in [0, 100000]");
}

TEST_CASE("max-margin reads each CSV cell whole and refuses values that are not finite numbers") {
  apptest::TempDir tmp("max_margin_cells");
  const std::string& dir = tmp.path();
  int k = 0;
  auto rejects = [&](const std::string& text, const std::string& cell) {
    const std::string path = dir + "/p" + std::to_string(++k) + ".csv";
    std::ofstream(path) << text;
    apptest::check_rejects("max-margin --data " + path + " --no-plot --out " + path + ".run",
                           "line 2: '" + cell + "' is not a number");
    CHECK(!apptest::file_exists(path + ".run/config.json"));  // found before --out was claimed
  };
  rejects("1,0,1\n1x,1,1\n-2,-3,-1\n", "1x");
  rejects("1,0,1\n1e308,1,1\n-2,-3,-1\n", "1e308");
  rejects("1,0,1\nnan,1,1\n-2,-3,-1\n", "nan");
  rejects("1,0,1\n-inf,1,1\n-2,-3,-1\n", "-inf");
  rejects("1,0,1\n3,1,1 1\n-2,-3,-1\n", "1 1");
  // Blanks around a number and Windows line ends are fine.
  std::ofstream(dir + "/ok.csv") << "1, 0 ,1\r\n-1,0,-1\r\n 3,1, 1\r\n-2,-3,-1\r\n\r\n";
  auto r = apptest::run_minima("max-margin --data " + dir + "/ok.csv --iters 200 --no-plot --out " + dir + "/ok");
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(apptest::summary(dir + "/ok").at("svm_w")[0].as_double() == doctest::Approx(1.0).epsilon(1e-10));
}

TEST_CASE("matrix-factorization: the nuclear norm falls to the ground truth's as alpha falls") {
  apptest::TempDir tmp("matrix_factorization");
  const std::string& dir = tmp.path();
  auto r = apptest::run_minima(
      "matrix-factorization --n 20 --rank 2 --alphas 1e-1,1e-2,1e-4,1e-6 --max-iters 2000 --no-plot --out " + dir);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  Json s = apptest::summary(dir);
  CHECK(s.at("measurements").as_int() == 3 * 20 * 2);
  CHECK(s.at("ground_truth_nuclear_norm").as_double() == doctest::Approx(1.0).epsilon(1e-12));
  auto nuc = s.at("nuclear_norm").elements();
  auto err = s.at("rel_error").elements();
  REQUIRE(nuc.size() == 4);
  for (size_t i = 1; i < nuc.size(); ++i) {
    CHECK(nuc[i].as_double() < nuc[i - 1].as_double());
    CHECK(err[i].as_double() < err[i - 1].as_double());
  }
  CHECK(nuc[0].as_double() > 1.2);
  CHECK(nuc.back().as_double() == doctest::Approx(1.0).epsilon(0.01));
  CHECK(err.back().as_double() < 0.02);
  CHECK(s.at("numerical_rank")[3].as_int() == 2);
  // Every solution fits the measurements; the minimum Frobenius interpolant fits them too but is
  // neither low-rank nor close to the ground truth.
  for (const auto& res : s.at("rel_residual").elements()) CHECK(res.as_double() < 0.01);
  CHECK(s.at("min_frobenius_rel_residual").as_double() < 1e-10);
  CHECK(s.at("min_frobenius_nuclear_norm").as_double() > 1.3);
  CHECK(s.at("min_frobenius_rel_error").as_double() > 0.3);
  apptest::check_figure("matrix_factorization.py", dir, "matrix_factorization");
}

TEST_CASE("matrix-factorization rejects bad flags") {
  apptest::check_rejects("matrix-factorization --rank 0", "--rank must be in [1, n]");
  apptest::check_rejects("matrix-factorization --alphas 0.1,-1", "--alphas must be positive");
  apptest::check_rejects("matrix-factorization --alphas 0.1,x", "--alphas expects comma-separated finite numbers");
  apptest::check_rejects("matrix-factorization --alphas 1e-1,0.1", "--alphas: 0.1 is listed twice");
  // n x n matrices of n = 2^32 used to overflow their element count and crash.
  apptest::check_rejects("matrix-factorization --n 4294967296 --rank 1", "--n must be in [2, 1000]");
  // 3 n r = 12 measurements of the 10 unknowns of a 4 x 4 symmetric matrix used to fail inside
  // the Cholesky factorization.
  apptest::check_rejects("matrix-factorization --n 4 --rank 1",
                         "the default --measurements 3 n r = 12 exceeds the n(n+1)/2 = 10 unknowns");
  apptest::check_rejects("matrix-factorization --n 4 --rank 1 --measurements 11",
                         "--measurements must be in [1, n(n+1)/2 = 10], got 11");
  // 3000 measurements of 1000 x 1000 matrices (24 GB) used to fail out of memory after claiming --out.
  apptest::TempDir tmp("matrix_factorization_huge");
  apptest::check_rejects("matrix-factorization --n 1000 --rank 1 --no-plot --out " + tmp.path() + "/run",
                         "the 3000 measurements of 1000 x 1000 matrices hold m n^2 = 3000000000 numbers, more than "
                         "100000000; lower --n, --rank or --measurements");
  CHECK(!apptest::file_exists(tmp.path() + "/run/config.json"));
}
