// apps/bench_ops.cpp: `minima bench ops`: every CUDA kernel family timed on one device, the native
// kernels side by side with cuBLAS / cuDNN where a vendor path exists, and each figure set
// against a ceiling measured in the same run: the device-to-device copy bandwidth (for
// memory-bound kernels) and cuBLAS's fp32 / TF32 / bf16 GEMM throughput (for GEMM and conv).
// Kernels are called through the backend with preallocated operands, so the times are the
// kernels' own (no allocation, no autograd). Each time is the mean of --reps back-to-back runs
// after a warm-up, measured with CUDA events.
// "vs vendor" is vendor time / native time (1.00 = as fast as the vendor, 0.50 = half its speed).
// The targets are checked in the last column: fp32 GEMM 4096^3 >= 0.80 of cuBLAS, conv2d
// forward of ResNet18's 3x3 layers at batch 128 >= 0.50 of cuDNN, batch norm and elementwise
// kernels >= 70% of the copy bandwidth.
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/ops.h"
#include "core/random.h"

#ifdef MINIMA_HAS_CUDA
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_config.h"
#endif

namespace minima {
namespace {

#ifdef MINIMA_HAS_CUDA

enum class Unit { GBs, TFLOPs };

struct Row {
  std::string family, op, size;
  double native_ms = -1, vendor_ms = -1;
  double work = 0;  // bytes moved or floating-point operations, per call
  Unit unit = Unit::GBs;
  double ceiling = 0;  // in the same unit
  std::string target;  // "", or a description of the target for this row
  double target_min = 0;
  bool target_vs_vendor = false;  // target on vendor/native; else on the fraction of the ceiling
  Row(std::string f, std::string o, std::string s, double native = -1, double vendor = -1, double w = 0,
      Unit u = Unit::GBs, double ceil = 0)
      : family(std::move(f)), op(std::move(o)), size(std::move(s)), native_ms(native), vendor_ms(vendor), work(w),
        unit(u), ceiling(ceil) {}
};

struct Bench {
  int reps = 10;
  int dev = 0;
  Device d = Device::cuda(0);
  Backend* be = nullptr;
  Generator gen{1234};
  std::vector<Row> rows;
  double copy_gbs = 0, fp32_tflops = 0, tf32_tflops = 0, bf16_tflops = 0;

  double time(const std::function<void()>& f) { return cuda::time_ms(f, 1, reps, dev); }
  Tensor randn_t(const Shape& s, DType t = DType::f32) { return randn(s, gen, TensorOptions(t, d)); }
  Tensor empty_t(const Shape& s, DType t = DType::f32) { return empty(s, TensorOptions(t, d)); }

  void add(Row r) {
    rows.push_back(r);
    const Row& x = rows.back();
    double rate = x.unit == Unit::GBs ? x.work / (x.native_ms * 1e-3) / 1e9 : x.work / (x.native_ms * 1e-3) / 1e12;
    std::fprintf(stderr, "  %-12s %-24s %-22s %9.4f ms  %8.2f %s\n", x.family.c_str(), x.op.c_str(), x.size.c_str(),
                 x.native_ms, rate, x.unit == Unit::GBs ? "GB/s" : "TFLOP/s");
  }
};

std::string shape_s(const Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

// ---- ceilings ----
void ceilings(Bench& b, bool quick) {
  int64_t n = quick ? (int64_t(1) << 26) : (int64_t(1) << 28);  // 256 MiB or 1 GiB of floats
  Tensor src = b.empty_t({n}), dst = b.empty_t({n});
  b.be->fill(src, 1.0);
  double ms = b.time([&] { b.be->copy(dst, src); });
  b.copy_gbs = 2.0 * double(n) * 4 / (ms * 1e-3) / 1e9;
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
        best = std::max(best, 2.0 * double(s) * s * s / (g * 1e-3) / 1e12);
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
    Row r{fam, op, size, ms, -1, bytes, Unit::GBs, b.copy_gbs};
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
        16.0 * n, true);
    int64_t rws = n / 1024;
    Tensor m = x.view({rws, 1024}), bias = b.randn_t({1024}), o = z.view({rws, 1024});
    row("elementwise", "add broadcast [N,1024]+[1024]", shape_s({rws, 1024}),
        b.time([&] { be.binary(BinaryOp::Add, o, m, bias.expand({rws, 1024})); }), 8.0 * n, true);
    Tensor xb = b.randn_t({n}, DType::bf16), yb = b.randn_t({n}, DType::bf16), zb = b.empty_t({n}, DType::bf16);
    row("elementwise", "add bf16", ns, b.time([&] { be.binary(BinaryOp::Add, zb, xb, yb); }), 6.0 * n, true);
  }
  if (want("reduce")) {
    int64_t c = 1024, r = n / c;
    Tensor m = x.view({r, c});
    Tensor o1 = b.empty_t({r, 1}), o0 = b.empty_t({1, c}), oa = b.empty_t({1}), oi = b.empty_t({r, 1}, DType::i64);
    row("reduce", "sum last dim", shape_s({r, c}), b.time([&] { be.reduce(ReduceOp::Sum, o1, m, {1}); }), 4.0 * n, false);
    row("reduce", "sum first dim", shape_s({r, c}), b.time([&] { be.reduce(ReduceOp::Sum, o0, m, {0}); }), 4.0 * n, false);
    row("reduce", "sum all", ns, b.time([&] { be.reduce(ReduceOp::Sum, oa, x, {0}); }), 4.0 * n, false);
    row("reduce", "argmax last dim", shape_s({r, c}), b.time([&] { be.reduce(ReduceOp::ArgMax, oi, m, {1}); }),
        4.0 * n, false);
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

void batchnorm_ops(Bench& b, bool quick) {
  Shape s = quick ? Shape{64, 64, 32, 32} : Shape{128, 64, 32, 32};
  int64_t n = numel_of(s), C = s[1];
  Tensor x = b.randn_t(s), y = b.empty_t(s), w = b.randn_t({C}), bias = b.randn_t({C});
  Tensor rm = b.empty_t({C}), rv = b.empty_t({C}), mean = b.empty_t({C}), invstd = b.empty_t({C});
  b.be->fill(rm, 0.0);
  b.be->fill(rv, 1.0);
  Row r{"batchnorm", "train forward (3 passes)", shape_s(s)};
  r.native_ms = b.time([&] { b.be->batch_norm_forward_train(y, mean, invstd, x, w, bias, rm, rv, 0.1, 1e-5); });
  r.work = 12.0 * n;  // reads x twice (statistics, normalize), writes y
  r.ceiling = b.copy_gbs;
  r.target = ">= 70% copy BW";
  r.target_min = 0.7;
  b.add(r);
  Tensor gy = b.randn_t(s), gx = b.empty_t(s), gw = b.empty_t({C}), gb = b.empty_t({C});
  Row r2{"batchnorm", "backward (2 passes)", shape_s(s)};
  r2.native_ms = b.time([&] { b.be->batch_norm_backward(gx, gw, gb, gy, x, w, mean, invstd); });
  r2.work = 20.0 * n;  // reads x and gy twice, writes gx
  r2.ceiling = b.copy_gbs;
  r2.target = ">= 70% copy BW";
  r2.target_min = 0.7;
  b.add(r2);
  Row r3{"batchnorm", "eval forward", shape_s(s)};
  r3.native_ms = b.time([&] { b.be->batch_norm_forward_eval(y, x, w, bias, rm, rv, 1e-5); });
  r3.work = 8.0 * n;
  r3.ceiling = b.copy_gbs;
  r3.target = ">= 70% copy BW";
  r3.target_min = 0.7;
  b.add(r3);
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
           4 * n + 12 * m, Unit::GBs, b.copy_gbs});
    b.add({"pool", "max_pool2d backward", shape_s(s), b.time([&] { be.max_pool2d_backward(gx, gy, idx); }), -1,
           8 * n + 12 * m, Unit::GBs, b.copy_gbs});
    b.add({"pool", "avg_pool2d 2x2", shape_s(s), b.time([&] { be.avg_pool2d_forward(y, x, p); }), -1, 4 * n + 4 * m,
           Unit::GBs, b.copy_gbs});
    b.add({"pool", "avg_pool2d backward", shape_s(s), b.time([&] { be.avg_pool2d_backward(gx, gy, p); }), -1,
           4 * n + 4 * m, Unit::GBs, b.copy_gbs});
  }
  if (want("optim")) {
    int64_t n = 11'173'962;  // ResNet18's parameter count
    Tensor p = b.randn_t({n}), g = b.randn_t({n}), m = b.randn_t({n}), v = b.empty_t({n});
    be.fill(v, 0.01);
    b.add({"optim", "sgd momentum+wd", "11.2M", b.time([&] { be.sgd_update(p, g, m, 0.01, 0.9, 0, 5e-4, false, false); }),
           -1, 20.0 * n, Unit::GBs, b.copy_gbs});
    b.add({"optim", "adam", "11.2M", b.time([&] { be.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 10); }), -1,
           28.0 * n, Unit::GBs, b.copy_gbs});
  }
  if (want("random")) {
    int64_t n = quick ? (int64_t(1) << 24) : (int64_t(1) << 26);
    Tensor o = b.empty_t({n});
    b.add({"random", "uniform f32", quick ? "16M" : "64M", b.time([&] { be.random_uniform(o, 7, 0, 0, 1); }), -1,
           4.0 * n, Unit::GBs, b.copy_gbs});
    b.add({"random", "normal f32", quick ? "16M" : "64M", b.time([&] { be.random_normal(o, 7, 0, 0, 1); }), -1,
           4.0 * n, Unit::GBs, b.copy_gbs});
  }
}

// ---- GEMM: native against cuBLAS ----
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
    Row r{"gemm", std::string(c.t == DType::bf16 ? "bf16" : c.tf32 ? "tf32" : "fp32") + " A@B", shape_s({c.m, c.n, c.k})};
    cuda::set_gemm_impl("native");
    r.native_ms = b.time([&] { b.be->gemm(C, A, B, 1.0, 0.0); });
    cuda::set_gemm_impl("cublas");
    r.vendor_ms = b.time([&] { b.be->gemm(C, A, B, 1.0, 0.0); });
    r.work = 2.0 * c.m * c.n * c.k;
    r.unit = Unit::TFLOPs;
    r.ceiling = c.t == DType::bf16 ? b.bf16_tflops : c.tf32 ? b.tf32_tflops : b.fp32_tflops;
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
  Row r{"gemm", "fp32 A^T@B (view)", shape_s({s, s, s})};
  cuda::set_gemm_impl("native");
  r.native_ms = b.time([&] { b.be->gemm(C, At, B, 1.0, 0.0); });
  cuda::set_gemm_impl("cublas");
  r.vendor_ms = b.time([&] { b.be->gemm(C, At, B, 1.0, 0.0); });
  r.work = 2.0 * s * s * s;
  r.unit = Unit::TFLOPs;
  r.ceiling = b.fp32_tflops;
  b.add(r);
}

// ---- conv2d: native against cuDNN, ResNet18's 3x3 layers (CIFAR sizes) at batch 128 ----
void conv_ops(Bench& b, bool quick) {
  cuda::ConfigGuard guard;
  cuda::set_allow_tf32(false);
  struct Layer {
    int64_t c, o, hw, stride;
  };
  std::vector<Layer> layers = {{64, 64, 32, 1}, {128, 128, 16, 1}, {256, 256, 8, 1}, {512, 512, 4, 1},
                               {64, 128, 32, 2}, {3, 64, 32, 1}};
  int64_t N = quick ? 32 : 128;
  if (quick) layers.resize(2);
  for (const Layer& L : layers) {
    Conv2dParams p;
    p.stride_h = p.stride_w = L.stride;
    p.pad_h = p.pad_w = 1;
    int64_t oh = (L.hw + 2 - 3) / L.stride + 1;
    Tensor x = b.randn_t({N, L.c, L.hw, L.hw}), w = b.randn_t({L.o, L.c, 3, 3});
    Tensor y = b.empty_t({N, L.o, oh, oh}), gy = b.randn_t(y.shape()), gx = b.empty_t(x.shape()), gw = b.empty_t(w.shape());
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
      r.ceiling = b.fp32_tflops;
      if (std::string(pass.name) == "3x3 forward" && L.stride == 1 && L.c == L.o && N == 128) {
        r.target = ">= 0.50 of cuDNN";
        r.target_min = 0.5;
        r.target_vs_vendor = true;
      }
      b.add(r);
    }
  }
}

void print_table(const Bench& b, const std::string& csv_path) {
  std::printf("\nminima bench ops on %s (%d SMs), %d reps per figure\n", cuda::device_name(b.dev).c_str(),
              cuda::sm_count(b.dev), b.reps);
  std::printf("ceilings measured in this run: copy %.0f GB/s (device-to-device, read+write), cuBLAS GEMM "
              "fp32 %.1f / tf32 %.1f / bf16 %.1f TFLOP/s\n\n",
              b.copy_gbs, b.fp32_tflops, b.tf32_tflops, b.bf16_tflops);
  std::printf("%-11s %-27s %-22s %10s %10s %9s %12s %9s  %s\n", "family", "op", "size", "native ms", "vendor ms",
              "vs vendor", "achieved", "%ceiling", "target");
  std::ofstream csv;
  if (!csv_path.empty()) {
    csv.open(csv_path);
    csv << "family,op,size,native_ms,vendor_ms,vendor_over_native,achieved,unit,fraction_of_ceiling,target,met\n";
  }
  int missed = 0;
  for (const Row& r : b.rows) {
    double rate = r.work / (r.native_ms * 1e-3) / (r.unit == Unit::GBs ? 1e9 : 1e12);
    double frac = r.ceiling > 0 ? rate / r.ceiling : 0;
    double vs = r.vendor_ms > 0 ? r.vendor_ms / r.native_ms : -1;
    std::string met;
    if (!r.target.empty()) {
      double v = r.target_vs_vendor ? vs : frac;
      bool ok = v >= r.target_min;
      missed += ok ? 0 : 1;
      met = r.target + (ok ? "  met" : "  MISSED");
    }
    char vend[32] = "-", ratio[32] = "-";
    if (r.vendor_ms > 0) {
      std::snprintf(vend, sizeof vend, "%.4f", r.vendor_ms);
      std::snprintf(ratio, sizeof ratio, "%.2fx", vs);
    }
    std::printf("%-11s %-27s %-22s %10.4f %10s %9s %8.2f %-4s %8.0f%%  %s\n", r.family.c_str(), r.op.c_str(),
                r.size.c_str(), r.native_ms, vend, ratio, rate, r.unit == Unit::GBs ? "GB/s" : "TF/s", 100 * frac,
                met.c_str());
    if (csv.is_open())
      csv << r.family << "," << r.op << "," << r.size << "," << r.native_ms << "," << r.vendor_ms << "," << vs << ","
          << rate << "," << (r.unit == Unit::GBs ? "GB/s" : "TFLOP/s") << "," << frac << "," << r.target << ","
          << (r.target.empty() ? "" : met.find("MISSED") == std::string::npos ? "yes" : "no") << "\n";
  }
  std::printf("\n%d target(s) missed\n", missed);
}

#endif  // MINIMA_HAS_CUDA

int bench_ops(cli::Args& a) {
  a.set_description("CUDA kernels: native vs cuBLAS/cuDNN, against the copy bandwidth and GEMM peak of the device.");
  int64_t reps = a.get_int("reps", 10, "timed runs per figure (their mean, after one warm-up run)");
  int64_t device = a.get_int("device", 0, "CUDA device index");
  bool quick = a.get_flag("quick", "smaller sizes (a smoke run)");
  std::string only = a.get_string("only", "", "comma-separated families: copy, elementwise, reduce, softmax, batchnorm, "
                                              "pool, optim, random, gemm, conv (default: all)");
  std::string csv = a.get_string("csv", "", "also write the table as CSV to this file");
  if (a.finish()) return 0;
#ifndef MINIMA_HAS_CUDA
  (void)reps, (void)device, (void)quick, (void)only, (void)csv;
  throw Error("no CUDA device: this minima was built without CUDA, so there is nothing to benchmark");
#else
  MINIMA_CHECK(cuda_available(), "no CUDA device: cudaGetDeviceCount found no usable GPU");
  MINIMA_CHECK(device >= 0 && device < cuda_device_count(), "--device ", device, ": only ", cuda_device_count(),
               " CUDA device(s)");
  MINIMA_CHECK(reps >= 1, "--reps must be positive");
  std::vector<std::string> fams;
  for (size_t p = 0; p < only.size();) {
    size_t q = only.find(',', p);
    fams.push_back(only.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  auto want = [&](const char* f) {
    if (fams.empty()) return true;
    for (auto& s : fams)
      if (s == f) return true;
    return false;
  };
  NoGradGuard ng;
  Bench b;
  b.reps = int(reps);
  b.dev = int(device);
  b.d = Device::cuda(int(device));
  b.be = &backend_for(b.d);
  std::fprintf(stderr, "measuring ceilings...\n");
  ceilings(b, quick);
  memory_ops(b, quick, want);
  if (want("batchnorm")) batchnorm_ops(b, quick);
  pool_optim_random(b, quick, want);
  if (want("gemm")) gemm_ops(b, quick);
  if (want("conv")) conv_ops(b, quick);
  print_table(b, csv);
  return 0;
#endif
}

cli::RegisterBench reg("ops", "CUDA kernels vs cuBLAS/cuDNN and the device's copy/GEMM ceilings", bench_ops);

}  // namespace
}  // namespace minima
