// tests/apps/app_test_util.h: running the built `minima` CLI from a test, as a user would, into a
// fresh temporary --out directory, and reading back what it wrote (summary.json, CSV files).
#pragma once
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "run_command.h"
#include "temp_dir.h"

namespace apptest {

using testutil::Run;
using testutil::run_command;  // tests/run_command.h

// `minima <args>`.
inline Run run_minima(const std::string& args) { return run_command(std::string(MINIMA_BINARY) + " " + args); }

// A fresh directory removed with everything in it when the test case ends (tests/temp_dir.h).
using TempDir = testutil::TempDir;

inline minima::Json summary(const std::string& dir) {
  return minima::Json::parse(minima::read_file(dir + "/summary.json"));
}

// Rows of a CSV file as column -> text.
inline std::vector<std::map<std::string, std::string>> read_csv(const std::string& path) {
  std::istringstream in(minima::read_file(path));
  std::string line;
  std::vector<std::string> cols;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& s) {
    std::vector<std::string> v;
    std::stringstream ss(s);
    std::string c;
    while (std::getline(ss, c, ',')) v.push_back(c);
    return v;
  };
  if (std::getline(in, line)) cols = split(line);
  while (std::getline(in, line)) {
    auto v = split(line);
    REQUIRE(v.size() == cols.size());
    std::map<std::string, std::string> r;
    for (size_t i = 0; i < v.size(); ++i) r[cols[i]] = v[i];
    rows.push_back(r);
  }
  return rows;
}

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && st.st_size > 0;
}

// A python interpreter with matplotlib ("" when there is none): figures are checked only then.
inline std::string plotting_python() {
  std::vector<std::string> c;
  if (const char* p = std::getenv("MINIMA_PYTHON")) c.push_back(p);
  c.push_back("python3");
  c.push_back("/usr/bin/python3");
  for (const auto& py : c)
    if (std::system((py + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) return py;
  return "";
}

// Runs apps/plot/<script> on `dir` and checks that <name>.png and <name>.svg were written.
inline void check_figure(const std::string& script, const std::string& dir, const std::string& name) {
  std::string py = plotting_python();
  if (py.empty()) {
    MESSAGE("figure not checked: no python3 with matplotlib");
    return;
  }
  std::string cmd = py + " " + std::string(MINIMA_SOURCE_DIR) + "/apps/plot/" + script + " " + dir + " >/dev/null 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
  CHECK(file_exists(dir + "/" + name + ".png"));
  CHECK(file_exists(dir + "/" + name + ".svg"));
}

// A bad command line must fail with an "error: ..." naming the problem.
inline void check_rejects(const std::string& args, const std::string& expected) {
  Run r = run_minima(args);
  INFO("minima ", args, "\n", r.output);
  CHECK(r.rc != 0);
  CHECK(r.output.find("error: ") != std::string::npos);
  CHECK(r.output.find(expected) != std::string::npos);
}

// Comparing an experiment with its PyTorch version, whose random draws differ: the mean over
// seeds of minima's figure must lie inside the range PyTorch's seeds span, widened by their sample
// standard deviation plus `margin` (a few seeds barely estimate a spread).
struct SeedSpread {
  double mine_mean = 0, their_mean = 0, lo = 0, hi = 0;
  bool ok() const { return mine_mean >= lo && mine_mean <= hi; }
};
inline SeedSpread seed_spread(const std::vector<double>& mine, const std::vector<double>& theirs, double margin) {
  REQUIRE(!mine.empty());
  REQUIRE(theirs.size() >= 2);
  SeedSpread s;
  for (double x : mine) s.mine_mean += x / double(mine.size());
  for (double x : theirs) s.their_mean += x / double(theirs.size());
  double var = 0;
  for (double x : theirs) var += (x - s.their_mean) * (x - s.their_mean) / double(theirs.size() - 1);
  const double widen = std::sqrt(var) + margin;
  s.lo = *std::min_element(theirs.begin(), theirs.end()) - widen;
  s.hi = *std::max_element(theirs.begin(), theirs.end()) + widen;
  return s;
}

}  // namespace apptest
