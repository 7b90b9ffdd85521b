// tests/torch_peer.h: PyTorch as the tests' peer. Whether /usr/bin/python3 imports torch (the
// cross-checks skip, saying so, when it does not), and running a peer script for its output.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "run_command.h"

namespace testutil {

inline bool torch_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0;
  return ok;
}

// Runs cmd with its stderr joined to its stdout and returns what it printed; the test fails,
// showing the command and its output, unless it exits 0.
inline std::string run_peer(const std::string& cmd) {
  const Run r = run_command(cmd);
  INFO("command: ", cmd, "\noutput: ", r.output);
  REQUIRE(r.rc == 0);
  return r.output;
}

}  // namespace testutil
