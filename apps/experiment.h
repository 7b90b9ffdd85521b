// apps/experiment.h: small helpers shared by the implicit-bias and memorization experiments
// (min-norm, max-margin, toy2d, matrix-factorization, memorize).
//  * Table: rows of a long-format CSV kept in memory and written once (atomically) at the end.
//    These runs log thousands of short rows, and MetricsCsv rewrites its file on every row.
//  * render_figure: runs apps/plot/<script>.py on the --out directory when python3 with
//    matplotlib is available; otherwise (or when the script fails) it prints a note and the run
//    still succeeds. The script can always be rerun by hand: python3 apps/plot/<script>.py DIR.
//  * Stopwatch and log-spaced step schedules.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace minima::apps {

class Table {
 public:
  explicit Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}
  // One row; values are formatted with up to 10 significant digits, strings as given.
  void row(const std::vector<std::string>& values);
  static std::string num(double v);
  size_t rows() const { return rows_.size(); }
  size_t columns() const { return columns_.size(); }
  void write(const std::string& path) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::string> rows_;
};

// A file of the source tree (`rel` relative to its root, e.g. "tests/crosscheck/bench_torch.py"),
// looked for next to the build folder of the running binary (a build folder carried to another
// machine sits in that machine's checkout), then in the tree minima was built from, then under the
// working directory. Returns the first that exists, else `rel`.
std::string source_path(const std::string& rel);
// Where the plot scripts live: $MINIMA_PLOT_DIR, else source_path("apps/plot/<script>").
std::string plot_script_path(const std::string& script);
// Runs `python3 <script> <out_dir>`; returns true when the figure was written.
bool render_figure(const std::string& script, const std::string& out_dir, bool enabled);

// For commands whose tensors are tiny (a few thousand elements): run single-threaded unless the
// user set OMP_NUM_THREADS. Parallel regions around such small kernels cost more than they save,
// and far more on a loaded machine where a thread waits for its descheduled partner.
void prefer_single_thread();

class Stopwatch {
 public:
  Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// Steps 0, 1, ..., up to `total` at about `per_decade` points per decade (always includes
// `total`), sorted and without repeats: the logging schedule of long runs.
std::vector<int64_t> log_spaced_steps(int64_t total, int64_t per_decade);

}  // namespace minima::apps
