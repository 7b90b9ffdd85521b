// apps/bench_ops.cpp: `minima bench ops`: every CUDA kernel family timed on one device, the native
// kernels side by side with cuBLAS / cuDNN where a vendor path exists, and each figure set
// against a ceiling measured in the same run: the device-to-device copy bandwidth (for
// memory-bound kernels) and cuBLAS's fp32 / TF32 / bf16 GEMM throughput (for GEMM and conv).
// Kernels are called through the backend with preallocated operands, so the times are the
// kernels' own (no allocation, no autograd). Each time is the mean of --reps back-to-back runs
// after a warm-up, measured with CUDA events.
// "vs vendor" is vendor time / native time (1.00 = as fast as the vendor, 0.50 = half its speed).
// Bandwidth figures count compulsory traffic (each input read once, each output written once), so
// a kernel that makes extra passes shows it as a lower figure. The targets are checked in
// the last column: fp32 GEMM 4096^3 >= 0.80 of cuBLAS, conv2d forward of ResNet18's 3x3 layers at
// batch 128 >= 0.50 of cuDNN, batch norm and elementwise kernels >= 70% of the copy bandwidth (on
// operands larger than the L2 cache). A figure that fails (an exception, a CUDA error) is reported
// in its row and the run goes on; the exit status is then non-zero.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/json.h"
#include "core/ops.h"
#include "core/random.h"

#ifdef MINIMA_HAS_CUDA
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_config.h"
#endif

namespace minima {
namespace {

// More timed runs than a mean needs; a typo beyond (and an int would wrap).
constexpr int64_t kMaxReps = 1000;

#ifdef MINIMA_HAS_CUDA

enum class Unit { GBs, TFLOPs };
// Which measured ceiling a row is set against (looked up when the table is printed, so a ceiling
// re-measured at the end of the run applies to every row).
enum class Ceil { Copy, Fp32, Tf32, Bf16 };

struct Row {
  std::string family, op, size;
  double native_ms = -1, vendor_ms = -1;
  double work = 0;  // bytes moved or floating-point operations, per call
  Unit unit = Unit::GBs;
  Ceil ceiling = Ceil::Copy;
  std::string target;  // "", or a description of the target for this row
  double target_min = 0;
  bool target_vs_vendor = false;  // target on vendor/native; else on the fraction of the ceiling
  std::string error;              // why a figure is missing (an exception while timing)
  Row(std::string f, std::string o, std::string s, double native = -1, double vendor = -1, double w = 0,
      Unit u = Unit::GBs, Ceil ceil = Ceil::Copy)
      : family(std::move(f)),
        op(std::move(o)),
        size(std::move(s)),
        native_ms(native),
        vendor_ms(vendor),
        work(w),
        unit(u),
        ceiling(ceil) {}
};

struct Bench {
  int reps = 10;
  int dev = 0;
  Device d = Device::cuda(0);
  Backend* be = nullptr;
  Generator gen{1234};
  std::vector<Row> rows;
  double copy_gbs = 0, fp32_tflops = 0, tf32_tflops = 0, bf16_tflops = 0;

  std::string last_error;             // the exception of the last failed time(), for the row that follows
  std::vector<std::string> failures;  // every exception, in order

  // Mean ms of `reps` runs after one warm-up; -1 (and last_error) when the run throws.
  double time(const std::function<void()>& f, int warmup = 1, int runs = 0) {
    try {
      return cuda::time_ms(f, warmup, runs > 0 ? runs : reps, dev);
    } catch (const std::exception& e) {
      last_error = e.what();
      failures.push_back(e.what());
      std::fprintf(stderr, "  FAILED: %s\n", e.what());
      return -1;
    }
  }
  Tensor randn_t(const Shape& s, DType t = DType::f32) { return randn(s, gen, TensorOptions(t, d)); }
  Tensor empty_t(const Shape& s, DType t = DType::f32) { return empty(s, TensorOptions(t, d)); }

  double ceiling(Ceil c) const {
    switch (c) {
      case Ceil::Copy: return copy_gbs;
      case Ceil::Fp32: return fp32_tflops;
      case Ceil::Tf32: return tf32_tflops;
      case Ceil::Bf16: return bf16_tflops;
    }
    return 0;
  }

  void add(Row r) {
    // A failure inside time() is in `failures` already; a row that has no native time for another
    // reason (the caller's, or none given) is added here.
    const bool from_time = r.error.empty() && !last_error.empty();
    if (r.error.empty()) r.error = last_error;
    if (r.native_ms <= 0 && !from_time) {
      if (r.error.empty()) r.error = "not measured";
      failures.push_back(r.family + " " + r.op + " " + r.size + ": " + r.error);
    }
    last_error.clear();
    rows.push_back(r);
    const Row& x = rows.back();
    if (x.native_ms <= 0) {
      std::fprintf(stderr, "  %-12s %-24s %-22s FAILED\n", x.family.c_str(), x.op.c_str(), x.size.c_str());
      return;
    }
    double rate = x.work / (x.native_ms * 1e-3) / (x.unit == Unit::GBs ? 1e9 : 1e12);
    std::fprintf(stderr, "  %-12s %-24s %-22s %9.4f ms  %8.2f %s  (vendor %s)\n", x.family.c_str(), x.op.c_str(),
                 x.size.c_str(), x.native_ms, rate, x.unit == Unit::GBs ? "GB/s" : "TFLOP/s",
                 x.vendor_ms > 0 ? (std::to_string(x.vendor_ms) + " ms").c_str() : "-");
  }

  // Runs one family; an exception outside a timed call (an allocation, say) is recorded, not fatal.
  void family(const char* name, const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      failures.push_back(std::string(name) + ": " + e.what());
      std::fprintf(stderr, "  family %s FAILED: %s\n", name, e.what());
    }
  }
};

std::string shape_s(const Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

// ---- ceilings ----
void measure_copy_ceiling(Bench& b, bool quick) {
  int64_t n = quick ? (int64_t(1) << 26) : (int64_t(1) << 28);  // 256 MiB or 1 GiB of floats
  Tensor src = b.empty_t({n}), dst = b.empty_t({n});
  b.be->fill(src, 1.0);
  double ms = b.time([&] { b.be->copy(dst, src); }, 5, std::max(b.reps, 30));
  if (ms > 0) b.copy_gbs = std::max(b.copy_gbs, 2.0 * double(n) * 4 / (ms * 1e-3) / 1e9);
}

void ceilings(Bench& b, bool quick) {
  measure_copy_ceiling(b, quick);
  cuda::ConfigGuard guard;
  cuda::set_gemm_impl("cublas");
  for (DType t : {DType::f32, DType::bf16}) {
    for (bool tf32 : {false, true}) {
      if (t == DType::bf16 && tf32) continue;
      cuda::set_allow_tf32(tf32);
      double best = 0;
      for (int64_t s : quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{4096, 8192}) {
        Tensor A = b.randn_t({1, s, s}, t), B = b.randn_t({1, s, s}, t), C = b.empty_t({1, s, s}, t);
        double g = b.time([&] { b.be->gemm(C, A, B, 1.0, 0.0); });
        if (g > 0) best = std::max(best, 2.0 * double(s) * s * s / (g * 1e-3) / 1e12);
      }
      (t == DType::bf16 ? b.bf16_tflops : tf32 ? b.tf32_tflops : b.fp32_tflops) = best;
    }
  }
}

// ---- memory-bound families ----
void memory_ops(Bench& b, bool quick, const std::function<bool(const char*)>& want) {
  const int64_t n = quick ? (int64_t(1) << 24) : (int64_t(1) << 26);  // 64M floats: 256 MiB
  const std::string ns = quick ? "16M" : "64M";
  Backend& be = *b.be;
  auto row = [&](const char* fam, const std::string& op, const std::string& size, double ms, double bytes,
                 bool target) {
    Row r{fam, op, size, ms, -1, bytes, Unit::GBs, Ceil::Copy};
    if (target) {
      r.target = ">= 70% copy BW";
      r.target_min = 0.70;
    }
    b.add(r);
  };
  Tensor x = b.randn_t({n}), y = b.randn_t({n}), z = b.empty_t({n});
  if (want("copy")) {
    row("copy", "copy f32 (memcpy)", ns, b.time([&] { be.copy(z, x); }), 8.0 * n, false);
    int64_t s = quick ? 4096 : 8192;
    Tensor m = b.randn_t({s, s}), mt = b.empty_t({s, s});
    row("copy", "copy transposed view", shape_s({s, s}), b.time([&] { be.copy(mt, m.t()); }), 8.0 * s * s, false);
    Tensor h = b.empty_t({n}, DType::bf16);
    row("copy", "copy f32->bf16", ns, b.time([&] { be.copy(h, x); }), 6.0 * n, false);
    row("copy", "fill 1.5", ns, b.time([&] { be.fill(z, 1.5); }), 4.0 * n, false);
  }
  if (want("elementwise")) {
    row("elementwise", "add", ns, b.time([&] { be.binary(BinaryOp::Add, z, x, y); }), 12.0 * n, true);
    row("elementwise", "relu", ns, b.time([&] { be.unary(UnaryOp::Relu, z, x, 0, 0); }), 8.0 * n, true);
    row("elementwise", "exp", ns, b.time([&] { be.unary(UnaryOp::Exp, z, x, 0, 0); }), 8.0 * n, true);
    Tensor gz = b.empty_t({n});
    row("elementwise", "relu backward", ns, b.time([&] { be.unary_backward(UnaryOp::Relu, gz, y, x, z, 0, 0); }),
        12.0 * n, true);  // reads the upstream gradient and x, writes the gradient
    int64_t rws = n / 1024;
    Tensor m = x.view({rws, 1024}), bias = b.randn_t({1024}), o = z.view({rws, 1024});
    row("elementwise", "add bcast [N;1024]+[1024]", shape_s({rws, 1024}), b.time([&] {
      be.binary(BinaryOp::Add, o, m, bias.expand({rws, 1024}));
    }),
        8.0 * n, true);
    Tensor xb = b.randn_t({n}, DType::bf16), yb = b.randn_t({n}, DType::bf16), zb = b.empty_t({n}, DType::bf16);
    row("elementwise", "add bf16", ns, b.time([&] { be.binary(BinaryOp::Add, zb, xb, yb); }), 6.0 * n, true);
  }
  if (want("reduce")) {
    int64_t c = 1024, r = n / c;
    Tensor m = x.view({r, c});
    Tensor o1 = b.empty_t({r, 1}), o0 = b.empty_t({1, c}), oa = b.empty_t({1}), oi = b.empty_t({r, 1}, DType::i64);
    row("reduce", "sum last dim", shape_s({r, c}), b.time([&] { be.reduce(ReduceOp::Sum, o1, m, {1}); }), 4.0 * n,
        false);
    row("reduce", "sum first dim", shape_s({r, c}), b.time([&] { be.reduce(ReduceOp::Sum, o0, m, {0}); }), 4.0 * n,
        false);
    row("reduce", "sum all", ns, b.time([&] { be.reduce(ReduceOp::Sum, oa, x, {0}); }), 4.0 * n, false);
    row("reduce", "argmax last dim", shape_s({r, c}), b.time([&] { be.reduce(ReduceOp::ArgMax, oi, m, {1}); }), 4.0 * n,
        false);
  }
  if (want("softmax")) {
    int64_t c = 1000, r = n / 1024;
    Tensor m = b.randn_t({r, c}), o = b.empty_t({r, c}), g = b.randn_t({r, c}), gx = b.empty_t({r, c});
    double e = double(r) * c;
    row("softmax", "log_softmax", shape_s({r, c}), b.time([&] { be.log_softmax_forward(o, m, 1); }), 8.0 * e, false);
    row("softmax", "log_softmax backward", shape_s({r, c}), b.time([&] { be.log_softmax_backward(gx, g, o, 1); }),
        12.0 * e, false);
  }
}

// `impl`: "passes" (with the eval forward) or "persistent", with `stages` stages (cuda_config.h's
// bn_stages). The persistent kernel is timed in families of its own, last: it has not yet run on
// a GPU, and a kernel that faults or traps (its wait gives up after 20 s) loses the CUDA context,
// so it must not take the other rows with it.
void batchnorm_ops(Bench& b, bool quick, const std::string& impl, int stages = 3) {
  // ResNet18's first stage (128x64x32x32, 33.5 MB: it fits in an H100/H200's 50 MB L2, so it is
  // shown but carries no target) and a DRAM-sized tensor (268 MB) that carries the 70% target.
  std::vector<Shape> shapes =
      quick ? std::vector<Shape>{{64, 64, 32, 32}} : std::vector<Shape>{{128, 64, 32, 32}, {256, 64, 64, 64}};
  for (const Shape& s : shapes) {
    const bool target = !quick && s[2] == 64;
    int64_t n = numel_of(s), C = s[1];
    Tensor x = b.randn_t(s), y = b.empty_t(s), w = b.randn_t({C}), bias = b.randn_t({C});
    Tensor rm = b.empty_t({C}), rv = b.empty_t({C}), mean = b.empty_t({C}), invstd = b.empty_t({C});
    b.be->fill(rm, 0.0);
    b.be->fill(rv, 1.0);
    Tensor gy = b.randn_t(s), gx = b.empty_t(s), gw = b.empty_t({C}), gb = b.empty_t({C});
    auto add = [&](const std::string& op, double ms, double bytes, const std::string& error = "") {
      Row r{"batchnorm", op, shape_s(s), ms, -1, bytes, Unit::GBs, Ceil::Copy};
      if (target) {
        r.target = ">= 70% copy BW";
        r.target_min = 0.7;
      }
      r.error = error;
      b.add(r);
    };
    // Compulsory bytes: forward reads x and writes y (8n); backward reads x and gy, writes gx (12n).
    // A persistent row whose calls fell back to the passes is a failed figure, not a passes time
    // under the persistent label.
    cuda::ConfigGuard guard;
    cuda::set_bn_impl(impl);
    cuda::set_bn_stages(stages);
    const bool persistent = impl == "persistent";
    const std::string suffix =
        persistent && stages != 3 ? str(" (", impl, ", ", stages, " stages)") : str(" (", impl, ")");
    auto timed = [&](const std::string& op, double bytes, bool forward, const std::function<void()>& f) {
      const cuda::BnPersistentStats before = cuda::batch_norm_persistent_stats();
      double ms = b.time(f);
      const cuda::BnPersistentStats after = cuda::batch_norm_persistent_stats();
      const int64_t ran =
          forward ? after.forward_calls - before.forward_calls : after.backward_calls - before.backward_calls;
      if (persistent && ms > 0 && ran == 0) {
        add(op, -1, bytes, "the persistent kernel did not run (the passes did)");
        return;
      }
      if (persistent && ms > 0) {
        const cuda::BnPlan& p = forward ? after.forward : after.backward;
        std::fprintf(stderr,
                     "  %s%s %s: %lld blocks (%d per SM), %lld chunks of %lld values per channel, %lld rounds, %d "
                     "stages\n",
                     op.c_str(), suffix.c_str(), shape_s(s).c_str(), (long long)p.B, after.per_sm, (long long)p.P,
                     (long long)p.chunk, (long long)p.rounds, after.stages);
      }
      add(op, ms, bytes);
    };
    timed("train forward" + suffix, 8.0 * n, true,
          [&] { b.be->batch_norm_forward_train(y, mean, invstd, x, w, bias, rm, rv, 0.1, 1e-5); });
    timed("backward" + suffix, 12.0 * n, false, [&] { b.be->batch_norm_backward(gx, gw, gb, gy, x, w, mean, invstd); });
    if (impl == "passes")
      add("eval forward", b.time([&] { b.be->batch_norm_forward_eval(y, x, w, bias, rm, rv, 1e-5); }), 8.0 * n);
  }
}

void pool_optim_random(Bench& b, bool quick, const std::function<bool(const char*)>& want) {
  Backend& be = *b.be;
  if (want("pool")) {
    Shape s = quick ? Shape{64, 64, 32, 32} : Shape{128, 64, 32, 32};
    Tensor x = b.randn_t(s), y = b.empty_t({s[0], s[1], s[2] / 2, s[3] / 2});
    Tensor idx = b.empty_t(y.shape(), DType::i64), gx = b.empty_t(s), gy = b.randn_t(y.shape());
    Pool2dParams p{2, 2, 2, 2, 0, 0, true};
    double n = double(numel_of(s)), m = n / 4;
    b.add({"pool", "max_pool2d 2x2", shape_s(s), b.time([&] { be.max_pool2d_forward(y, idx, x, p); }), -1,
           4 * n + 12 * m, Unit::GBs, Ceil::Copy});
    b.add({"pool", "max_pool2d backward", shape_s(s), b.time([&] { be.max_pool2d_backward(gx, gy, idx); }), -1,
           8 * n + 12 * m, Unit::GBs, Ceil::Copy});
    b.add({"pool", "avg_pool2d 2x2", shape_s(s), b.time([&] { be.avg_pool2d_forward(y, x, p); }), -1, 4 * n + 4 * m,
           Unit::GBs, Ceil::Copy});
    b.add({"pool", "avg_pool2d backward", shape_s(s), b.time([&] { be.avg_pool2d_backward(gx, gy, p); }), -1,
           4 * n + 4 * m, Unit::GBs, Ceil::Copy});
  }
  if (want("optim")) {
    int64_t n = 11'173'962;  // ResNet18's parameter count
    Tensor p = b.randn_t({n}), g = b.randn_t({n}), m = b.randn_t({n}), v = b.empty_t({n});
    be.fill(v, 0.01);
    b.add({"optim", "sgd momentum+wd", "11.2M",
           b.time([&] { be.sgd_update(p, g, m, 0.01, 0.9, 0, 5e-4, false, false); }), -1, 20.0 * n, Unit::GBs,
           Ceil::Copy});
    b.add({"optim", "adam", "11.2M", b.time([&] { be.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 10); }), -1,
           28.0 * n, Unit::GBs, Ceil::Copy});
  }
  if (want("random")) {
    int64_t n = quick ? (int64_t(1) << 24) : (int64_t(1) << 26);
    Tensor o = b.empty_t({n});
    b.add({"random", "uniform f32", quick ? "16M" : "64M", b.time([&] { be.random_uniform(o, 7, 0, 0, 1); }), -1,
           4.0 * n, Unit::GBs, Ceil::Copy});
    b.add({"random", "normal f32", quick ? "16M" : "64M", b.time([&] { be.random_normal(o, 7, 0, 0, 1); }), -1, 4.0 * n,
           Unit::GBs, Ceil::Copy});
  }
}

// ---- GEMM: native against cuBLAS ----
std::string mnk(int64_t m, int64_t n, int64_t k) {
  return "M" + std::to_string(m) + " N" + std::to_string(n) + " K" + std::to_string(k);
}

void gemm_ops(Bench& b, bool quick) {
  cuda::ConfigGuard guard;
  struct Case {
    int64_t m, n, k;
    DType t;
    bool tf32;
    bool target;
  };
  std::vector<Case> cases = {{4096, 4096, 4096, DType::f32, false, true},
                             {1024, 1024, 1024, DType::f32, false, false},
                             {1000, 1000, 1000, DType::f32, false, false},
                             {8192, 1024, 127, DType::f32, false, false},
                             {4096, 4096, 4096, DType::f32, true, false},
                             {4096, 4096, 4096, DType::bf16, false, false}};
  if (quick) cases = {{1024, 1024, 1024, DType::f32, false, true}, {1024, 1024, 1024, DType::bf16, false, false}};
  for (const Case& c : cases) {
    cuda::set_allow_tf32(c.tf32);
    Tensor A = b.randn_t({1, c.m, c.k}, c.t), B = b.randn_t({1, c.k, c.n}, c.t), C = b.empty_t({1, c.m, c.n}, c.t);
    Row r{"gemm", std::string(c.t == DType::bf16 ? "bf16" : c.tf32 ? "tf32" : "fp32") + " A@B", mnk(c.m, c.n, c.k)};
    cuda::set_gemm_impl("native");
    r.native_ms = b.time([&] { b.be->gemm(C, A, B, 1.0, 0.0); });
    cuda::set_gemm_impl("cublas");
    r.vendor_ms = b.time([&] { b.be->gemm(C, A, B, 1.0, 0.0); });
    r.work = 2.0 * c.m * c.n * c.k;
    r.unit = Unit::TFLOPs;
    r.ceiling = c.t == DType::bf16 ? Ceil::Bf16 : c.tf32 ? Ceil::Tf32 : Ceil::Fp32;
    if (c.target) {
      r.target = ">= 0.80 of cuBLAS";
      r.target_min = 0.8;
      r.target_vs_vendor = true;
    }
    b.add(r);
  }
  // Transposed operands, as in a backward pass (a view, no copy): A^T @ B.
  cuda::set_allow_tf32(false);
  int64_t s = quick ? 1024 : 4096;
  Tensor A = b.randn_t({1, s, s}), B = b.randn_t({1, s, s}), C = b.empty_t({1, s, s});
  Tensor At = A.transpose(1, 2);
  Row r{"gemm", "fp32 A^T@B (view)", mnk(s, s, s)};
  cuda::set_gemm_impl("native");
  r.native_ms = b.time([&] { b.be->gemm(C, At, B, 1.0, 0.0); });
  cuda::set_gemm_impl("cublas");
  r.vendor_ms = b.time([&] { b.be->gemm(C, At, B, 1.0, 0.0); });
  r.work = 2.0 * s * s * s;
  r.unit = Unit::TFLOPs;
  r.ceiling = Ceil::Fp32;
  b.add(r);
}

// ---- conv2d: native against cuDNN, ResNet18's 3x3 layers (CIFAR sizes) at batch 128 ----
void conv_ops(Bench& b, bool quick) {
  cuda::ConfigGuard guard;
  cuda::set_allow_tf32(false);
  struct Layer {
    int64_t c, o, hw, stride;
  };
  // Every 3x3 convolution of ResNet18 on 32x32 inputs: the stem, the four stages' stride-1 layers
  // and the three stride-2 layers that open stages 2-4.
  std::vector<Layer> layers = {{3, 64, 32, 1},    {64, 64, 32, 1},  {64, 128, 32, 2}, {128, 128, 16, 1},
                               {128, 256, 16, 2}, {256, 256, 8, 1}, {256, 512, 8, 2}, {512, 512, 4, 1}};
  int64_t N = quick ? 32 : 128;
  if (quick) layers = {{64, 64, 32, 1}, {3, 64, 32, 1}};
  for (const Layer& L : layers) {
    Conv2dParams p;
    p.stride_h = p.stride_w = L.stride;
    p.pad_h = p.pad_w = 1;
    int64_t oh = (L.hw + 2 - 3) / L.stride + 1;
    Tensor x = b.randn_t({N, L.c, L.hw, L.hw}), w = b.randn_t({L.o, L.c, 3, 3});
    Tensor y = b.empty_t({N, L.o, oh, oh}), gy = b.randn_t(y.shape()), gx = b.empty_t(x.shape()),
           gw = b.empty_t(w.shape());
    double flops = 2.0 * N * L.o * oh * oh * L.c * 9;
    std::string size = "N" + std::to_string(N) + " " + std::to_string(L.c) + "->" + std::to_string(L.o) + " " +
                       std::to_string(L.hw) + "^2" + (L.stride > 1 ? " s2" : "");
    struct Pass {
      const char* name;
      std::function<void()> run;
    };
    std::vector<Pass> passes = {{"3x3 forward", [&] { b.be->conv2d_forward(y, x, w, Tensor(), p); }},
                                {"3x3 input grad", [&] { b.be->conv2d_backward_input(gx, gy, w, p); }},
                                {"3x3 weight grad", [&] { b.be->conv2d_backward_weight(gw, gy, x, p); }}};
    for (auto& pass : passes) {
      Row r{"conv2d", pass.name, size};
      cuda::set_conv_impl("native");
      r.native_ms = b.time(pass.run);
      if (cuda::have_cudnn()) {
        cuda::set_conv_impl("cudnn");
        r.vendor_ms = b.time(pass.run);
      }
      r.work = flops;
      r.unit = Unit::TFLOPs;
      r.ceiling = Ceil::Fp32;
      if (std::string(pass.name) == "3x3 forward" && N == 128) {
        r.target = ">= 0.50 of cuDNN";
        r.target_min = 0.5;
        r.target_vs_vendor = true;
      }
      b.add(r);
    }
  }
}

// A CSV field, quoted when it holds a comma, a quote or a newline.
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
std::string csv_num(double v) { return v > 0 ? Json(v).dump() : ""; }  // empty when not measured

// Prints the table (and writes the CSV); returns the number of targets missed.
int print_table(const Bench& b, std::ofstream& csv) {
  const std::string device = cuda::device_name(b.dev);
  std::printf("\nminima bench ops on %s (%d SMs), %d reps per figure\n", device.c_str(), cuda::sm_count(b.dev), b.reps);
  std::printf(
      "ceilings measured in this run: copy %.0f GB/s (device-to-device, read+write), cuBLAS GEMM "
      "fp32 %.1f / tf32 %.1f / bf16 %.1f TFLOP/s\n",
      b.copy_gbs, b.fp32_tflops, b.tf32_tflops, b.bf16_tflops);
  std::printf("GB/s count compulsory bytes (inputs read once, outputs written once); GEMM sizes are M N K\n\n");
  std::printf("%-11s %-27s %-22s %10s %10s %9s %12s %9s  %s\n", "family", "op", "size", "native ms", "vendor ms",
              "vs vendor", "achieved", "%ceiling", "target");
  if (csv.is_open())
    csv << "device,family,op,size,native_ms,vendor_ms,vendor_over_native,achieved,unit,ceiling,"
           "fraction_of_ceiling,target,met,error\n";
  int missed = 0;
  for (const Row& r : b.rows) {
    const char* unit = r.unit == Unit::GBs ? "GB/s" : "TF/s";
    const double ceil = b.ceiling(r.ceiling);
    const bool ok_native = r.native_ms > 0;
    double rate = ok_native ? r.work / (r.native_ms * 1e-3) / (r.unit == Unit::GBs ? 1e9 : 1e12) : 0;
    double frac = ok_native && ceil > 0 ? rate / ceil : 0;
    double vs = ok_native && r.vendor_ms > 0 ? r.vendor_ms / r.native_ms : 0;
    std::string met;
    if (!r.target.empty()) {
      if (!ok_native) {
        met = r.target + "  FAILED";
        ++missed;
      } else if (r.target_vs_vendor && vs <= 0) {
        met = r.target + "  n/a (no vendor time)";
      } else {
        bool ok = (r.target_vs_vendor ? vs : frac) >= r.target_min;
        missed += ok ? 0 : 1;
        met = r.target + (ok ? "  met" : "  MISSED");
      }
    }
    char nat[32] = "failed", vend[32] = "-", ratio[32] = "-", ach[32] = "-", pct[32] = "-";
    if (ok_native) {
      std::snprintf(nat, sizeof nat, "%.4f", r.native_ms);
      std::snprintf(ach, sizeof ach, "%.2f %s", rate, unit);
      if (ceil > 0) std::snprintf(pct, sizeof pct, "%.1f%%", 100 * frac);
    }
    if (r.vendor_ms > 0) std::snprintf(vend, sizeof vend, "%.4f", r.vendor_ms);
    // Three decimals (and one for percentages): a ratio a hair under its target, 0.796x against
    // 0.80x, then reads as the miss it is.
    if (vs > 0) std::snprintf(ratio, sizeof ratio, "%.3fx", vs);
    std::printf("%-11s %-27s %-22s %10s %10s %9s %12s %9s  %s\n", r.family.c_str(), r.op.c_str(), r.size.c_str(), nat,
                vend, ratio, ach, pct, met.c_str());
    if (csv.is_open())
      csv << csv_field(device) << "," << csv_field(r.family) << "," << csv_field(r.op) << "," << csv_field(r.size)
          << "," << csv_num(r.native_ms) << "," << csv_num(r.vendor_ms) << "," << csv_num(vs) << "," << csv_num(rate)
          << "," << (r.unit == Unit::GBs ? "GB/s" : "TFLOP/s") << "," << csv_num(ceil) << "," << csv_num(frac) << ","
          << csv_field(r.target) << ","
          << (r.target.empty()                         ? ""
              : met.find("  met") != std::string::npos ? "yes"
                                                       : "no")
          << "," << csv_field(r.error) << "\n";
  }
  std::printf("\n%d target(s) missed\n", missed);
  if (!b.failures.empty()) {
    std::printf("%zu figure(s) failed:\n", b.failures.size());
    for (const auto& f : b.failures) std::printf("  %s\n", f.c_str());
  }
  return missed;
}

#endif  // MINIMA_HAS_CUDA

int bench_ops(cli::Args& a) {
  a.set_description("CUDA kernels: native vs cuBLAS/cuDNN, against the copy bandwidth and GEMM peak of the device.");
  int64_t reps =
      a.get_int("reps", 10,
                "timed runs per figure (their mean, after one warm-up run; at most " + std::to_string(kMaxReps) + ")");
  int64_t device = a.get_int("device", 0, "CUDA device index");
  bool quick = a.get_flag("quick", "smaller sizes (a smoke run)");
  std::string only = a.get_string("only", "",
                                  "comma-separated families: copy, elementwise, reduce, softmax, batchnorm, "
                                  "pool, optim, random, gemm, conv (default: all)");
  std::string csv = a.get_string("csv", "", "also write the table as CSV to this file");
  if (a.finish()) return 0;
  MINIMA_CHECK(reps >= 1 && reps <= kMaxReps, "--reps must be in [1, ", kMaxReps, "], got ", reps);
#ifndef MINIMA_HAS_CUDA
  (void)reps, (void)device, (void)quick, (void)only, (void)csv;
  throw Error("no CUDA device: this minima was built without CUDA, so there is nothing to benchmark");
#else
  std::vector<std::string> fams;
  for (size_t p = 0; p < only.size();) {
    size_t q = only.find(',', p);
    fams.push_back(only.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  const std::vector<std::string> known = {"copy", "elementwise", "reduce", "softmax", "batchnorm",
                                          "pool", "optim",       "random", "gemm",    "conv"};
  for (const auto& f : fams)
    MINIMA_CHECK(std::find(known.begin(), known.end(), f) != known.end(), "--only: unknown family '", f,
                 "' (known: copy, elementwise, reduce, softmax, batchnorm, pool, optim, random, gemm, conv)");
  MINIMA_CHECK(cuda_available(), "no CUDA device: cudaGetDeviceCount found no usable GPU");
  MINIMA_CHECK(device >= 0 && device < cuda_device_count(), "--device ", device, ": only ", cuda_device_count(),
               " CUDA device(s)");
  auto want = [&](const char* f) {
    return fams.empty() || std::find(fams.begin(), fams.end(), std::string(f)) != fams.end();
  };
  std::ofstream csv_out;
  if (!csv.empty()) {
    csv_out.open(csv);
    MINIMA_CHECK(csv_out.is_open(), "--csv: cannot write ", csv);
  }
  NoGradGuard ng;
  Bench b;
  b.reps = int(reps);  // at most kMaxReps
  b.dev = int(device);
  b.d = Device::cuda(int(device));
  b.be = &backend_for(b.d);
  std::fprintf(stderr, "measuring ceilings...\n");
  b.family("ceilings", [&] { ceilings(b, quick); });
  b.family("memory-bound", [&] { memory_ops(b, quick, want); });
  if (want("batchnorm")) b.family("batchnorm", [&] { batchnorm_ops(b, quick, "passes"); });
  b.family("pool/optim/random", [&] { pool_optim_random(b, quick, want); });
  if (want("gemm")) b.family("gemm", [&] { gemm_ops(b, quick); });
  if (want("conv")) b.family("conv", [&] { conv_ops(b, quick); });
  b.family("copy ceiling (again)", [&] { measure_copy_ceiling(b, quick); });
  if (want("batchnorm")) {
    b.family("batchnorm (persistent)", [&] { batchnorm_ops(b, quick, "persistent", 3); });
    b.family("batchnorm (persistent, 2 stages)", [&] { batchnorm_ops(b, quick, "persistent", 2); });
  }
  print_table(b, csv_out);
  // Missed targets are results; figures that could not be measured make the run fail.
  return b.failures.empty() ? 0 : 1;
#endif
}

cli::RegisterBench reg("ops", "CUDA kernels vs cuBLAS/cuDNN and the device's copy/GEMM ceilings", bench_ops);

}  // namespace
}  // namespace minima
