// apps/main.cpp: the `minima` command line. Each experiment registers itself (apps/*.cpp with a
// static cli::Register); main finds the command, runs it, and turns any minima::Error (or other
// exception) into "error: ..." on stderr with exit status 1. Output that could not be written to
// stdout (a full disk) fails the command as well.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/error.h"
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

static int dispatch(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage();
    if (argc >= 2) return 0;
    std::cout.flush();
    std::cerr << "\nerror: no command given (see the list above)\n";
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
