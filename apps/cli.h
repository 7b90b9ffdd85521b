// apps/cli.h: what every `minima <command>` shares: the command registry, flag parsing with
// generated --help, the --out run directory (config.json, metrics.csv, summary.json, written
// atomically) and the progress line.
//
// A command declares its flags by reading them, then calls finish():
//   int run(Args& a) {
//     int64_t epochs = a.get_int("epochs", 5, "training epochs");
//     if (a.finish()) return 0;   // --help was printed
//     ...
//   }
// finish() rejects unknown flags with "error: unknown flag --x".
#pragma once
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace minima::cli {

class Args {
 public:
  Args(std::string command, std::vector<std::string> argv);  // throws on malformed flags
  std::string get_string(const std::string& name, const std::string& dflt, const std::string& help);
  int64_t get_int(const std::string& name, int64_t dflt, const std::string& help);
  double get_double(const std::string& name, double dflt, const std::string& help);
  bool get_flag(const std::string& name, const std::string& help);  // present = true
  // Comma-separated lists: --seeds 0,1,2 (an empty value is an empty list; an empty item is refused)
  std::vector<int64_t> get_int_list(const std::string& name, const std::string& dflt, const std::string& help);
  std::vector<double> get_double_list(const std::string& name, const std::string& dflt, const std::string& help);
  std::vector<std::string> get_string_list(const std::string& name, const std::string& dflt, const std::string& help);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // Prints help and returns true for --help; throws on unknown flags.
  bool finish();
  // Every flag with its effective value (for config.json).
  const Json& config() const { return config_; }
  const std::string& command() const { return command_; }
  void set_description(const std::string& d) { description_ = d; }

 private:
  std::string raw(const std::string& name, const std::string& dflt, const std::string& help, const std::string& kind);
  std::string command_, description_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
  std::vector<std::string> help_lines_;
  bool help_ = false;
  Json config_ = Json::object();
};

struct Command {
  std::string name, summary;
  std::function<int(Args&)> run;
};
std::vector<Command>& registry();
struct Register {
  Register(const std::string& name, const std::string& summary, std::function<int(Args&)> run);
};

// `minima bench <name>`: benchmarks register under the one `bench` command (run_bench in apps/main.cpp).
std::vector<Command>& bench_registry();
struct RegisterBench {
  RegisterBench(const std::string& name, const std::string& summary, std::function<int(Args&)> run);
};

// The --out directory of one run.
class RunDir {
 public:
  RunDir() = default;
  // Creates it (and parents) and locks it: while this RunDir or a copy of it lives, the process
  // holds an exclusive flock on the directory's .lock file (which the system releases when the
  // process ends, however it ends), so a second minima process given the same --out, such as a
  // --resume while the first still runs, is refused instead of racing it for the same files. A
  // directory that already holds a run (a config.json) is refused, so that no run overwrites
  // another, unless `resumable`: commands with --resume check it themselves.
  explicit RunDir(const std::string& dir, bool resumable = false);
  const std::string& path() const { return dir_; }
  // --resume: throws, naming each one, unless every flag config.json recorded when the run started
  // has the value `a` has now. Flags in `free` may differ (those that do not change the results:
  // threads, devices, --out, ...), and a flag config.json does not record (one added to minima
  // after the run started) may be left out, which gives it its default. Call it before writing
  // anything.
  void check_resume_flags(const Args& a, const std::vector<std::string>& free) const;
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  // config.json: the command, every flag, the git revision and the time. On --resume it keeps the
  // first start's time and revision and appends {"at", "git_revision"} to "resumes"; the flags are
  // the current ones (a resume may add seeds or setups).
  void write_config(const Args& a, const Json& extra = Json::object()) const;
  void write_summary(const Json& j) const;
  void write_json(const std::string& name, const Json& j) const;

 private:
  std::string dir_;
  std::shared_ptr<const int> lock_;  // the .lock file's descriptor; the last copy closes it
};

// metrics.csv: a header and one row per epoch/step; rewritten atomically on every append so a
// crash never leaves a half row. keep_existing (a resumed run) appends to the file there, which
// must start with the same header.
class MetricsCsv {
 public:
  MetricsCsv() = default;
  MetricsCsv(const std::string& path, std::vector<std::string> columns, bool keep_existing = false);
  void row(const std::vector<double>& values);
  void row_mixed(const std::vector<std::string>& values);

 private:
  std::string path_, text_;
  size_t ncols_ = 0;
};

// One line per update: a carriage-return-refreshed line on a terminal, plain lines otherwise.
class Progress {
 public:
  explicit Progress(std::string label, int64_t total_steps);
  // `done` steps of `total`; `fields` are printed as given, e.g. "loss 0.31 acc 91.2%".
  void update(int64_t done, const std::string& fields, double items_per_s = 0, bool force_line = false);
  void finish(const std::string& fields);

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

// The largest --threads a command takes: more is a typo (OpenMP would try to allocate a stack
// for each thread, and an int would wrap).
constexpr int64_t kMaxThreads = 1024;

std::string fmt(double v, int prec = 4);
std::string format_duration(double seconds);

// What a benchmark puts before the PyTorch peer's command line so that the peer runs at its best:
// "OPENBLAS_CORETYPE=SkylakeX " on a CPU with AVX-512 ("Haswell" with AVX2 only), unless the
// variable is set already. OpenBLAS names its kernels by CPU model, and Debian 12's (0.3.21)
// falls back to its generic SSE3 kernels on a Xeon it does not know (family 6 model 207:
// 35 GFLOP/s on a 1024^3 product, against 190-250 with the AVX-512 kernels). "" elsewhere.
std::string torch_peer_env();
void make_dirs(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace minima::cli
