// apps/cli.cpp: flag parsing, run directories and progress lines for the `minima` commands.
#include "apps/cli.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <sstream>

#include "core/error.h"
#include "core/parse.h"
#include "git_rev.h"

namespace minima::cli {

Args::Args(std::string command, std::vector<std::string> argv) : command_(std::move(command)) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    MINIMA_CHECK(a.size() > 2 && a.rfind("--", 0) == 0, "unexpected argument '", a,
                 "' (flags look like --name value; see minima ", command_, " --help)");
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argv.size() && (argv[i + 1].rfind("--", 0) != 0 || argv[i + 1].size() <= 2)) {
      value = argv[++i];
    } else {
      value = "\x01";  // a bare flag
    }
    MINIMA_CHECK(!values_.count(name), "flag --", name, " given twice");
    values_[name] = value;
  }
}

std::string Args::raw(const std::string& name, const std::string& dflt, const std::string& help,
                      const std::string& kind) {
  used_[name] = true;
  std::string line = "  --" + name + (kind == "flag" ? "" : " " + kind);
  if (line.size() < 30)
    line.append(30 - line.size(), ' ');
  else
    line += "  ";
  line += help;
  if (kind != "flag" && !dflt.empty()) line += " (default " + dflt + ")";
  help_lines_.push_back(line);
  auto it = values_.find(name);
  if (it == values_.end()) return dflt;
  MINIMA_CHECK(kind == "flag" || it->second != "\x01", "flag --", name, " needs a value (", kind, ")");
  return it->second;
}

std::string Args::get_string(const std::string& name, const std::string& dflt, const std::string& help) {
  std::string v = raw(name, dflt, help, "STR");
  config_[name] = v;
  return v;
}

int64_t Args::get_int(const std::string& name, int64_t dflt, const std::string& help) {
  std::string v = raw(name, std::to_string(dflt), help, "INT");
  std::optional<int64_t> r = parse_int64(v);
  MINIMA_CHECK(r.has_value(), "--", name, " expects an integer, got '", v, "'");
  config_[name] = *r;
  return *r;
}

double Args::get_double(const std::string& name, double dflt, const std::string& help) {
  std::ostringstream d;
  d << dflt;
  std::string v = raw(name, d.str(), help, "NUM");
  std::optional<double> r = parse_double(v);
  MINIMA_CHECK(r.has_value(), "--", name, " expects a finite number, got '", v, "'");
  config_[name] = *r;
  return *r;
}

bool Args::get_flag(const std::string& name, const std::string& help) {
  std::string v = raw(name, "", help, "flag");
  MINIMA_CHECK(v.empty() || v == "\x01" || v == "true" || v == "false" || v == "1" || v == "0", "--", name,
               " is a switch and takes no value (got '", v, "')");
  bool r = v == "\x01" || v == "true" || v == "1";
  config_[name] = r;
  return r;
}

// The items of a list flag's value, blanks removed. An empty value is an empty list, which the
// command may accept or refuse; an empty item ("0,,1", "1,") is a typo, and dropping it would
// quietly run something else than what was written, so it is refused.
static std::vector<std::string> split_commas(const std::string& name, const std::string& s) {
  std::vector<std::string> out;
  if (s.find_first_not_of(' ') == std::string::npos) return out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      MINIMA_CHECK(!cur.empty(), "--", name, " has an empty item in '", s, "'");
      out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  MINIMA_CHECK(!cur.empty(), "--", name, " has an empty item in '", s, "'");
  out.push_back(cur);
  return out;
}

// Every list flag names a set of runs or settings to sweep: a value given twice would run twice
// (or find its own first run finished), so a repeat is refused.
template <class T>
void no_repeats(const std::string& name, const std::vector<T>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t j = 0; j < i; ++j) MINIMA_CHECK(!(v[i] == v[j]), "--", name, ": ", v[i], " is listed twice");
}

std::vector<std::string> Args::get_string_list(const std::string& name, const std::string& dflt,
                                               const std::string& help) {
  auto v = split_commas(name, raw(name, dflt, help, "A,B,.."));
  no_repeats(name, v);
  config_[name] = Json(v);
  return v;
}

std::vector<int64_t> Args::get_int_list(const std::string& name, const std::string& dflt, const std::string& help) {
  std::vector<int64_t> out;
  for (const auto& s : split_commas(name, raw(name, dflt, help, "N,N,.."))) {
    std::optional<int64_t> r = parse_int64(s);
    MINIMA_CHECK(r.has_value(), "--", name, " expects comma-separated integers, got '", s, "'");
    out.push_back(*r);
  }
  no_repeats(name, out);
  config_[name] = Json(out);
  return out;
}

std::vector<double> Args::get_double_list(const std::string& name, const std::string& dflt, const std::string& help) {
  std::vector<double> out;
  for (const auto& s : split_commas(name, raw(name, dflt, help, "X,X,.."))) {
    std::optional<double> r = parse_double(s);
    MINIMA_CHECK(r.has_value(), "--", name, " expects comma-separated finite numbers, got '", s, "'");
    out.push_back(*r);
  }
  no_repeats(name, out);
  config_[name] = Json(out);
  return out;
}

bool Args::finish() {
  if (help_) {
    std::cout << "usage: minima " << command_ << " [flags]\n";
    if (!description_.empty()) std::cout << "\n" << description_ << "\n";
    std::cout << "\nflags:\n";
    for (const auto& l : help_lines_) std::cout << l << "\n";
    return true;
  }
  for (const auto& kv : values_)
    MINIMA_CHECK(used_.count(kv.first), "unknown flag --", kv.first, " for command '", command_, "' (see minima ",
                 command_, " --help)");
  return false;
}

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

Register::Register(const std::string& name, const std::string& summary, std::function<int(Args&)> run) {
  registry().push_back({name, summary, std::move(run)});
}

std::vector<Command>& bench_registry() {
  static std::vector<Command> r;
  return r;
}

RegisterBench::RegisterBench(const std::string& name, const std::string& summary, std::function<int(Args&)> run) {
  bench_registry().push_back({name, summary, std::move(run)});
}

// ---------------------------------------------------------------------------------------------
void make_dirs(const std::string& path) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part + "/";
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) throw Error(str("cannot create directory ", cur));
  }
  struct stat st;
  MINIMA_CHECK(::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "cannot create directory ", path,
               ": a file of that name exists and is not a directory");
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Locks dir/.lock for this process (see RunDir), and writes the process id into it for the
// message another process shows. A file system without flock (some network mounts) runs unlocked,
// with a warning.
static std::shared_ptr<const int> lock_run_dir(const std::string& dir) {
  const std::string path = dir + "/.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MINIMA_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[64] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, size_t(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    MINIMA_CHECK(err != EWOULDBLOCK, dir, " is in use by another minima process",
                 holder.empty() ? std::string() : " (" + holder + ")", "; wait for it to end or choose another --out");
    std::fprintf(stderr, "warning: cannot lock %s (%s); nothing stops another run from using %s at the same time\n",
                 path.c_str(), std::strerror(err), dir.c_str());
    return nullptr;
  }
  const std::string who = str("pid ", ::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) != ssize_t(who.size())) {
    // The lock holds without the note; only the message of a refused process loses the pid.
  }
  return std::shared_ptr<const int>(new int(fd), [](const int* p) {
    ::close(*p);
    delete p;
  });
}

RunDir::RunDir(const std::string& dir, bool resumable) : dir_(dir) {
  MINIMA_CHECK(!dir.empty(), "--out must name a directory");
  make_dirs(dir);
  lock_ = lock_run_dir(dir);
  MINIMA_CHECK(resumable || !file_exists(file("config.json")), dir,
               " already holds a run (its config.json); choose another --out or remove the old run");
}

void RunDir::check_resume_flags(const Args& a, const std::vector<std::string>& free) const {
  if (!file_exists(file("config.json"))) return;  // nothing was started here yet
  Json old;
  try {
    old = Json::parse(read_file(file("config.json"))).at("flags");
  } catch (const Error& e) {
    throw Error(str("--resume: cannot read the flags of ", file("config.json"), " (", e.what(), ")"));
  }
  std::string diff;
  for (const auto& kv : a.config().items()) {
    if (std::find(free.begin(), free.end(), kv.first) != free.end()) continue;
    const bool recorded = old.is_object() && old.contains(kv.first);
    // A flag the run did not record came after it started (an older minima): the run had the
    // flag's default, which is what leaving it out now gives as well.
    if (!recorded && old.is_object() && !a.has(kv.first)) continue;
    std::string was = recorded ? old.at(kv.first).dump() : "(not recorded)";
    if (was != kv.second.dump())
      diff += str(diff.empty() ? "" : ", ", "--", kv.first, " ", was, " (now ", kv.second.dump(), ")");
  }
  MINIMA_CHECK(diff.empty(), "--resume: ", dir_, " was started with other settings: ", diff,
               "; resume with the same flags or choose another --out");
}

static std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void RunDir::write_config(const Args& a, const Json& extra) const {
  Json j = Json::object();
  j["command"] = a.command();
  j["git_revision"] = MINIMA_GIT_REV;
  j["started"] = now_iso();
  // A resumed run keeps when and at which revision it started, and adds this resume to the list.
  if (file_exists(file("config.json"))) {
    Json old = Json::parse(read_file(file("config.json")));
    MINIMA_CHECK(old.is_object() && (!old.contains("resumes") || old.at("resumes").is_array()), file("config.json"),
                 " is damaged: expected an object whose \"resumes\" is a list");
    Json resumes = old.contains("resumes") ? old.at("resumes") : Json::array();
    Json now = Json::object();
    now["at"] = j.at("started");
    now["git_revision"] = MINIMA_GIT_REV;
    resumes.push_back(now);
    if (old.contains("started")) j["started"] = old.at("started");
    if (old.contains("git_revision")) j["git_revision"] = old.at("git_revision");
    j["resumes"] = resumes;
  }
  j["flags"] = a.config();
  for (const auto& kv : extra.items()) j[kv.first] = kv.second;
  write_json("config.json", j);
}

void RunDir::write_summary(const Json& j) const { write_json("summary.json", j); }

void RunDir::write_json(const std::string& name, const Json& j) const {
  write_file_atomic(file(name), j.dump(2) + "\n");
}

MetricsCsv::MetricsCsv(const std::string& path, std::vector<std::string> columns, bool keep_existing)
    : path_(path), ncols_(columns.size()) {
  std::string header;
  for (size_t i = 0; i < columns.size(); ++i) header += (i ? "," : "") + columns[i];
  header += "\n";
  if (keep_existing && file_exists(path)) {
    // Rows are appended to it: under another header they would be read as other columns.
    text_ = read_file(path);
    MINIMA_CHECK(text_.compare(0, header.size(), header) == 0, path, " does not start with the header ",
                 header.substr(0, header.size() - 1),
                 " (damaged, or not written by this command); move it away to resume: the run goes on from its "
                 "checkpoint and logs the epochs after it in a new one");
    return;
  }
  text_ = header;
  write_file_atomic(path_, text_);
}

void MetricsCsv::row(const std::vector<double>& values) {
  std::vector<std::string> s;
  s.reserve(values.size());
  for (double v : values) s.push_back(fmt(v, 6));
  row_mixed(s);
}

void MetricsCsv::row_mixed(const std::vector<std::string>& values) {
  MINIMA_CHECK(values.size() == ncols_, "metrics row has ", values.size(), " values for ", ncols_, " columns");
  for (size_t i = 0; i < values.size(); ++i) text_ += (i ? "," : "") + values[i];
  text_ += "\n";
  write_file_atomic(path_, text_);
}

std::string torch_peer_env() {
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "OPENBLAS_CORETYPE=SkylakeX ";
  if (__builtin_cpu_supports("avx2")) return "OPENBLAS_CORETYPE=Haswell ";
#endif
  return "";
}

std::string fmt(double v, int prec) {
  if (std::isnan(v)) return "nan";
  std::ostringstream s;
  s.precision(prec);
  s << v;
  return s.str();
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = std::llround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", (long long)t);
  return buf;
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(::isatty(STDOUT_FILENO) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t done, const std::string& fields, double items_per_s, bool force_line) {
  auto now = std::chrono::steady_clock::now();
  double el = std::chrono::duration<double>(now - start_).count();
  if (!force_line && tty_ && std::chrono::duration<double>(now - last_).count() < 0.2) return;
  if (!force_line && !tty_) return;  // plain logs get only the forced (per-epoch) lines
  last_ = now;
  double eta = done > 0 ? el / double(done) * double(total_ - done) : NAN;
  std::ostringstream s;
  s << label_ << " " << done << "/" << total_ << " " << fields;
  if (items_per_s > 0) s << " | " << int64_t(items_per_s) << " img/s";
  s << " | " << format_duration(el) << " elapsed, ETA " << format_duration(eta);
  if (tty_) {
    std::cout << "\r\033[K" << s.str() << (force_line ? "\n" : "") << std::flush;
  } else {
    std::cout << s.str() << "\n" << std::flush;
  }
}

void Progress::finish(const std::string& fields) { update(total_, fields, 0, true); }

}  // namespace minima::cli
