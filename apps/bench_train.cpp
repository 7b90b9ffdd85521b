// apps/bench_train.cpp: `minima bench train`: images/s of a full training step (forward,
// cross-entropy, backward, SGD update with momentum and weight decay) for each network on random
// data already on the device, and in the same run the same figure for PyTorch eager on the same
// device when a python3 that imports torch is found (tests/crosscheck/bench_torch.py of the
// source tree, or --torch-script). On the CPU, PyTorch gets as many threads
// as minima's OpenMP (OMP_NUM_THREADS), so the two figures compare like for like, and by default
// it keeps the host memory it frees in its heap, as minima's CPU allocator does (--torch-heap):
// glibc's default gives every block above its mmap threshold back to the OS on free, so each of
// the peer's CPU steps faulted its activations' pages in again, which took half of a smallcnn
// step at batch 128 on a virtual machine (12,000 faults a step; 700 against 1,370 img/s).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/experiment.h"
#include "apps/trainer.h"
#include "core/backend.h"
#include "core/ops.h"
#include "core/parse.h"
#include "nn/autocast.h"
#include "nn/models.h"
#include "optim/optim.h"

namespace minima::app {
namespace {

// Runs `cmd` and returns its stdout; rc is the exit status (-1 when it could not start).
std::string capture(const std::string& cmd, int& rc) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  rc = pclose(p);
  return out;
}

// Page faults a timed step may take before the table says so: 1 MB of fresh pages.
constexpr double kNotablePageFaults = 256;

int run_bench_train(cli::Args& a) {
  a.set_description("Images/s of a full training step, minima and (when available) PyTorch eager.");
  std::vector<std::string> list = a.get_string_list("arch", "all", "architecture, comma-separated list, or all");
  int64_t batch = a.get_int("batch", 128, "batch size");
  std::string dev_s = a.get_string("device", "auto", "cpu, cuda, cuda:N or auto");
  cli::CudaFlags cuda_flags = cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  std::string precision_s =
      a.get_string("precision", "fp32",
                   "fp32, or bf16: bfloat16 activations and weights, float32 master weights and BN statistics");
  nn::AutocastGuard precision(nn::precision_from_flag(precision_s));
  std::string in = a.get_string("in", "3x32x32", "input shape CxHxW");
  int64_t classes = a.get_int("classes", 10, "number of classes");
  // Five: on the CPU the heap grows in bursts over the first steps (steps 1 and 2 of smallcnn, 1
  // and 4 of ResNet18), each a few thousand fresh pages that would land in the timed ones.
  int64_t warmup = a.get_int("warmup", 5, "untimed steps first");
  int64_t iters = a.get_int("iters", 5, "timed steps");
  int64_t profile = a.get_int("profile", 0,
                              "after the timed steps, this many more with every backend entry timed; prints where "
                              "a step's time goes, per entry, op and dtype");
  std::string torch_mode = a.get_string("torch", "auto", "auto (when python3 imports torch), on or off");
  std::string torch_heap =
      a.get_string("torch-heap", "keep",
                   "host memory the peer frees: keep (in its heap, as minima's allocator does) or "
                   "release (glibc's default: large blocks go back to the OS, and fault in again)");
  std::string script =
      a.get_string("torch-script", apps::source_path("tests/crosscheck/bench_torch.py"), "the PyTorch twin");
  std::string python =
      a.get_string("python", "",
                   "python interpreter with torch (default: first of python3, /usr/bin/python3 that imports torch)");
  if (a.finish()) return 0;
  MINIMA_CHECK(batch > 0 && iters > 0 && warmup >= 0 && profile >= 0,
               "bench train: --batch and --iters must be positive, --warmup and --profile at least 0");
  Device dev = device_from_flag(dev_s);
  Shape chw;
  {
    std::stringstream ss(in);
    std::string part;
    while (std::getline(ss, part, 'x')) {
      std::optional<int64_t> v = parse_int64(part);
      MINIMA_CHECK(v && *v > 0, "--in expects CxHxW with positive sizes, got '", in, "'");
      chw.push_back(*v);
    }
    MINIMA_CHECK(chw.size() == 3, "--in expects CxHxW, got '", in, "'");
  }
  if (list == std::vector<std::string>{"all"}) list = nn::model_names();
  MINIMA_CHECK(!list.empty(), "bench train: --arch needs at least one architecture (or all)");
  const auto names = nn::model_names();
  for (const auto& arch : list)
    MINIMA_CHECK(std::find(names.begin(), names.end(), arch) != names.end(), "bench train: unknown architecture '",
                 arch, "' (minima models lists them)");
  MINIMA_CHECK(torch_mode == "auto" || torch_mode == "on" || torch_mode == "off",
               "bench train: --torch must be auto, on or off, got '", torch_mode, "'");
  MINIMA_CHECK(torch_heap == "keep" || torch_heap == "release",
               "bench train: --torch-heap must be keep or release, got '", torch_heap, "'");
  bool use_torch = false;
  if (torch_mode != "off") {
    std::vector<std::string> candidates =
        python.empty() ? std::vector<std::string>{"python3", "/usr/bin/python3"} : std::vector<std::string>{python};
    for (const auto& py : candidates) {
      int rc = 0;
      capture(py + " -c 'import torch' > /dev/null 2>&1", rc);
      if (rc == 0) {
        python = py;
        use_torch = cli::file_exists(script);
        break;
      }
    }
    const std::string tried = python.empty() ? "python3 and /usr/bin/python3" : python;
    MINIMA_CHECK(use_torch || torch_mode != "on", "bench train: --torch on but ", tried, " cannot import torch or ",
                 script, " is missing");
    if (!use_torch)
      std::cout << "(PyTorch comparison skipped: " << tried << " with torch or " << script << " not found)\n";
  }
  std::cout << "training step (forward + backward + SGD), batch " << batch << ", input " << in << ", device "
            << dev.str() << ", " << precision_s;
  if (dev.is_cpu()) std::cout << ", " << omp_get_max_threads() << " threads";
  if (use_torch)
    std::cout << ", PyTorch " << (torch_heap == "keep" ? "keeping" : "releasing") << " freed memory (--torch-heap)";
  std::cout << "\n";
  // The first column holds the longest name (inception-small overran a fixed 12).
  int name_width = 12;
  for (const auto& arch : list) name_width = std::max(name_width, int(arch.size()));
  char header[256];
  std::snprintf(header, sizeof header, "%-*s %13s %15s %16s\n", name_width, "arch", "minima img/s", "pytorch img/s",
                "minima/pytorch");
  std::cout << header;
  for (const auto& arch : list) {
    const StepTiming timing = time_training_step(arch, chw, classes, batch, dev, warmup, iters, profile);
    double mine = double(batch) / timing.seconds;
    double theirs = 0, their_faults = 0;
    if (use_torch) {
      int rc = 0;
      std::string out =
          capture(cli::torch_peer_env() + python + " " + script + " " + arch + " " + in + " " +
                      std::to_string(classes) + " " + std::to_string(batch) + " " +
                      (dev.is_cuda() ? "cuda:" + std::to_string(dev.index) : "cpu") + " " + std::to_string(warmup) +
                      " " + std::to_string(iters) + " " + std::to_string(omp_get_max_threads()) + " " + precision_s +
                      " " + (cuda_flags.tf32 ? "tf32" : "ieee") + " " + torch_heap + " 2>&1",
                  rc);
      size_t brace = out.find('{');
      if (rc == 0 && brace != std::string::npos) {
        const Json peer = Json::parse(out.substr(brace));
        theirs = peer.at("images_per_s").as_double();
        if (peer.contains("page_faults_per_step")) their_faults = peer.at("page_faults_per_step").as_double();
        // A twin that names its heap policy must have taken the one asked for.
        MINIMA_CHECK(!peer.contains("heap") || peer.at("heap").as_string() == torch_heap, "bench train: ", script,
                     " ran with heap '", peer.at("heap").as_string(), "', not the --torch-heap ", torch_heap,
                     " asked for");
      } else {
        std::cerr << "PyTorch run for " << arch << " failed:\n" << out << "\n";
      }
    }
    char buf[256];
    if (theirs > 0)
      std::snprintf(buf, sizeof buf, "%-*s %13.1f %15.1f %16.2f", name_width, arch.c_str(), mine, theirs,
                    mine / theirs);
    else
      std::snprintf(buf, sizeof buf, "%-*s %13.1f %15s %16s", name_width, arch.c_str(), mine, "-", "-");
    std::cout << buf << '\n' << std::flush;  // one row at a time: the peer may take a while
    // Fresh host pages in the timed steps (a heap still growing, or memory given back to the OS
    // and faulted in again) cost several microseconds each on some machines: say so.
    if (timing.page_faults >= kNotablePageFaults || their_faults >= kNotablePageFaults)
      std::cout << "  (page faults in a timed step: minima " << std::llround(timing.page_faults)
                << (use_torch ? ", PyTorch " + std::to_string(std::llround(their_faults)) : std::string())
                << "; a longer --warmup lets a growing heap settle, and --torch-heap keep spares the peer's)\n";
    if (profile > 0) std::cout << profile_table(timing.profile, profile, timing.profiled_seconds) << std::flush;
  }
  return 0;
}

cli::RegisterBench reg("train", "images/s of a full training step per network (vs PyTorch eager)", run_bench_train);

}  // namespace
}  // namespace minima::app
