// core/profiler.h: where a program spends its time, kernel entry by kernel entry.
//
// While a ProfileSession is alive, backend_for() hands out a timing wrapper around each backend
// (CPU or CUDA): every entry of core/backend.h is timed from a synchronized device to a
// synchronized device, so a GPU kernel's time is its own and not just its launch, and the times
// are summed per entry, op and dtype, e.g. "conv2d_forward bfloat16", "binary add float32",
// "copy float32->bfloat16"; elementwise entries that read or write a strided (not broadcast)
// tensor say so ("binary add float32 strided"). An entry that calls other entries (a bfloat16
// convolution that runs on float32 copies) is timed as a whole; the calls it makes are part of
// its time and are not counted again. What no entry covers (autograd's bookkeeping, allocation, the host's own work)
// is the profiled step's time less the entries' sum.
//
// The synchronizations cost time, and they stop the host from queueing work ahead of the device,
// so a profiled program runs slower than an unprofiled one: profile apart from timing, as
// `minima bench train --profile N` does (N extra steps after the timed ones).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace minima {

class Backend;

struct ProfileRow {
  std::string name;  // "<entry> [<op>] <dtype> [strided]", e.g. "unary_backward relu float32"
  int64_t calls = 0;
  double seconds = 0;
};

// Records every backend entry made on the thread that opened it, from construction to
// destruction (entries on other threads run untimed); one session at a time (a second one is an
// error).
class ProfileSession {
 public:
  ProfileSession();
  ~ProfileSession();
  ProfileSession(const ProfileSession&) = delete;
  ProfileSession& operator=(const ProfileSession&) = delete;
  // What was recorded so far, the longest total time first (ties by name).
  std::vector<ProfileRow> rows() const;
};

bool profiling();  // a session is alive

// The timing wrapper of `inner` (one per backend, made on first use); backend_for() returns it
// while profiling() holds.
Backend& profiled(Backend& inner);

// Runs `run` as one call of the entry `name()` on `b`: synchronizes b, runs, synchronizes b again
// and adds the time to the row. Outside a session, on another thread than the session's, or
// inside an entry already being timed, it only runs `run`.
void profile_call(Backend& b, const std::function<std::string()>& name, const std::function<void()>& run);

// The rows as a table per step (calls and milliseconds divided by `steps`), each with its share
// of `step_seconds` (a profiled step's mean wall time): the `top` longest, one line for the rest,
// the sum of all entries and what lies outside them.
std::string profile_table(const std::vector<ProfileRow>& rows, int64_t steps, double step_seconds, size_t top = 25);

}  // namespace minima
