// tests/cuda/test_cuda_conv.cpp: conv2d forward, input gradient and weight gradient on CUDA
// against the CPU, and the native implicit-GEMM kernels against cuDNN pass by pass: strides,
// padding, dilation, groups, bias, 1x1 and non-square kernels, channel counts on both sides of
// the 64/128-row tiles, bfloat16, float64 and TF32.
#include "tests/cuda/cuda_test_util.h"

using namespace minima;
using namespace cudatest;

#ifdef MINIMA_HAS_CUDA

namespace {
struct ConvCase {
  int64_t N, C, H, W, O, KH, KW;
  Conv2dParams p;
  bool bias;
};
std::vector<ConvCase> conv_cases() {
  return {
      {2, 3, 9, 11, 5, 3, 3, Conv2dParams::of(1, 1, 1, 1), true},
      {3, 4, 8, 8, 6, 3, 3, Conv2dParams::of(2, 2, 1, 1), false},
      {2, 6, 10, 7, 4, 3, 2, Conv2dParams::of(1, 2, 2, 0), true},
      {2, 5, 12, 12, 7, 3, 3, Conv2dParams::of(1, 1, 2, 2, 2, 2), false},
      {2, 6, 7, 9, 4, 3, 3, Conv2dParams::of(1, 1, 1, 1, 1, 1, 2), true},
      {2, 6, 5, 5, 9, 1, 1, Conv2dParams::of(1, 1, 0, 0, 1, 1, 3), false},
      {4, 16, 6, 6, 8, 1, 1, Conv2dParams::of(1, 1, 0, 0), true},
      {2, 3, 11, 13, 4, 2, 2, Conv2dParams::of(3, 3, 0, 0), false},
      {2, 8, 9, 9, 8, 5, 5, Conv2dParams::of(1, 1, 2, 2), false},
      {3, 64, 8, 8, 64, 3, 3, Conv2dParams::of(1, 1, 1, 1), false},
      {2, 130, 5, 5, 131, 3, 3, Conv2dParams::of(1, 1, 1, 1), true},
      {1, 3, 4, 4, 2, 3, 3, Conv2dParams::of(1, 1, 0, 0), true},
      {2, 8, 6, 6, 8, 3, 3, Conv2dParams::of(1, 1, 1, 1, 1, 1, 8), false},  // depthwise
  };
}
std::string case_name(const ConvCase& c) {
  return str("N", c.N, " C", c.C, " ", c.H, "x", c.W, " O", c.O, " k", c.KH, "x", c.KW, " s", c.p.stride_h, ",",
             c.p.stride_w, " p", c.p.pad_h, ",", c.p.pad_w, " d", c.p.dil_h, ",", c.p.dil_w, " g", c.p.groups,
             c.bias ? " bias" : "");
}
}  // namespace

CUDA_TEST_CASE("cuda conv2d (native) matches the CPU: forward and both gradients") {
  cuda::ConfigGuard guard;
  cuda::set_conv_impl("native");
  cuda::set_allow_tf32(false);
  for (const auto& c : conv_cases()) {
    Tensor x = rnd({c.N, c.C, c.H, c.W}, 91), w = rnd({c.O, c.C / c.p.groups, c.KH, c.KW}, 92), b = rnd({c.O}, 93);
    std::vector<Tensor> in = {x, w};
    if (c.bias) in.push_back(b);
    check_graph("native conv2d " + case_name(c), in, tol(DType::f32),
                [&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], c.bias ? v[2] : Tensor(), c.p); });
  }
}

CUDA_TEST_CASE("cuda conv2d: native against cuDNN, pass by pass") {
  if (!cuda::have_cudnn()) {
    MESSAGE("skipped: built without cuDNN, nothing to compare against");
    return;
  }
  cuda::ConfigGuard guard;
  cuda::set_allow_tf32(false);
  Backend& gpu = backend_for(kGpu);
  for (const auto& c : conv_cases()) {
    int64_t OH = (c.H + 2 * c.p.pad_h - c.p.dil_h * (c.KH - 1) - 1) / c.p.stride_h + 1;
    int64_t OW = (c.W + 2 * c.p.pad_w - c.p.dil_w * (c.KW - 1) - 1) / c.p.stride_w + 1;
    Tensor x = rnd({c.N, c.C, c.H, c.W}, 94).to(kGpu), w = rnd({c.O, c.C / c.p.groups, c.KH, c.KW}, 95).to(kGpu);
    Tensor gy = rnd({c.N, c.O, OH, OW}, 96).to(kGpu);
    Tensor out[2][3];
    const char* impls[2] = {"native", "cudnn"};
    for (int i = 0; i < 2; ++i) {
      cuda::set_conv_impl(impls[i]);
      out[i][0] = empty({c.N, c.O, OH, OW}, TensorOptions(DType::f32, kGpu));
      out[i][1] = empty(x.shape(), TensorOptions(DType::f32, kGpu));
      out[i][2] = empty(w.shape(), TensorOptions(DType::f32, kGpu));
      gpu.conv2d_forward(out[i][0], x, w, Tensor(), c.p);
      gpu.conv2d_backward_input(out[i][1], gy, w, c.p);
      gpu.conv2d_backward_weight(out[i][2], gy, x, c.p);
    }
    std::string n = case_name(c);
    expect_close(out[0][0].cpu(), out[1][0].cpu(), kCudnnF32Tol, "forward, native vs cuDNN: " + n);
    expect_close(out[0][1].cpu(), out[1][1].cpu(), kCudnnF32Tol, "input grad, native vs cuDNN: " + n);
    expect_close(out[0][2].cpu(), out[1][2].cpu(), kCudnnF32Tol, "weight grad, native vs cuDNN: " + n);
  }
}

CUDA_TEST_CASE("cuda conv2d through cuDNN and auto match the CPU, with gradients") {
  if (!cuda::have_cudnn()) {
    MESSAGE("skipped: built without cuDNN");
    return;
  }
  cuda::ConfigGuard guard;
  cuda::set_allow_tf32(false);
  for (const char* impl : {"cudnn", "auto"}) {
    cuda::set_conv_impl(impl);
    for (const auto& c : conv_cases()) {
      Tensor x = rnd({c.N, c.C, c.H, c.W}, 97), w = rnd({c.O, c.C / c.p.groups, c.KH, c.KW}, 98), b = rnd({c.O}, 99);
      check_graph(str(impl, " conv2d ", case_name(c)), {x, w, b}, kCudnnF32Tol,
                  [&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], c.p); });
    }
  }
}

CUDA_TEST_CASE("cuda conv2d with no input channels gives its bias, as on the CPU, in every mode") {
  // The implicit GEMM's K and cuDNN's channel count are 0 here: neither is asked to run.
  cuda::ConfigGuard guard;
  Backend& gpu = backend_for(kGpu);
  const Conv2dParams p = Conv2dParams::of(1, 1, 1, 1);
  Tensor x = zeros({2, 0, 5, 5}), w = zeros({3, 0, 3, 3}), b = rnd({3}, 141), gy = rnd({2, 3, 5, 5}, 142);
  std::vector<const char*> impls = {"native"};
  if (cuda::have_cudnn()) impls = {"native", "cudnn", "auto"};
  for (const char* impl : impls) {
    INFO(impl);
    cuda::set_conv_impl(impl);
    expect_equal(conv2d(x.to(kGpu), w.to(kGpu), b.to(kGpu), p).cpu(), conv2d(x, w, b, p), "forward: the bias");
    Tensor gx = empty(x.shape(), TensorOptions(DType::f32, kGpu)),
           gw = empty(w.shape(), TensorOptions(DType::f32, kGpu));
    gpu.conv2d_backward_input(gx, gy.to(kGpu), w.to(kGpu), p);
    gpu.conv2d_backward_weight(gw, gy.to(kGpu), x.to(kGpu), p);
    CHECK(gx.numel() == 0);
    CHECK(gw.numel() == 0);
    // No output channels: the input gradient is all zeros (poisoned first, so it must be written).
    Tensor w0 = zeros({0, 4, 3, 3}), x4 = rnd({2, 4, 5, 5}, 143), gy0 = zeros({2, 0, 5, 5});
    Tensor gx4 = full(x4.shape(), 1e30, TensorOptions(DType::f32, kGpu));
    gpu.conv2d_backward_input(gx4, gy0.to(kGpu), w0.to(kGpu), p);
    expect_equal(gx4.cpu(), zeros(x4.shape()), "input gradient with no output channels");
  }
}

CUDA_TEST_CASE("cuda conv2d in bfloat16, float64 and TF32") {
  cuda::ConfigGuard guard;
  std::vector<const char*> impls = {"native"};
  if (cuda::have_cudnn()) impls.push_back("cudnn");
  auto cases = conv_cases();
  for (const char* impl : impls) {
    cuda::set_conv_impl(impl);
    for (size_t i : {size_t(0), size_t(4), size_t(9)}) {
      const ConvCase& c = cases[i];
      Tensor x = rnd({c.N, c.C, c.H, c.W}, 101, DType::bf16),
             w = rnd({c.O, c.C / c.p.groups, c.KH, c.KW}, 102, DType::bf16);
      std::vector<Tensor> in = {x, w};
      if (c.bias) in.push_back(rnd({c.O}, 107, DType::bf16));  // bias added in float32, rounded once
      check_graph(str(impl, " bf16 conv2d ", case_name(c)), in, tol(DType::bf16),
                  [&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], c.bias ? v[2] : Tensor(), c.p); });
      cuda::set_allow_tf32(true);
      Tensor xf = rnd({c.N, c.C, c.H, c.W}, 103), wf = rnd({c.O, c.C / c.p.groups, c.KH, c.KW}, 104);
      check_graph(str(impl, " tf32 conv2d ", case_name(c)), {xf, wf}, kTf32Tol,
                  [&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], Tensor(), c.p); });
      cuda::set_allow_tf32(false);
    }
  }
  if (cuda::have_cudnn()) {  // float64 runs on cuDNN whatever the setting
    const ConvCase& c = cases[2];
    Tensor x = rnd({c.N, c.C, c.H, c.W}, 105, DType::f64),
           w = rnd({c.O, c.C / c.p.groups, c.KH, c.KW}, 106, DType::f64);
    check_graph("f64 conv2d " + case_name(c), {x, w}, tol(DType::f64),
                [&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], Tensor(), c.p); });
  }
}

#endif  // MINIMA_HAS_CUDA
