// tests/torch_peer.h: PyTorch as the tests' peer. Whether /usr/bin/python3 imports torch (the
// cross-checks skip, saying so, when it does not), and running a peer script for its output.
#pragma once
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace testutil {

inline bool torch_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0;
  return ok;
}

// Runs cmd with its stderr joined to its stdout and returns what it printed; the test fails,
// showing the command and its output, unless it exits 0.
inline std::string run_peer(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int rc = pclose(p);
  INFO("command: ", cmd, "\noutput: ", out);
  REQUIRE(rc == 0);
  return out;
}

}  // namespace testutil
