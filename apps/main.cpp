// apps/main.cpp: the `minima` command line. Each experiment registers itself (apps/*.cpp with a
// static cli::Register); main finds the command, runs it, and turns any minima::Error (or other
// exception) into "error: ..." on stderr with exit status 1. Output that could not be written to
// stdout (a full disk) fails the command as well.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/parse.h"
#include "git_rev.h"

using namespace minima;

static void usage() {
  auto cmds = cli::registry();
  std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::cout << "minima: a from-scratch deep-learning framework for the \"is generalization all about SGD?\" "
               "experiments\n\nusage: minima <command> [flags]   (minima <command> --help for its flags)\n\n"
               "commands:\n";
  for (const auto& c : cmds) {
    std::string n = "  " + c.name;
    if (n.size() < 24) n.append(24 - n.size(), ' ');
    std::cout << n << c.summary << "\n";
  }
  std::cout << "  bench                 benchmarks (minima bench for the list)\n";
  std::cout << "\nbuilt at git revision " << MINIMA_GIT_REV
#ifdef MINIMA_HAS_CUDA
            << " with CUDA"
#else
            << " without CUDA"
#endif
            << "\n";
}

// `minima bench <name> [flags]`: the benchmarks registered with cli::RegisterBench.
static int run_bench(int argc, char** argv) {
  auto list = cli::bench_registry();
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  if (argc < 3 || argv[2][0] == '-') {
    std::cout << "usage: minima bench <name> [flags]   (minima bench <name> --help)\n\nbenchmarks:\n";
    for (const auto& c : list) {
      std::string n = "  " + c.name;
      if (n.size() < 16) n.append(16 - n.size(), ' ');
      std::cout << n << c.summary << "\n";
    }
    if (argc >= 3 && (!std::strcmp(argv[2], "--help") || !std::strcmp(argv[2], "-h"))) return 0;
    std::cout.flush();
    if (argc < 3) {
      std::cerr << "\nerror: no benchmark named (see the list above)\n";
      return 1;
    }
    std::cerr << "\nerror: expected a benchmark name before the flags, got '" << argv[2] << "'\n";
    return 2;
  }
  std::string sub = argv[2];
  for (const auto& c : list) {
    if (c.name != sub) continue;
    try {
      cli::Args args("bench " + sub, std::vector<std::string>(argv + 3, argv + argc));
      return c.run(args);
    } catch (const std::exception& e) {
      std::cout.flush();
      std::cerr << "\nerror: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "error: unknown benchmark '" << sub << "' (run minima bench for the list)\n";
  return 2;
}

// Some commands' results are all on stdout (eval's JSON, models, data): when stdout could not take
// them (a full disk, a file system error), the command failed, whatever it returned.
static int check_output(int rc) {
  errno = 0;
  std::cout.flush();
  const bool flushed = std::fflush(stdout) == 0;
  const int err = errno;
  if (flushed && std::cout.good() && !std::ferror(stdout)) return rc;
  std::cerr << "\nerror: could not write the output (" << (err != 0 ? std::strerror(err) : "stdout failed") << ")\n";
  return rc != 0 ? rc : 1;
}

// OMP_NUM_THREADS gets --threads' bound: OpenMP starts a thread, each with its own stack, for every
// one asked for, and libgomp crashes (SIGSEGV in the first parallel region) when asked for 100,000.
// A list ("4,2") sets the threads of nested levels; items that are not plain numbers libgomp warns
// about and ignores itself. Returns the error message, or nothing when the variable is fine.
static std::optional<std::string> omp_threads_problem() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env == nullptr) return std::nullopt;
  std::stringstream items(env);
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t first = item.find_first_not_of(" \t"), last = item.find_last_not_of(" \t");
    if (first == std::string::npos) continue;
    const std::string digits = item.substr(first, last - first + 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::optional<uint64_t> n = parse_uint64(digits);
    if (!n || *n > uint64_t(cli::kMaxThreads))
      return "OMP_NUM_THREADS=" + std::string(env) + ": at most " + std::to_string(cli::kMaxThreads) +
             " threads, as with --threads (OpenMP crashes when it cannot start them all): set it lower, or unset "
             "it and use --threads";
  }
  return std::nullopt;
}

static int dispatch(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage();
    if (argc >= 2) return 0;
    std::cout.flush();
    std::cerr << "\nerror: no command given (see the list above)\n";
    return 1;
  }
  if (auto problem = omp_threads_problem()) {
    std::cerr << "error: " << *problem << "\n";
    return 1;
  }
  std::string name = argv[1];
  if (name == "bench") return run_bench(argc, argv);
  for (const auto& c : cli::registry()) {
    if (c.name != name) continue;
    try {
      cli::Args args(name, std::vector<std::string>(argv + 2, argv + argc));
      return c.run(args);
    } catch (const std::exception& e) {
      std::cout.flush();
      std::cerr << "\nerror: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "error: unknown command '" << name << "' (run minima --help for the list)\n";
  return 2;
}

int main(int argc, char** argv) { return check_output(dispatch(argc, argv)); }
