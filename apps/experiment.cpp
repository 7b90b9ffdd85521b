// apps/experiment.cpp: CSV tables, figure rendering and schedules for the experiment commands.
#include "apps/experiment.h"

#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>
#include <vector>

#include "apps/cli.h"
#include "core/error.h"
#include "core/json.h"

namespace minima::apps {

void Table::row(const std::vector<std::string>& values) {
  MINIMA_CHECK(values.size() == columns_.size(), "table row has ", values.size(), " values for ", columns_.size(),
               " columns");
  std::string line;
  for (size_t i = 0; i < values.size(); ++i) line += (i ? "," : "") + values[i];
  rows_.push_back(std::move(line));
}

std::string Table::num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

void Table::write(const std::string& path) const {
  std::string text;
  for (size_t i = 0; i < columns_.size(); ++i) text += (i ? "," : "") + columns_[i];
  text += "\n";
  for (const auto& r : rows_) text += r + "\n";
  write_file_atomic(path, text);
}

std::string source_path(const std::string& rel) {
  std::vector<std::string> roots;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, size_t(n));
    size_t slash = dir.find_last_of('/');
    if (slash != std::string::npos) roots.push_back(dir.substr(0, slash) + "/..");
  }
#ifdef MINIMA_SOURCE_DIR
  roots.push_back(MINIMA_SOURCE_DIR);
#endif
  roots.push_back(".");
  for (const auto& root : roots)
    if (cli::file_exists(root + "/" + rel)) return root + "/" + rel;
  return rel;
}

std::string plot_script_path(const std::string& script) {
  if (const char* d = std::getenv("MINIMA_PLOT_DIR")) return std::string(d) + "/" + script;
  return source_path("apps/plot/" + script);
}

static std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool render_figure(const std::string& script, const std::string& out_dir, bool enabled) {
  if (!enabled) return false;
  std::string path = plot_script_path(script);
  if (!cli::file_exists(path)) {
    std::cout << "note: plot script " << script << " not found; no figure written\n";
    return false;
  }
  // The first interpreter that has matplotlib: $MINIMA_PYTHON, python3 on PATH, the system one
  // (a user-level python3 earlier on PATH often lacks the distribution's matplotlib).
  std::vector<std::string> candidates;
  if (const char* py = std::getenv("MINIMA_PYTHON")) candidates.push_back(py);
  candidates.push_back("python3");
  candidates.push_back("/usr/bin/python3");
  std::string python;
  for (const auto& c : candidates) {
    if (std::system((shell_quote(c) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) {
      python = c;
      break;
    }
  }
  if (python.empty()) {
    std::cout << "note: no python3 with matplotlib found; no figure written (later: python3 " << path << " " << out_dir
              << ")\n";
    return false;
  }
  std::string cmd = shell_quote(python) + " " + shell_quote(path) + " " + shell_quote(out_dir);
  std::cout.flush();  // keep our lines ahead of the script's
  int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::cout << "note: the plot script failed (" << cmd << "); the results are still in " << out_dir << "\n";
    return false;
  }
  return true;
}

void prefer_single_thread() {
  if (!std::getenv("OMP_NUM_THREADS")) omp_set_num_threads(1);
}

std::vector<int64_t> log_spaced_steps(int64_t total, int64_t per_decade) {
  std::set<int64_t> s{0, total};
  if (total > 0) {
    double decades = std::log10(double(total));
    int64_t count = int64_t(std::ceil(decades * double(per_decade)));
    for (int64_t k = 0; k <= count; ++k) {
      int64_t t = int64_t(std::llround(std::pow(10.0, double(k) / double(per_decade))));
      if (t <= total) s.insert(t);
    }
  }
  return {s.begin(), s.end()};
}

}  // namespace minima::apps
