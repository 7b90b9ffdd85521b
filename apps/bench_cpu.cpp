// apps/bench_cpu.cpp: `minima bench cpu`: every CPU kernel family timed on the CPU backend, side by
// side with PyTorch's CPU kernels measured in the same run when python3 with torch is present.
// - gemm: GFLOP/s at 256, 512 and 1024 cubed.
// - gemv: matrix-vector products with a 2048x2048 matrix, plain and transposed (the GEMM's
//   unpacked path).
// - conv: two conv2d layers, forward and forward+backward: ResNet18's first stage on CIFAR
//   (128x64x32x32, 3x3, 64 out) and its third (128x256x8x8, 3x3, 256 out), where the image is
//   small and each per-image product narrow.
// - elementwise, reduce, softmax, batchnorm, pool, optim: the memory-bound kernels, in GB/s of
//   compulsory traffic (each input read once, each output written once, as `bench ops` counts on
//   the GPU), on operands larger than the caches. minima's kernels are called through the backend
//   with preallocated outputs, and PyTorch's through their `out=` forms where its CPU build has
//   them. Batch norm has none there, and the optimizer rows run torch.optim's own step (as a
//   training loop does, temporaries included), so those PyTorch rows allocate; the script keeps
//   freed blocks in the heap, so that allocation costs no page faults.
// Each figure is the best of several repetitions after a warm-up, with the same thread count, and
// the repetitions go on for at least --min-time seconds: the first tens of milliseconds after the
// peer's process exits run slowly (a 512^3 product took 4.8 ms instead of 1.0 for its first
// 30 ms, both in this process and in the peer's after starting), and five repetitions of a short
// row fit inside that window.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/cpu/cpu_backend.h"

namespace minima {
namespace {

// More timed repetitions than a best-of needs; a typo beyond (and an int would wrap).
constexpr int64_t kMaxReps = 1000;

// The best of at least `reps` timed calls that together last at least `min_seconds`, after a
// warm-up call; never more than kMaxReps calls.
template <class F>
double best_seconds(int64_t reps, double min_seconds, F&& f) {
  using Clock = std::chrono::steady_clock;
  f();  // warm-up
  double best = 1e30;
  const Clock::time_point start = Clock::now();
  for (int64_t r = 0;
       r < kMaxReps && (r < reps || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds); ++r) {
    const Clock::time_point t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Runs a python snippet and returns its stdout, or "" when python3/torch is unavailable.
std::string run_python(const std::string& python, const std::string& code) {
  std::string cmd = cli::torch_peer_env() + python + " - 2>/dev/null <<'PYEOF'\n" + code + "\nPYEOF";
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

// The memory-bound families' operands: 16M floats (64 MB) for elementwise and reductions, a
// [16384, 1000] log-softmax, ResNet18's first-stage activation for batch norm and pooling, and
// ResNet18's parameter count for the optimizers.
constexpr int64_t kEltN = int64_t(1) << 24;
constexpr int64_t kRowLen = 1024, kRows = kEltN / kRowLen;
constexpr int64_t kSoftmaxRows = 16384, kSoftmaxCols = 1000;
constexpr int64_t kMapN = 128, kMapC = 64, kMapHW = 32;
constexpr int64_t kParams = 11'173'962;

const std::vector<std::string>& families() {
  static const std::vector<std::string> v = {"gemm",    "gemv",      "conv", "elementwise", "reduce",
                                             "softmax", "batchnorm", "pool", "optim"};
  return v;
}

// The PyTorch side: one snippet that prints "key seconds" per figure, for the families wanted.
std::string torch_script(int64_t threads, int64_t reps, double min_seconds,
                         const std::function<bool(const std::string&)>& want) {
  std::ostringstream py;
  // Large blocks stay in the heap and are reused (glibc would map and fault in fresh pages for each
  // one above 32 MB), so the rows where PyTorch must allocate (batch norm, the optimizers) time
  // the kernels rather than the page faults. A row whose call fails prints nothing: n/a.
  py << "import torch, time, ctypes\ntorch.set_num_threads(" << threads << ")\nA=torch.ops.aten\n"
     << "libc=ctypes.CDLL('libc.so.6'); libc.mallopt(-3, 1<<30); libc.mallopt(-1, 1<<30)\n"
     << "def best(f, r=" << reps << ", least=" << min_seconds << ", most=" << kMaxReps << "):\n"
     << "  f(); b=1e30; i=0; t0=time.perf_counter()\n"
     << "  while i < most and (i < r or time.perf_counter()-t0 < least):\n"
     << "    t=time.perf_counter(); f(); b=min(b, time.perf_counter()-t); i+=1\n  return b\n"
     << "def out(k, f):\n  try: print('%s %g' % (k, best(f)), flush=True)\n  except Exception: pass\n";
  if (want("gemm"))
    py << "for n in (256, 512, 1024):\n  a=torch.randn(n,n); b=torch.randn(n,n)\n"
       << "  out('gemm%d' % n, lambda: a@b)\n";
  if (want("gemv"))
    py << "a=torch.randn(" << kGemvN << "," << kGemvN << "); v=torch.randn(" << kGemvN << ")\n"
       << "out('gemv', lambda: a@v); out('gemvt', lambda: a.t()@v)\n";
  if (want("conv"))
    for (const ConvShape& c : conv_shapes())
      py << "x=torch.randn(128," << c.C << "," << c.HW << "," << c.HW << ",requires_grad=True); "
         << "w=torch.randn(" << c.C << "," << c.C << ",3,3,requires_grad=True)\n"
         << "out('convf" << c.C << "', lambda: torch.nn.functional.conv2d(x,w,padding=1))\n"
         << "def fb():\n  y=torch.nn.functional.conv2d(x,w,padding=1); y.backward(torch.ones_like(y))\n"
         << "out('convfb" << c.C << "', fb)\n";
  if (want("elementwise"))
    py << "x=torch.randn(" << kEltN << "); y=torch.randn(" << kEltN << "); z=torch.empty(" << kEltN
       << "); g=torch.empty(" << kEltN << ")\n"
       << "out('add', lambda: torch.add(x, y, out=z))\n"
       << "out('relu', lambda: torch.clamp(x, min=0, out=z))\n"
       << "out('exp', lambda: torch.exp(x, out=z))\n"
       << "out('relu_bwd', lambda: A.threshold_backward.grad_input(y, x, 0, grad_input=g))\n"
       << "m=x.view(" << kRows << "," << kRowLen << "); bias=torch.randn(" << kRowLen << "); o=z.view(" << kRows << ","
       << kRowLen << ")\n"
       << "out('add_bcast', lambda: torch.add(m, bias, out=o))\n";
  if (want("reduce"))
    py << "x=torch.randn(" << kEltN << "); m=x.view(" << kRows << "," << kRowLen << ")\n"
       << "o1=torch.empty(" << kRows << ",1); o0=torch.empty(1," << kRowLen << "); oa=torch.empty(()); oi=torch.empty("
       << kRows << ",1,dtype=torch.long)\n"
       << "out('sum_last', lambda: torch.sum(m, 1, keepdim=True, out=o1))\n"
       << "out('sum_first', lambda: torch.sum(m, 0, keepdim=True, out=o0))\n"
       << "out('sum_all', lambda: torch.sum(x, 0, out=oa))\n"
       << "out('max_last', lambda: torch.amax(m, 1, keepdim=True, out=o1))\n"
       << "out('max_first', lambda: torch.amax(m, 0, keepdim=True, out=o0))\n"
       << "out('max_all', lambda: torch.amax(x, 0, out=oa))\n"
       << "out('argmax_last', lambda: torch.argmax(m, 1, keepdim=True, out=oi))\n";
  if (want("softmax"))
    py << "m=torch.randn(" << kSoftmaxRows << "," << kSoftmaxCols << "); o=torch.empty_like(m); "
       << "gy=torch.randn_like(m); gx=torch.empty_like(m)\n"
       << "out('log_softmax', lambda: A._log_softmax.out(m, 1, False, out=o))\n"
       << "out('log_softmax_bwd', lambda: A._log_softmax_backward_data.out(gy, o, 1, torch.float32, out=gx))\n";
  if (want("batchnorm"))
    py << "x=torch.randn(" << kMapN << "," << kMapC << "," << kMapHW << "," << kMapHW << "); y=torch.empty_like(x); "
       << "gy=torch.randn_like(x); gx=torch.empty_like(x)\n"
       << "w=torch.randn(" << kMapC << "); b=torch.randn(" << kMapC << "); rm=torch.zeros(" << kMapC
       << "); rv=torch.ones(" << kMapC << ")\n"
       << "out('bn_train', lambda: A.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5))\n"
       << "_, sm, si = A.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)\n"
       << "out('bn_bwd', lambda: A.native_batch_norm_backward(gy, x, w, rm, rv, sm, si, True, 1e-5, "
          "[True, True, True]))\n"
       << "out('bn_eval', lambda: A.native_batch_norm(x, w, b, rm, rv, False, 0.1, 1e-5))\n";
  if (want("pool"))
    py << "x=torch.randn(" << kMapN << "," << kMapC << "," << kMapHW << "," << kMapHW << "); gx=torch.empty_like(x)\n"
       << "y=torch.empty(" << kMapN << "," << kMapC << "," << kMapHW / 2 << "," << kMapHW / 2
       << "); idx=torch.empty(y.shape, dtype=torch.long); gy=torch.randn(y.shape)\n"
       << "out('maxpool', lambda: A.max_pool2d_with_indices.out(x, [2,2], [2,2], [0,0], [1,1], False, out=y, "
          "indices=idx))\n"
       << "out('maxpool_bwd', lambda: A.max_pool2d_with_indices_backward.grad_input(gy, x, [2,2], [2,2], [0,0], "
          "[1,1], False, idx, grad_input=gx))\n"
       << "out('avgpool', lambda: A.avg_pool2d.out(x, [2,2], [2,2], [0,0], False, True, None, out=y))\n"
       << "out('avgpool_bwd', lambda: A.avg_pool2d_backward.grad_input(gy, x, [2,2], [2,2], [0,0], False, True, "
          "None, grad_input=gx))\n";
  if (want("optim"))
    py << "p=torch.nn.Parameter(torch.randn(" << kParams << ")); p.grad=torch.randn(" << kParams << ")\n"
       << "o=torch.optim.SGD([p], lr=0.01, momentum=0.9, weight_decay=5e-4); o.step()\n"
       << "out('sgd', o.step)\n"
       << "o=torch.optim.Adam([p], lr=1e-3); o.step()\n"
       << "out('adam', o.step)\n";
  return py.str();
}

// One printed row per figure: minima's, the peer's (or n/a) and the ratio of their times.
struct Table {
  int64_t reps = 5;
  double min_seconds = 0.2;
  std::map<std::string, double> torch;  // key -> PyTorch's seconds

  static void header() { std::printf("%-42s %12s %12s %8s\n", "benchmark", "minima", "pytorch", "ratio"); }
  // `work` is flops or bytes per call (the figure is work/s in units of 1e9), or 0 for a time in ms.
  void row(const std::string& name, double seconds, const std::string& key, double work) {
    auto figure = [&](double s) { return cli::fmt(work > 0 ? work / s / 1e9 : s * 1e3, 4); };
    const bool peer = torch.count(key) > 0;
    std::printf("%-42s %12s %12s %8s\n", name.c_str(), figure(seconds).c_str(),
                peer ? figure(torch[key]).c_str() : "n/a", peer ? cli::fmt(torch[key] / seconds, 3).c_str() : "n/a");
  }
  template <class F>
  void time(const std::string& name, const std::string& key, double work, F&& f) {
    row(name, best_seconds(reps, min_seconds, f), key, work);
  }
};

void gemm_rows(Table& t, Generator& g) {
  for (int64_t n : {256, 512, 1024}) {
    Tensor A = randn({n, n}, g), B = randn({n, n}, g);
    t.time("sgemm " + std::to_string(n) + "^3 (GFLOP/s)", "gemm" + std::to_string(n), 2.0 * double(n) * n * n,
           [&] { matmul(A, B); });
  }
}

void gemv_rows(Table& t, Generator& g) {
  Tensor A = randn({kGemvN, kGemvN}, g), v = randn({kGemvN}, g);
  for (bool tr : {false, true}) {
    const Tensor M = tr ? A.t() : A;
    t.time(std::string("sgemv ") + (tr ? "A^T" : "A") + " x, " + std::to_string(kGemvN) + "^2 (GFLOP/s)",
           tr ? "gemvt" : "gemv", 2.0 * double(kGemvN) * kGemvN, [&] { matmul(M, v); });
  }
}

void conv_rows(Table& t, Generator& g) {
  for (const ConvShape& c : conv_shapes()) {
    Tensor x = randn({128, c.C, c.HW, c.HW}, g), w = randn({c.C, c.C, 3, 3}, g);
    x.requires_grad_();
    w.requires_grad_();
    Conv2dParams p;
    p.pad_h = p.pad_w = 1;
    std::string shape = "conv 128x" + std::to_string(c.C) + "x" + std::to_string(c.HW) + "x" + std::to_string(c.HW);
    t.time(shape + " 3x3 fwd (ms)", "convf" + std::to_string(c.C), 0, [&] {
      NoGradGuard ng;
      conv2d(x, w, Tensor(), p);
    });
    t.time(shape + " 3x3 fwd+bwd (ms)", "convfb" + std::to_string(c.C), 0, [&] {
      Tensor y = conv2d(x, w, Tensor(), p);
      y.backward(ones_like(y));
    });
  }
}

// The memory-bound families, through the backend with preallocated outputs (GB/s of compulsory
// traffic, as bench ops counts it).
void memory_rows(Table& t, Generator& g, const std::function<bool(const std::string&)>& want) {
  NoGradGuard ng;
  Backend& be = cpu_backend();
  const double n = double(kEltN);
  if (want("elementwise")) {
    Tensor x = randn({kEltN}, g), y = randn({kEltN}, g), z = empty({kEltN}), gx = empty({kEltN});
    t.time("add, 16M (GB/s)", "add", 12 * n, [&] { be.binary(BinaryOp::Add, z, x, y); });
    t.time("relu, 16M (GB/s)", "relu", 8 * n, [&] { be.unary(UnaryOp::Relu, z, x, 0, 0); });
    t.time("exp, 16M (GB/s)", "exp", 8 * n, [&] { be.unary(UnaryOp::Exp, z, x, 0, 0); });
    // Reads the upstream gradient and x, writes the gradient.
    t.time("relu backward, 16M (GB/s)", "relu_bwd", 12 * n,
           [&] { be.unary_backward(UnaryOp::Relu, gx, y, x, z, 0, 0); });
    Tensor m = x.view({kRows, kRowLen}), bias = randn({kRowLen}, g), o = z.view({kRows, kRowLen});
    t.time("add [16384,1024]+[1024] (GB/s)", "add_bcast", 8 * n, [&] {
      be.binary(BinaryOp::Add, o, m, bias.expand({kRows, kRowLen}));
    });
  }
  if (want("reduce")) {
    Tensor x = randn({kEltN}, g), m = x.view({kRows, kRowLen});
    Tensor o1 = empty({kRows, 1}), o0 = empty({1, kRowLen}), oa = empty({1}), oi = empty({kRows, 1}, DType::i64);
    t.time("sum [16384,1024] last dim (GB/s)", "sum_last", 4 * n, [&] { be.reduce(ReduceOp::Sum, o1, m, {1}); });
    t.time("sum [16384,1024] first dim (GB/s)", "sum_first", 4 * n, [&] { be.reduce(ReduceOp::Sum, o0, m, {0}); });
    t.time("sum all, 16M (GB/s)", "sum_all", 4 * n, [&] { be.reduce(ReduceOp::Sum, oa, x, {0}); });
    t.time("max [16384,1024] last dim (GB/s)", "max_last", 4 * n, [&] { be.reduce(ReduceOp::Max, o1, m, {1}); });
    t.time("max [16384,1024] first dim (GB/s)", "max_first", 4 * n, [&] { be.reduce(ReduceOp::Max, o0, m, {0}); });
    t.time("max all, 16M (GB/s)", "max_all", 4 * n, [&] { be.reduce(ReduceOp::Max, oa, x, {0}); });
    t.time("argmax [16384,1024] last dim (GB/s)", "argmax_last", 4 * n,
           [&] { be.reduce(ReduceOp::ArgMax, oi, m, {1}); });
  }
  if (want("softmax")) {
    const Shape s{kSoftmaxRows, kSoftmaxCols};
    Tensor m = randn(s, g), o = empty(s), gy = randn(s, g), gx = empty(s);
    const double e = double(kSoftmaxRows) * kSoftmaxCols;
    t.time("log_softmax [16384,1000] (GB/s)", "log_softmax", 8 * e, [&] { be.log_softmax_forward(o, m, 1); });
    t.time("log_softmax backward (GB/s)", "log_softmax_bwd", 12 * e, [&] { be.log_softmax_backward(gx, gy, o, 1); });
  }
  const Shape map{kMapN, kMapC, kMapHW, kMapHW};
  const double mn = double(numel_of(map));
  if (want("batchnorm")) {
    const int64_t C = kMapC;
    Tensor x = randn(map, g), y = empty(map), w = randn({C}, g), bias = randn({C}, g);
    Tensor rm = zeros({C}), rv = ones({C}), mean = empty({C}), invstd = empty({C});
    Tensor gy = randn(map, g), gx = empty(map), gw = empty({C}), gb = empty({C});
    // Forward reads x and writes y; backward reads x and gy and writes gx.
    t.time("batch_norm 128x64x32x32 train fwd (GB/s)", "bn_train", 8 * mn,
           [&] { be.batch_norm_forward_train(y, mean, invstd, x, w, bias, rm, rv, 0.1, 1e-5); });
    t.time("batch_norm backward (GB/s)", "bn_bwd", 12 * mn,
           [&] { be.batch_norm_backward(gx, gw, gb, gy, x, w, mean, invstd); });
    t.time("batch_norm eval fwd (GB/s)", "bn_eval", 8 * mn,
           [&] { be.batch_norm_forward_eval(y, x, w, bias, rm, rv, 1e-5); });
  }
  if (want("pool")) {
    const Shape half{kMapN, kMapC, kMapHW / 2, kMapHW / 2};
    Tensor x = randn(map, g), y = empty(half), idx = empty(half, DType::i64), gx = empty(map), gy = randn(half, g);
    Pool2dParams p{2, 2, 2, 2, 0, 0, true};
    const double q = mn / 4;  // outputs
    // Max pooling also writes (forward) or reads (backward) an 8-byte index per output.
    t.time("max_pool2d 2x2 128x64x32x32 (GB/s)", "maxpool", 4 * mn + 12 * q,
           [&] { be.max_pool2d_forward(y, idx, x, p); });
    t.time("max_pool2d backward (GB/s)", "maxpool_bwd", 4 * mn + 12 * q, [&] { be.max_pool2d_backward(gx, gy, idx); });
    t.time("avg_pool2d 2x2 128x64x32x32 (GB/s)", "avgpool", 4 * mn + 4 * q, [&] { be.avg_pool2d_forward(y, x, p); });
    t.time("avg_pool2d backward (GB/s)", "avgpool_bwd", 4 * mn + 4 * q, [&] { be.avg_pool2d_backward(gx, gy, p); });
  }
  if (want("optim")) {
    const double pn = double(kParams);
    Tensor p = randn({kParams}, g), gr = randn({kParams}, g), m = zeros({kParams}), v = zeros({kParams});
    // SGD reads p, g and the momentum buffer and writes p, g (weight decay goes into it) and the
    // buffer; Adam reads p, g, m and v and writes p, m and v.
    t.time("sgd momentum+wd, 11.2M params (GB/s)", "sgd", 24 * pn,
           [&] { be.sgd_update(p, gr, m, 0.01, 0.9, 0, 5e-4, false, false); });
    int64_t step = 0;
    t.time("adam, 11.2M params (GB/s)", "adam", 28 * pn,
           [&] { be.adam_update(p, gr, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, ++step); });
  }
}

int bench_cpu(cli::Args& a) {
  a.set_description(
      "Every CPU kernel family (GEMM, matrix-vector, conv2d, elementwise, reductions, log-softmax, batch norm, "
      "pooling, optimizer steps), side by side with PyTorch's CPU kernels.");
  int64_t threads = a.get_int("threads", omp_get_max_threads(), "OpenMP threads (and torch.set_num_threads)");
  int64_t reps =
      a.get_int("reps", 5, "timed repetitions (the best is reported; at most " + std::to_string(kMaxReps) + ")");
  double min_seconds =
      a.get_double("min-time", 0.2, "seconds each row's repetitions last at least (more of them, up to 1000)");
  std::string python =
      a.get_string("python", "/usr/bin/python3", "python with torch for the peer numbers ('' to skip)");
  std::vector<std::string> only = a.get_string_list(
      "only", "",
      "families to time: gemm, gemv, conv, elementwise, reduce, softmax, batchnorm, pool, optim (default: all)");
  bool skip_conv = a.get_flag("no-conv", "skip the conv2d layers");
  if (a.finish()) return 0;
  MINIMA_CHECK(threads >= 1 && threads <= cli::kMaxThreads, "--threads must be in [1, ", cli::kMaxThreads, "], got ",
               threads);
  MINIMA_CHECK(reps >= 1 && reps <= kMaxReps, "--reps must be in [1, ", kMaxReps, "], got ", reps);
  MINIMA_CHECK(min_seconds >= 0 && min_seconds <= 60, "--min-time must be in [0, 60], got ", min_seconds);
  for (const std::string& f : only)
    MINIMA_CHECK(std::find(families().begin(), families().end(), f) != families().end(), "--only: unknown family '", f,
                 "' (known: gemm, gemv, conv, elementwise, reduce, softmax, batchnorm, pool, optim)");
  auto want = [&](const std::string& f) {
    if (f == "conv" && skip_conv) return false;
    return only.empty() || std::find(only.begin(), only.end(), f) != only.end();
  };
  omp_set_num_threads(int(threads));
  Generator g(0);

  Table t;
  t.reps = reps;
  t.min_seconds = min_seconds;
  if (!python.empty()) {
    std::istringstream out(run_python(python, torch_script(threads, reps, min_seconds, want)));
    std::string k;
    double v;
    while (out >> k >> v) t.torch[k] = v;
  }
  std::string peer = "PyTorch peer unavailable";
  if (!t.torch.empty()) {
    const std::string env = cli::torch_peer_env();  // "NAME=value " or ""
    peer = "PyTorch peer in the same run" + (env.empty() ? "" : " with " + env.substr(0, env.size() - 1));
  }
  std::printf("CPU backend, %lld threads, %s GEMM micro-kernel, %s\n\n", (long long)threads,
              cpu::gemm_isa_name(cpu::gemm_isa()), peer.c_str());
  Table::header();
  if (want("gemm")) gemm_rows(t, g);
  if (want("gemv")) gemv_rows(t, g);
  if (want("conv")) conv_rows(t, g);
  memory_rows(t, g, want);
  std::printf(
      "\nratio = pytorch time / minima time (1.0 = parity, 0.5 = minima twice as slow); GB/s count each input read "
      "once and each output written once\n");
  return 0;
}

cli::RegisterBench reg("cpu", "every CPU kernel family against PyTorch CPU: GEMM, conv2d, memory-bound ops", bench_cpu);

}  // namespace
}  // namespace minima
