// apps/bench_cpu.cpp: `minima bench cpu`: GEMM GFLOP/s at 256/512/1024, matrix-vector products
// with a 2048x2048 matrix (plain and transposed: the GEMM's unpacked path), and two conv2d layers,
// forward and forward+backward time on the CPU backend: ResNet18's first stage on CIFAR
// (128x64x32x32, 3x3, 64 out) and its third (128x256x8x8, 3x3, 256 out), where the image is small
// and each per-image product narrow. PyTorch's CPU numbers for the same shapes are measured in the
// same run when python3 with torch is present.
// Each figure is the best of several repetitions after a warm-up, with the same thread count.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "apps/cli.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/cpu/cpu_backend.h"

namespace minima {
namespace {

// More timed repetitions than a best-of needs; a typo beyond (and an int would wrap).
constexpr int64_t kMaxReps = 1000;

template <class F>
double best_seconds(int64_t reps, F&& f) {
  f();  // warm-up
  double best = 1e30;
  for (int64_t r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Runs a python snippet and returns its stdout, or "" when python3/torch is unavailable.
std::string run_python(const std::string& python, const std::string& code) {
  std::string cmd = python + " - 2>/dev/null <<'PYEOF'\n" + code + "\nPYEOF";
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p.get())) out += buf;
  return out;
}

constexpr int64_t kGemvN = 2048;  // the matrix-vector rows' matrix: 16 MB, more than L2

// Batch 128, C in and out channels, HW x HW images, 3x3 kernel, padding 1.
struct ConvShape {
  int64_t C, HW;
};
const std::vector<ConvShape>& conv_shapes() {
  static const std::vector<ConvShape> v = {{64, 32}, {256, 8}};
  return v;
}

int bench_cpu(cli::Args& a) {
  a.set_description(
      "GEMM, matrix-vector and conv2d throughput of the CPU backend, side by side with PyTorch's CPU kernels.");
  int64_t threads = a.get_int("threads", omp_get_max_threads(), "OpenMP threads (and torch.set_num_threads)");
  int64_t reps =
      a.get_int("reps", 5, "timed repetitions (the best is reported; at most " + std::to_string(kMaxReps) + ")");
  std::string python =
      a.get_string("python", "/usr/bin/python3", "python with torch for the peer numbers ('' to skip)");
  bool skip_conv = a.get_flag("no-conv", "skip the conv2d layers");
  if (a.finish()) return 0;
  MINIMA_CHECK(threads >= 1 && threads <= cli::kMaxThreads, "--threads must be in [1, ", cli::kMaxThreads, "], got ",
               threads);
  MINIMA_CHECK(reps >= 1 && reps <= kMaxReps, "--reps must be in [1, ", kMaxReps, "], got ", reps);
  omp_set_num_threads(int(threads));
  Generator g(0);

  std::map<std::string, double> torch;
  if (!python.empty()) {
    std::ostringstream py;
    py << "import torch, time\ntorch.set_num_threads(" << threads << ")\n"
       << "def best(f, r=" << reps << "):\n  f(); b=1e30\n  for _ in range(r):\n"
       << "    t=time.perf_counter(); f(); b=min(b, time.perf_counter()-t)\n  return b\n"
       << "for n in (256, 512, 1024):\n  a=torch.randn(n,n); b=torch.randn(n,n)\n"
       << "  print('gemm%d %g' % (n, best(lambda: a@b)))\n"
       << "a=torch.randn(" << kGemvN << "," << kGemvN << "); v=torch.randn(" << kGemvN << ")\n"
       << "print('gemv %g' % best(lambda: a@v)); print('gemvt %g' % best(lambda: a.t()@v))\n";
    if (!skip_conv)
      for (const ConvShape& c : conv_shapes())
        py << "x=torch.randn(128," << c.C << "," << c.HW << "," << c.HW << ",requires_grad=True); "
           << "w=torch.randn(" << c.C << "," << c.C << ",3,3,requires_grad=True)\n"
           << "print('convf" << c.C << " %g' % best(lambda: torch.nn.functional.conv2d(x,w,padding=1)))\n"
           << "def fb():\n  y=torch.nn.functional.conv2d(x,w,padding=1); y.backward(torch.ones_like(y))\n"
           << "print('convfb" << c.C << " %g' % best(fb))\n";
    std::istringstream out(run_python(python, py.str()));
    std::string k;
    double v;
    while (out >> k >> v) torch[k] = v;
  }
  auto peer = [&](const std::string& k, double flops) -> std::string {
    if (!torch.count(k)) return "n/a";
    return cli::fmt(flops / torch[k] / 1e9, 4);
  };

  std::printf("CPU backend, %lld threads, %s GEMM micro-kernel%s\n\n", (long long)threads,
              cpu::gemm_isa_name(cpu::gemm_isa()),
              torch.empty() ? " (PyTorch peer unavailable)" : ", PyTorch peer in the same run");
  std::printf("%-34s %12s %12s %8s\n", "benchmark", "minima", "pytorch", "ratio");
  for (int64_t n : {256, 512, 1024}) {
    Tensor A = randn({n, n}, g), B = randn({n, n}, g);
    double t = best_seconds(reps, [&] { matmul(A, B); });
    double flops = 2.0 * double(n) * double(n) * double(n);
    std::string k = "gemm" + std::to_string(n);
    std::string ratio = torch.count(k) ? cli::fmt(torch[k] / t, 3) : "n/a";
    std::printf("%-34s %12s %12s %8s\n", ("sgemm " + std::to_string(n) + "^3 (GFLOP/s)").c_str(),
                cli::fmt(flops / t / 1e9, 4).c_str(), peer(k, flops).c_str(), ratio.c_str());
  }
  {
    Tensor A = randn({kGemvN, kGemvN}, g), v = randn({kGemvN}, g);
    const double flops = 2.0 * double(kGemvN) * double(kGemvN);
    for (bool t : {false, true}) {
      const Tensor M = t ? A.t() : A;
      double sec = best_seconds(reps, [&] { matmul(M, v); });
      std::string k = t ? "gemvt" : "gemv";
      std::string ratio = torch.count(k) ? cli::fmt(torch[k] / sec, 3) : "n/a";
      std::string name = std::string("sgemv ") + (t ? "A^T" : "A") + " x, " + std::to_string(kGemvN) + "^2 (GFLOP/s)";
      std::printf("%-34s %12s %12s %8s\n", name.c_str(), cli::fmt(flops / sec / 1e9, 4).c_str(), peer(k, flops).c_str(),
                  ratio.c_str());
    }
  }
  if (!skip_conv) {
    auto row = [&](const std::string& name, double t, const std::string& k) {
      std::string pt = torch.count(k) ? cli::fmt(torch[k] * 1e3, 4) : "n/a";
      std::string ratio = torch.count(k) ? cli::fmt(torch[k] / t, 3) : "n/a";
      std::printf("%-34s %12s %12s %8s\n", name.c_str(), cli::fmt(t * 1e3, 4).c_str(), pt.c_str(), ratio.c_str());
    };
    for (const ConvShape& c : conv_shapes()) {
      Tensor x = randn({128, c.C, c.HW, c.HW}, g), w = randn({c.C, c.C, 3, 3}, g);
      x.requires_grad_();
      w.requires_grad_();
      Conv2dParams p;
      p.pad_h = p.pad_w = 1;
      double tf = best_seconds(reps, [&] {
        NoGradGuard ng;
        conv2d(x, w, Tensor(), p);
      });
      double tfb = best_seconds(reps, [&] {
        Tensor y = conv2d(x, w, Tensor(), p);
        y.backward(ones_like(y));
      });
      std::string shape = "conv 128x" + std::to_string(c.C) + "x" + std::to_string(c.HW) + "x" + std::to_string(c.HW);
      row(shape + " 3x3 fwd (ms)", tf, "convf" + std::to_string(c.C));
      row(shape + " 3x3 fwd+bwd (ms)", tfb, "convfb" + std::to_string(c.C));
    }
  }
  std::printf("\nratio = pytorch time / minima time (1.0 = parity, 0.5 = minima twice as slow)\n");
  return 0;
}

cli::RegisterBench reg("cpu", "CPU GEMM, matrix-vector and two conv2d layers, against PyTorch CPU", bench_cpu);

}  // namespace
}  // namespace minima
