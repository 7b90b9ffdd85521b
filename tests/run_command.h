// tests/run_command.h: running a shell command from a test (the built `minima`, a PyTorch peer
// script, a tool) and reading back everything it printed.
#pragma once
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

namespace testutil {

struct Run {
  int rc = 0;          // pclose's status: 0 when the command exited 0
  std::string output;  // stdout and stderr together
};

// A shell command with stderr folded into stdout.
inline Run run_command(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  Run r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  r.rc = pclose(p);
  return r;
}

}  // namespace testutil
