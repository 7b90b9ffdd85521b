// kernels/cuda/conv.cu: conv2d (NCHW, groups, stride, padding, dilation) as implicit GEMMs on the
// SIMT kernel of igemm.cuh, and the backend's conv entries that choose between them and cuDNN.
// Per group g (blockIdx.z), with CK = C/G * KH * KW:
//  * forward:       y[n, o, p]   = sum_k  W[o, k] * X(k, (n, p))       M = O/G, N = N*OH*OW, K = CK
//  * input grad:    gx[n, c, q]  = sum_k  W(c, k) * GY(k, (n, q))      M = C/G, N = N*H*W,   K = O/G*KH*KW
//  * weight grad:   gw[o, k]     = sum_p  GY(o, p) * X(k, p)           M = O/G, N = CK,      K = N*OH*OW
// where X(k, pixel) is the im2col matrix, read straight from x by the loaders below (never
// materialized): k = (c, kh, kw) is decoded with multiply-shift divisions and out-of-image taps
// read as 0. The input gradient gathers rather than scatters: for input pixel (ih, iw) and tap
// (kh, kw) the output pixel is ((ih + pad - kh*dil) / stride, ...) when that division is exact
// and in range, so every element of gx is written once, without atomics.
// When a pass has too few output tiles to fill the GPU (the weight gradient, whose K is every
// output pixel of the batch; the forward and input gradient of deep layers with small maps, e.g.
// 512 channels at 4x4), its K is split across blocks (split-K): the partial sums go to a buffer
// and a second kernel adds them in split order, so the result is deterministic too. bfloat16
// runs through float32 copies (as the CPU reference does); float64 runs on cuDNN.
// Index arithmetic is 32-bit: each tensor must have fewer than 2^31 elements.
#include <atomic>
#include <cstdio>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/igemm.cuh"

namespace minima::cuda {

namespace {

struct ConvGeom {
  int N, C, H, W, O, KH, KW, OH, OW, G, Cg, Og;
  int sh, sw, ph, pw, dh, dw;
  int HW, OHW, KHKW, CK;
  FastDiv f_khkw, f_kw, f_hw, f_w, f_ohw, f_ow, f_sh, f_sw;
};

// The native kernels index with 32-bit offsets: every tensor of the pass must have fewer than 2^31
// elements. The one definition of that limit, for make_geom's check and for auto (cuDNN beyond it).
bool native_conv_fits(const Tensor& a, const Tensor& b, const Tensor& c) {
  for (const Tensor* t : {&a, &b, &c})
    if (t->numel() >= (int64_t(1) << 31)) return false;
  return true;
}

ConvGeom make_geom(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p) {
  MINIMA_CHECK(native_conv_fits(x, w, y), "conv2d (native CUDA): tensors must have fewer than 2^31 elements, got ",
               x.shape(), ", ", w.shape(), " and ", y.shape(), " (use --conv cudnn)");
  MINIMA_CHECK(p.groups <= 65535, "conv2d (native CUDA): at most 65535 groups (one grid row each), got ", p.groups,
               " (use --conv cudnn)");
  ConvGeom g;
  g.N = int(x.size(0));
  g.C = int(x.size(1));
  g.H = int(x.size(2));
  g.W = int(x.size(3));
  g.O = int(w.size(0));
  g.KH = int(w.size(2));
  g.KW = int(w.size(3));
  g.OH = int(y.size(2));
  g.OW = int(y.size(3));
  g.G = int(p.groups);
  g.Cg = g.C / g.G;
  g.Og = g.O / g.G;
  g.sh = int(p.stride_h);
  g.sw = int(p.stride_w);
  g.ph = int(p.pad_h);
  g.pw = int(p.pad_w);
  g.dh = int(p.dil_h);
  g.dw = int(p.dil_w);
  g.HW = g.H * g.W;
  g.OHW = g.OH * g.OW;
  g.KHKW = g.KH * g.KW;
  g.CK = g.Cg * g.KHKW;
  g.f_khkw = FastDiv(uint32_t(g.KHKW));
  g.f_kw = FastDiv(uint32_t(g.KW));
  g.f_hw = FastDiv(uint32_t(g.HW));
  g.f_w = FastDiv(uint32_t(g.W));
  g.f_ohw = FastDiv(uint32_t(g.OHW));
  g.f_ow = FastDiv(uint32_t(g.OW));
  g.f_sh = FastDiv(uint32_t(g.sh));
  g.f_sw = FastDiv(uint32_t(g.sw));
  return g;
}

// ---- forward ----
// A(o, k) = w[(g*Og + o) * CK + k]
struct FwdW {
  static constexpr bool kContig = true;
  const float* w;
  int Og, CK;
  struct Row {
    const float* p;
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const {
    return {valid ? w + int64_t(z * Og + r) * CK : nullptr};
  }
  __device__ __forceinline__ float load(const Row& row, int k) const { return row.p ? row.p[k] : 0.f; }
};

// B(k, pixel) = x[n, g*Cg + c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]; rows are output pixels.
struct FwdX {
  static constexpr bool kContig = false;
  const float* x;
  ConvGeom g;
  struct Row {
    int base, ih0, iw0;  // base < 0: outside
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const {
    if (!valid) return {-1, 0, 0};
    uint32_t n = g.f_ohw.div(uint32_t(r)), s = uint32_t(r) - n * uint32_t(g.OHW);
    uint32_t oh = g.f_ow.div(s), ow = s - oh * uint32_t(g.OW);
    return {int(n) * g.C * g.HW + z * g.Cg * g.HW, int(oh) * g.sh - g.ph, int(ow) * g.sw - g.pw};
  }
  __device__ __forceinline__ float load(const Row& row, int k) const {
    if (row.base < 0) return 0.f;
    uint32_t c = g.f_khkw.div(uint32_t(k)), t = uint32_t(k) - c * uint32_t(g.KHKW);
    uint32_t kh = g.f_kw.div(t), kw = t - kh * uint32_t(g.KW);
    int ih = row.ih0 + int(kh) * g.dh, iw = row.iw0 + int(kw) * g.dw;
    if (unsigned(ih) >= unsigned(g.H) || unsigned(iw) >= unsigned(g.W)) return 0.f;
    return x[row.base + int(c) * g.HW + ih * g.W + iw];
  }
};

// Writes y directly, or (split-K) split `split`'s partial sums at the same place in a buffer of
// several y-sized slices.
struct FwdY {
  float* y;
  ConvGeom g;
  int64_t split_stride;  // elements per slice of the partial buffer (0: writing y)
  void set_out(float* p) { y = p; }
  __device__ __forceinline__ void operator()(int z, int split, int m, int pix, float v) const {
    uint32_t n = g.f_ohw.div(uint32_t(pix)), s = uint32_t(pix) - n * uint32_t(g.OHW);
    y[split * split_stride + (int64_t(n) * g.O + z * g.Og + m) * g.OHW + s] = v;
  }
};

// ---- input gradient ----
// A(c, k = (o, kh, kw)) = w[(g*Og + o), c, kh, kw]
struct DgW {
  static constexpr bool kContig = true;
  const float* w;
  ConvGeom g;
  struct Row {
    const float* p;
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const {
    return {valid ? w + int64_t(z) * g.Og * g.CK + int64_t(r) * g.KHKW : nullptr};
  }
  __device__ __forceinline__ float load(const Row& row, int k) const {
    if (!row.p) return 0.f;
    uint32_t o = g.f_khkw.div(uint32_t(k)), t = uint32_t(k) - o * uint32_t(g.KHKW);
    return row.p[int(o) * g.CK + int(t)];
  }
};

// B(k = (o, kh, kw), input pixel (n, ih, iw)) = gy[n, g*Og + o, oh, ow] where
// oh*sh = ih + ph - kh*dh (exactly, in range), likewise ow; else 0.
struct DgGy {
  static constexpr bool kContig = false;
  const float* gy;
  ConvGeom g;
  struct Row {
    int base, ihp, iwp;
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const {
    if (!valid) return {-1, 0, 0};
    uint32_t n = g.f_hw.div(uint32_t(r)), s = uint32_t(r) - n * uint32_t(g.HW);
    uint32_t ih = g.f_w.div(s), iw = s - ih * uint32_t(g.W);
    return {int(n) * g.O * g.OHW + z * g.Og * g.OHW, int(ih) + g.ph, int(iw) + g.pw};
  }
  __device__ __forceinline__ float load(const Row& row, int k) const {
    if (row.base < 0) return 0.f;
    uint32_t o = g.f_khkw.div(uint32_t(k)), t = uint32_t(k) - o * uint32_t(g.KHKW);
    uint32_t kh = g.f_kw.div(t), kw = t - kh * uint32_t(g.KW);
    int th = row.ihp - int(kh) * g.dh, tw = row.iwp - int(kw) * g.dw;
    if (th < 0 || tw < 0) return 0.f;
    uint32_t oh = g.f_sh.div(uint32_t(th)), ow = g.f_sw.div(uint32_t(tw));
    if (int(oh) * g.sh != th || int(ow) * g.sw != tw || int(oh) >= g.OH || int(ow) >= g.OW) return 0.f;
    return gy[row.base + int(o) * g.OHW + int(oh) * g.OW + int(ow)];
  }
};

struct DgX {
  float* gx;
  ConvGeom g;
  int64_t split_stride;  // as FwdY's
  void set_out(float* p) { gx = p; }
  __device__ __forceinline__ void operator()(int z, int split, int m, int pix, float v) const {
    uint32_t n = g.f_hw.div(uint32_t(pix)), s = uint32_t(pix) - n * uint32_t(g.HW);
    gx[split * split_stride + (int64_t(n) * g.C + z * g.Cg + m) * g.HW + s] = v;
  }
};

// ---- weight gradient ----
// A(o, k = (n, oh, ow)) = gy[n, g*Og + o, oh, ow]
struct WgGy {
  static constexpr bool kContig = true;
  const float* gy;
  ConvGeom g;
  struct Row {
    int base;
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const { return {valid ? (z * g.Og + r) * g.OHW : -1}; }
  __device__ __forceinline__ float load(const Row& row, int k) const {
    if (row.base < 0) return 0.f;
    uint32_t n = g.f_ohw.div(uint32_t(k)), s = uint32_t(k) - n * uint32_t(g.OHW);
    return gy[int(n) * g.O * g.OHW + row.base + int(s)];
  }
};

// B(k = (n, oh, ow), q = (c, kh, kw)) = x[n, g*Cg + c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw];
// rows are q, read along k (output pixels: neighbours in memory for stride 1).
struct WgX {
  static constexpr bool kContig = true;
  const float* x;
  ConvGeom g;
  struct Row {
    int base, khd, kwd;
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const {
    if (!valid) return {-1, 0, 0};
    uint32_t c = g.f_khkw.div(uint32_t(r)), t = uint32_t(r) - c * uint32_t(g.KHKW);
    uint32_t kh = g.f_kw.div(t), kw = t - kh * uint32_t(g.KW);
    return {(z * g.Cg + int(c)) * g.HW, int(kh) * g.dh - g.ph, int(kw) * g.dw - g.pw};
  }
  __device__ __forceinline__ float load(const Row& row, int k) const {
    if (row.base < 0) return 0.f;
    uint32_t n = g.f_ohw.div(uint32_t(k)), s = uint32_t(k) - n * uint32_t(g.OHW);
    uint32_t oh = g.f_ow.div(s), ow = s - oh * uint32_t(g.OW);
    int ih = int(oh) * g.sh + row.khd, iw = int(ow) * g.sw + row.kwd;
    if (unsigned(ih) >= unsigned(g.H) || unsigned(iw) >= unsigned(g.W)) return 0.f;
    return x[int(n) * g.C * g.HW + row.base + ih * g.W + iw];
  }
};

// Writes gw directly (one split) or a split's partial sums.
struct WgOut {
  float* out;
  ConvGeom g;
  int64_t split_stride;  // as FwdY's
  void set_out(float* p) { out = p; }
  __device__ __forceinline__ void operator()(int z, int split, int m, int q, float v) const {
    out[split * split_stride + (int64_t(z) * g.Og + m) * g.CK + q] = v;
  }
};

__global__ void sum_splits_kernel(const float* partial, int splits, int64_t n, float* out) {
  MINIMA_GRID_STRIDE(i, n) {
    float s = partial[i];
    for (int k = 1; k < splits; ++k) s += partial[int64_t(k) * n + i];
    out[i] = s;
  }
}

// How many pieces to split a GEMM's K into: enough for the grid of M x N tiles (x groups) to
// cover the device about four times over (two blocks fit on an SM), keeping at least 256 k per
// piece; 1 when the tiles alone fill it. Returns the split count and sets k_chunk (a multiple of
// the kernel's k step).
int64_t choose_splits(int M, int N, int64_t K, int groups, const Ctx& ctx, int& k_chunk) {
  const int BM = M <= 64 ? 64 : 128;
  const int64_t tiles = int64_t((N + kIgBN - 1) / kIgBN) * ((M + BM - 1) / BM) * groups;
  const int64_t want = (int64_t(sm_count(ctx.dev)) * 4 + tiles - 1) / tiles;
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>({want, K / 256, 65535 / groups}));
  k_chunk = int(((K + splits - 1) / splits + kIgBK - 1) / kIgBK * kIgBK);
  return (K + k_chunk - 1) / k_chunk;
}

// Runs an implicit GEMM whose epilogue EP writes `out` (split_stride 0) or, split, a partial
// buffer of `splits` out-sized slices that sum_splits_kernel then adds into out.
template <class AL, class BL, class EP>
void run_split_igemm(const Ctx& ctx, int M, int N, int K, int groups, const AL& la, const BL& lb, EP ep,
                     const Tensor& out) {
  int k_chunk = K;
  const int64_t splits = choose_splits(M, N, K, groups, ctx, k_chunk);
  if (splits <= 1) {
    run_igemm(ctx, M, N, K, K, groups, 1, la, lb, ep);
    return;
  }
  const int64_t total = out.numel();
  DeviceBuffer partial(size_t(splits * total) * sizeof(float), ctx.dev);
  float* result = static_cast<float*>(out.data_ptr());
  ep.split_stride = total;
  ep.set_out(partial.as<float>());
  run_igemm(ctx, M, N, K, k_chunk, groups, int(splits), la, lb, ep);
  MINIMA_LAUNCH(sum_splits_kernel, dim3(grid_1d(total, ctx.dev)), dim3(kThreads), 0, ctx.stream, partial.as<float>(),
                int(splits), total, result);
}

// bfloat16 runs through float32 copies.
Tensor as_f32(const Tensor& t) {
  NoGradGuard ng;
  return t.to(DType::f32);
}

}  // namespace

void native_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Conv2dParams& p, const Ctx& ctx) {
  if (y.dtype() == DType::bf16) {
    Tensor yf = empty(y.shape(), TensorOptions(DType::f32, y.device()));
    native_conv_forward(yf, as_f32(x), as_f32(w), p, ctx);
    device_copy(y, yf, ctx);
    return;
  }
  MINIMA_CHECK(y.dtype() == DType::f32, "conv2d (native CUDA): float32 or bfloat16 expected, got ", y.dtype());
  ConvGeom g = make_geom(x, w, y, p);
  MINIMA_CHECK(int64_t(g.N) * g.OHW < (int64_t(1) << 31), "conv2d: too many output pixels");
  FwdW la{static_cast<const float*>(w.data_ptr()), g.Og, g.CK};
  FwdX lb{static_cast<const float*>(x.data_ptr()), g};
  FwdY ep{static_cast<float*>(y.data_ptr()), g, 0};
  run_split_igemm(ctx, g.Og, g.N * g.OHW, g.CK, g.G, la, lb, ep, y);
}

void native_conv_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p,
                                const Ctx& ctx) {
  if (gx.dtype() == DType::bf16) {
    Tensor gf = empty(gx.shape(), TensorOptions(DType::f32, gx.device()));
    native_conv_backward_input(gf, as_f32(gy), as_f32(w), p, ctx);
    device_copy(gx, gf, ctx);
    return;
  }
  MINIMA_CHECK(gx.dtype() == DType::f32, "conv2d (native CUDA): float32 or bfloat16 expected, got ", gx.dtype());
  ConvGeom g = make_geom(gx, w, gy, p);
  DgW la{static_cast<const float*>(w.data_ptr()), g};
  DgGy lb{static_cast<const float*>(gy.data_ptr()), g};
  DgX ep{static_cast<float*>(gx.data_ptr()), g, 0};
  run_split_igemm(ctx, g.Cg, g.N * g.HW, g.Og * g.KHKW, g.G, la, lb, ep, gx);
}

void native_conv_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p,
                                 const Ctx& ctx) {
  if (gw.dtype() == DType::bf16) {
    Tensor gf = empty(gw.shape(), TensorOptions(DType::f32, gw.device()));
    native_conv_backward_weight(gf, as_f32(gy), as_f32(x), p, ctx);
    device_copy(gw, gf, ctx);
    return;
  }
  MINIMA_CHECK(gw.dtype() == DType::f32, "conv2d (native CUDA): float32 or bfloat16 expected, got ", gw.dtype());
  ConvGeom g = make_geom(x, gw, gy, p);
  const int64_t K64 = int64_t(g.N) * g.OHW;
  MINIMA_CHECK(K64 < (int64_t(1) << 31), "conv2d: too many output pixels");
  WgGy la{static_cast<const float*>(gy.data_ptr()), g};
  WgX lb{static_cast<const float*>(x.data_ptr()), g};
  WgOut ep{static_cast<float*>(gw.data_ptr()), g, 0};
  run_split_igemm(ctx, g.Og, g.CK, int(K64), g.G, la, lb, ep, gw);
}

// ---------------------------------------------------------------------------------------------
// The backend entries: native, cuDNN or auto (float64 always runs on cuDNN)
// ---------------------------------------------------------------------------------------------
namespace {
bool conv_use_vendor(const char* pass, const Tensor& a, const Tensor& b, const Tensor& out, const Conv2dParams& p,
                     const Ctx& ctx, const std::function<void()>& native, const std::function<void()>& vendor) {
  if (out.dtype() == DType::f64) {
    MINIMA_CHECK(have_cudnn(), "conv2d: float64 on CUDA runs on cuDNN, and this minima was built without it");
    return true;
  }
  if (!have_cudnn()) return false;
  switch (conv_impl()) {
    case Impl::Native: return false;
    case Impl::Vendor: return true;
    case Impl::Auto: break;
  }
  if (!native_conv_fits(a, b, out) || p.groups > 65535) return true;  // cuDNN without timing
  std::string key =
      str("conv-", pass, "|", out.dtype(), "|", a.shape(), "|", b.shape(), "|", out.shape(), "|", p.stride_h, ",",
          p.stride_w, ",", p.pad_h, ",", p.pad_w, ",", p.dil_h, ",", p.dil_w, ",", p.groups);
  return autotune_use_vendor(key, ctx, native, vendor, true);
}
// Runs the chosen path. cuDNN's support for bfloat16 (and for some grouped or dilated shapes)
// varies by version and configuration: in auto mode a cuDNN call that finds no usable algorithm
// falls back to the native kernel, once with a warning, instead of failing a run the native
// kernel can do. float64 (cuDNN only) and --conv cudnn report the error.
void run_conv(bool use_vendor, const char* pass, const Tensor& out, const std::function<void()>& native,
              const std::function<void()>& vendor) {
  if (!use_vendor) return native();
  if (out.dtype() == DType::f64 || conv_impl() == Impl::Vendor) return vendor();
  std::string vendor_error;
  try {
    vendor();
    return;
  } catch (const Error& e) {
    vendor_error = e.what();
  }
  try {
    native();
  } catch (const Error& e) {  // e.g. a size only cuDNN takes: both reasons, not just the last
    throw Error(str(vendor_error, "; the native kernel cannot run it either: ", e.what()));
  }
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true))
    std::fprintf(stderr, "warning: cuDNN could not run conv2d %s (%s); used the native kernel\n", pass,
                 vendor_error.c_str());
}
void check_conv_args(const char* what, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    MINIMA_CHECK(t->dim() == 4 && t->is_contiguous(), what, ": expected contiguous NCHW tensors, got ", t->shape());
    MINIMA_CHECK(t->dtype() == (*ts.begin())->dtype(), what, ": mixed dtypes ", t->dtype(), " and ",
                 (*ts.begin())->dtype());
  }
}
}  // namespace

void CudaBackend::conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                                 const Conv2dParams& p) {
  Ctx ctx(y);
  check_conv_args("conv2d", {&y, &x, &w});
  if (y.numel() == 0) return;
  if (y.dtype() == DType::bf16 && bias.defined()) {
    // As on the CPU: the bias is added in float32 and the sum rounded to bfloat16 once.
    Tensor yf = empty(y.shape(), TensorOptions(DType::f32, y.device()));
    conv2d_forward(yf, as_f32(x), as_f32(w), as_f32(bias), p);
    device_copy(y, yf, ctx);
    return;
  }
  if (x.numel() == 0 || w.numel() == 0) {  // no input channels (or nothing but padding): y is the bias
    fill(y, 0.0);
    if (bias.defined()) add_channel_bias(y, bias, ctx);
    return;
  }
  auto native = [&] { native_conv_forward(y, x, w, p, ctx); };
  auto vendor = [&] { cudnn_conv_forward(y, x, w, p, ctx); };
  run_conv(conv_use_vendor("fwd", x, w, y, p, ctx, native, vendor), "forward", y, native, vendor);
  if (bias.defined()) add_channel_bias(y, bias, ctx);
}

void CudaBackend::conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) {
  Ctx ctx(gx);
  check_conv_args("conv2d_backward_input", {&gx, &gy, &w});
  if (gx.numel() == 0) return;
  if (gy.numel() == 0 || w.numel() == 0) {  // no output channels or pixels: nothing flows back
    fill(gx, 0.0);
    return;
  }
  auto native = [&] { native_conv_backward_input(gx, gy, w, p, ctx); };
  auto vendor = [&] { cudnn_conv_backward_input(gx, gy, w, p, ctx); };
  run_conv(conv_use_vendor("dgrad", gy, w, gx, p, ctx, native, vendor), "input gradient", gx, native, vendor);
}

void CudaBackend::conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) {
  Ctx ctx(gw);
  check_conv_args("conv2d_backward_weight", {&gw, &gy, &x});
  if (gw.numel() == 0) return;
  if (gy.numel() == 0 || x.numel() == 0) {
    fill(gw, 0.0);
    return;
  }
  auto native = [&] { native_conv_backward_weight(gw, gy, x, p, ctx); };
  auto vendor = [&] { cudnn_conv_backward_weight(gw, gy, x, p, ctx); };
  run_conv(conv_use_vendor("wgrad", gy, x, gw, p, ctx, native, vendor), "weight gradient", gw, native, vendor);
}

}  // namespace minima::cuda
