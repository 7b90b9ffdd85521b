// kernels/cuda/batchnorm.cu: batch norm over (N, H, W) per channel of a contiguous NCHW tensor
// (a [N, C] input arrives as [N, C, 1, 1]).
// Training forward, three kernels:
//  1. statistics in one pass over x: for channel c, blocks of a (splits x C) grid each sum
//     (x - shift) and (x - shift)^2 over a chunk of the channel's N*H*W elements (in double,
//     per thread and across the block); shift = the channel's first element keeps the variance
//     formula E[d^2] - E[d]^2 free of cancellation when the mean is far from 0;
//  2. one thread per channel adds the splits' partial sums in order (deterministic), writes the
//     saved mean and 1/sqrt(var + eps), updates the running stats (PyTorch's momentum rule,
//     unbiased variance) and folds weight and bias into one scale and shift per channel;
//  3. y = x * scale[c] + shift[c], fused (the same kernel serves evaluation mode): 16 bytes per
//     load and store when a channel's plane holds whole packs, else on the elementwise loop of
//     elementwise.cuh.
// Backward, the same shape: per-channel sums of gy and gy * xhat in one pass over (x, gy), a
// per-channel finalize that writes gweight = sum(gy * xhat) and gbias = sum(gy), and one fused
// pass for the closed form gx = w * invstd * (gy - sum(gy)/M - xhat * sum(gy*xhat)/M).
// Per-channel vectors (weight, bias, running stats, saved stats) may be f32, f64 or bf16: they
// are read and written through their run-time dtype.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

// An optional per-channel vector (null data: absent).
struct ChanVec {
  void* p = nullptr;
  DType t = DType::f32;
  int64_t stride = 1;
  __device__ __forceinline__ double get(int64_t c, double dflt) const {
    return p ? load_as_double(p, t, c * stride) : dflt;
  }
  __device__ __forceinline__ void set(int64_t c, double v) const {
    if (p) store_from_double(p, t, c * stride, v);
  }
};
ChanVec chan(const Tensor& t) {
  ChanVec v;
  if (t.defined()) {
    v.p = t.data_ptr();
    v.t = t.dtype();
    v.stride = t.dim() ? t.stride(0) : 1;
  }
  return v;
}

struct BnGeom {
  int64_t N, C, S, M;  // M = N * S values per channel
  int64_t splits, chunk;
  bool small;
  FastDiv fs;
};

BnGeom bn_geom(const Tensor& x, int dev) {
  BnGeom g;
  g.N = x.size(0);
  g.C = x.size(1);
  g.S = x.size(2) * x.size(3);
  g.M = g.N * g.S;
  int64_t target = int64_t(sm_count(dev)) * 4;
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>((target + g.C - 1) / g.C, g.M / (kThreads * 8)));
  g.splits = std::min<int64_t>(splits, 65535);
  if (g.M == 0) {  // an empty batch or empty planes: nothing to launch, callers return early
    g.chunk = g.splits = 1;
    g.small = false;
    return g;
  }
  g.chunk = (g.M + g.splits - 1) / g.splits;
  g.splits = (g.M + g.chunk - 1) / g.chunk;
  g.small = g.M < (int64_t(1) << 31) && x.numel() < (int64_t(1) << 31);
  if (g.small) g.fs = FastDiv(uint32_t(g.S));
  return g;
}

// Offset of the j-th value of channel c (j = n * S + s).
__device__ __forceinline__ int64_t bn_offset(const BnGeom& g, int64_t c, int64_t j) {
  int64_t n, s;
  if (g.small) {
    n = g.fs.div(uint32_t(j));
    s = j - n * g.S;
  } else {
    n = j / g.S;
    s = j - n * g.S;
  }
  return (n * g.C + c) * g.S + s;
}

// Block-wide sum of two doubles (256 threads).
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sa[32], sb[32];
  a = block_sum(a, sa);
  b = block_sum(b, sb);
}

// grid (C, splits): partial[(c * splits + split) * 2 + {0, 1}] = sums of d and d^2, d = x - x[c, 0].
template <class T>
__global__ void __launch_bounds__(kThreads) bn_stats_kernel(const T* x, BnGeom g, double* partial) {
  using A = Acc<T>;
  const int64_t c = blockIdx.x, split = blockIdx.y;  // channels on x: no 65535 limit
  const int64_t j0 = split * g.chunk, j1 = min(g.M, j0 + g.chunk);
  // Accumulated in double per thread too: the one-pass variance s2/M - mean^2 magnifies the
  // sums' rounding, and a thread may add thousands of values (the kernel is memory-bound anyway).
  const double shift = double(A(x[c * g.S]));
  double s1 = 0, s2 = 0;
  for (int64_t j = j0 + threadIdx.x; j < j1; j += kThreads) {
    double d = double(A(x[bn_offset(g, c, j)])) - shift;
    s1 += d;
    s2 += d * d;
  }
  double a = s1, b = s2;
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    partial[(c * g.splits + split) * 2] = a;
    partial[(c * g.splits + split) * 2 + 1] = b;
  }
}

// One thread per channel: statistics, running stats, and the fused scale/shift (coef[2c], coef[2c+1]).
template <class T>
__global__ void bn_finalize_kernel(const T* x, BnGeom g, const double* partial, ChanVec save_mean, ChanVec save_invstd,
                                   ChanVec weight, ChanVec bias, ChanVec running_mean, ChanVec running_var,
                                   double momentum, double eps, double* coef) {
  MINIMA_GRID_STRIDE(c, g.C) {
    double s1 = 0, s2 = 0;
    for (int64_t k = 0; k < g.splits; ++k) {
      s1 += partial[(c * g.splits + k) * 2];
      s2 += partial[(c * g.splits + k) * 2 + 1];
    }
    const double M = double(g.M);
    const double dm = s1 / M;
    double var = s2 / M - dm * dm;
    if (var < 0) var = 0;
    const double mean = double(Acc<T>(x[c * g.S])) + dm;
    const double invstd = 1.0 / sqrt(var + eps);
    save_mean.set(c, mean);
    save_invstd.set(c, invstd);
    running_mean.set(c, (1.0 - momentum) * running_mean.get(c, 0.0) + momentum * mean);
    const double unbiased = g.M > 1 ? var * M / (M - 1) : var;
    running_var.set(c, (1.0 - momentum) * running_var.get(c, 1.0) + momentum * unbiased);
    const double scale = weight.get(c, 1.0) * invstd;
    coef[2 * c] = scale;
    coef[2 * c + 1] = bias.get(c, 0.0) - mean * scale;
  }
}

// Evaluation: scale/shift from the running statistics.
__global__ void bn_eval_coef_kernel(int64_t C, ChanVec weight, ChanVec bias, ChanVec running_mean,
                                    ChanVec running_var, double eps, double* coef) {
  MINIMA_GRID_STRIDE(c, C) {
    double invstd = 1.0 / sqrt(running_var.get(c, 1.0) + eps);
    double scale = weight.get(c, 1.0) * invstd;
    coef[2 * c] = scale;
    coef[2 * c + 1] = bias.get(c, 0.0) - running_mean.get(c, 0.0) * scale;
  }
}

// Channel of element i of a contiguous [N, C, S] tensor: (i / S) % C.
__device__ __forceinline__ int64_t bn_channel(const BnGeom& g, const FastDiv& fc, int64_t i) {
  return g.small ? int64_t(fc.mod(g.fs.div(uint32_t(i)))) : (i / g.S) % g.C;
}

// y = x * coef[2c] + coef[2c + 1] (x, y contiguous, so the loop's offsets are the indices). Runs on
// the elementwise loop, which keeps several loads in flight per thread.
template <class T>
struct BnApplyF {
  const T* x;
  T* y;
  BnGeom g;
  FastDiv fc;
  const double* coef;
  struct In {
    Acc<T> v, scale, shift;
  };
  __device__ In load(const int64_t* off) const {
    int64_t c = bn_channel(g, fc, off[0]);
    return {Acc<T>(x[off[1]]), Acc<T>(coef[2 * c]), Acc<T>(coef[2 * c + 1])};
  }
  __device__ void store(const int64_t* off, const In& in) const { y[off[0]] = to_storage<T>(in.v * in.scale + in.shift); }
};

// Backward sums: partial[(c * splits + split) * 2 + {0, 1}] = sum(gy), sum(gy * (x - mean)).
template <class T>
__global__ void __launch_bounds__(kThreads) bn_backward_stats_kernel(const T* x, const T* gy, BnGeom g,
                                                                     ChanVec save_mean, double* partial) {
  using A = Acc<T>;
  const int64_t c = blockIdx.x, split = blockIdx.y;  // channels on x: no 65535 limit
  const int64_t j0 = split * g.chunk, j1 = min(g.M, j0 + g.chunk);
  const double mean = double(A(save_mean.get(c, 0.0)));
  double s1 = 0, s2 = 0;  // double per thread, as in bn_stats_kernel
  for (int64_t j = j0 + threadIdx.x; j < j1; j += kThreads) {
    int64_t o = bn_offset(g, c, j);
    double gv = double(A(gy[o]));
    s1 += gv;
    s2 += gv * (double(A(x[o])) - mean);
  }
  double a = s1, b = s2;
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    partial[(c * g.splits + split) * 2] = a;
    partial[(c * g.splits + split) * 2 + 1] = b;
  }
}

// coef[4c..4c+3] = {w*invstd, -w*invstd*invstd*sgx/M (times x - mean), mean, -w*invstd*sg/M}.
__global__ void bn_backward_finalize_kernel(BnGeom g, const double* partial, ChanVec weight, ChanVec save_mean,
                                            ChanVec save_invstd, ChanVec gweight, ChanVec gbias, double* coef) {
  MINIMA_GRID_STRIDE(c, g.C) {
    double sg = 0, sgd = 0;
    for (int64_t k = 0; k < g.splits; ++k) {
      sg += partial[(c * g.splits + k) * 2];
      sgd += partial[(c * g.splits + k) * 2 + 1];
    }
    const double invstd = save_invstd.get(c, 1.0), M = double(g.M);
    const double sgx = sgd * invstd;  // sum(gy * xhat)
    gweight.set(c, sgx);
    gbias.set(c, sg);
    const double k = weight.get(c, 1.0) * invstd;
    coef[4 * c] = k;
    coef[4 * c + 1] = -k * invstd * sgx / M;
    coef[4 * c + 2] = save_mean.get(c, 0.0);
    coef[4 * c + 3] = -k * sg / M;
  }
}

// gx = k0 * gy + k1 * (x - mean) + k3, coefficients per channel (see bn_backward_finalize_kernel).
template <class T>
struct BnBackwardApplyF {
  const T* x;
  const T* gy;
  T* gx;
  BnGeom g;
  FastDiv fc;
  const double* coef;
  struct In {
    Acc<T> x, gy, k0, k1, mean, k3;
  };
  __device__ In load(const int64_t* off) const {
    const double* k = coef + 4 * bn_channel(g, fc, off[0]);
    return {Acc<T>(x[off[1]]), Acc<T>(gy[off[2]]), Acc<T>(k[0]), Acc<T>(k[1]), Acc<T>(k[2]), Acc<T>(k[3])};
  }
  __device__ void store(const int64_t* off, const In& v) const {
    gx[off[0]] = to_storage<T>(v.k0 * v.gy + v.k1 * (v.x - v.mean) + v.k3);
  }
};

// The 16-byte versions of BnApplyF and BnBackwardApplyF for contiguous tensors whose planes hold
// whole packs (S % V == 0, so the V elements of a pack share one channel): one load per input and
// one store per pack, and one channel lookup per V elements.
template <class T>
__global__ void __launch_bounds__(kThreads) bn_apply_vec_kernel(const T* x, T* y, BnGeom g, FastDiv fc,
                                                                const double* coef) {
  using A = Acc<T>;
  using P = Pack<T>;
  MINIMA_GRID_STRIDE(p, g.N * g.C * g.S / P::V) {
    const int64_t i = p * P::V;
    const int64_t c = bn_channel(g, fc, i);
    const A scale = A(coef[2 * c]), shift = A(coef[2 * c + 1]);
    P v = *reinterpret_cast<const P*>(x + i);
#pragma unroll
    for (int k = 0; k < P::V; ++k) v.v[k] = to_storage<T>(A(v.v[k]) * scale + shift);
    *reinterpret_cast<P*>(y + i) = v;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) bn_backward_apply_vec_kernel(const T* x, const T* gy, T* gx, BnGeom g,
                                                                         FastDiv fc, const double* coef) {
  using A = Acc<T>;
  using P = Pack<T>;
  MINIMA_GRID_STRIDE(p, g.N * g.C * g.S / P::V) {
    const int64_t i = p * P::V;
    const double* k = coef + 4 * bn_channel(g, fc, i);
    const A k0 = A(k[0]), k1 = A(k[1]), mean = A(k[2]), k3 = A(k[3]);
    const P xv = *reinterpret_cast<const P*>(x + i);
    P gv = *reinterpret_cast<const P*>(gy + i);
#pragma unroll
    for (int e = 0; e < P::V; ++e) gv.v[e] = to_storage<T>(k0 * A(gv.v[e]) + k1 * (A(xv.v[e]) - mean) + k3);
    *reinterpret_cast<P*>(gx + i) = gv;
  }
}

// Whether the 16-byte kernels apply: whole packs per plane, 16-byte aligned tensors.
template <class T>
bool bn_vec(const BnGeom& g, std::initializer_list<const Tensor*> ts) {
  if (g.S % Pack<T>::V != 0 || !g.small) return false;
  for (const Tensor* t : ts)
    if (reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 != 0) return false;
  return true;
}

template <class T>
void apply(const Ctx& ctx, const Tensor& x, const Tensor& y, const BnGeom& g, const double* coef) {
  const FastDiv fc(uint32_t(g.small ? g.C : 1));
  if (bn_vec<T>(g, {&x, &y})) {
    MINIMA_LAUNCH(bn_apply_vec_kernel<T>, dim3(grid_1d(x.numel() / Pack<T>::V, ctx.dev)), dim3(kThreads), 0,
                  ctx.stream, static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), g, fc, coef);
    return;
  }
  BnApplyF<T> f{static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), g, fc, coef};
  launch_elementwise<2>(ctx, y.shape(), {y, x}, f);
}

void check_bn(const Tensor& x, const char* what) {
  MINIMA_CHECK(x.dim() == 4 && x.is_contiguous(), what, ": expected a contiguous [N, C, H, W] tensor, got ",
               x.shape());
}

}  // namespace

void CudaBackend::batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                                           const Tensor& x, const Tensor& weight, const Tensor& bias,
                                           const Tensor& running_mean, const Tensor& running_var, double momentum,
                                           double eps) {
  Ctx ctx(x);
  check_bn(x, "batch_norm");
  check_bn(y, "batch_norm");
  BnGeom g = bn_geom(x, ctx.dev);
  if (g.C == 0) return;
  MINIMA_CHECK(g.M > 0, "batch_norm: no values per channel in ", x.shape());
  DeviceBuffer partial(size_t(g.C * g.splits * 2) * sizeof(double), ctx.dev);
  DeviceBuffer coef(size_t(g.C * 2) * sizeof(double), ctx.dev);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    using T = scalar_t;
    const T* xp = static_cast<const T*>(x.data_ptr());
    MINIMA_LAUNCH(bn_stats_kernel<T>, dim3(unsigned(g.C), unsigned(g.splits)), dim3(kThreads), 0, ctx.stream, xp, g,
                  partial.as<double>());
    MINIMA_LAUNCH(bn_finalize_kernel<T>, dim3(grid_1d(g.C, ctx.dev)), dim3(kThreads), 0, ctx.stream, xp, g,
                  partial.as<double>(), chan(save_mean), chan(save_invstd), chan(weight), chan(bias),
                  chan(running_mean), chan(running_var), momentum, eps, coef.as<double>());
    apply<T>(ctx, x, y, g, coef.as<double>());
  });
}

void CudaBackend::batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                          const Tensor& running_mean, const Tensor& running_var, double eps) {
  Ctx ctx(x);
  check_bn(x, "batch_norm");
  check_bn(y, "batch_norm");
  BnGeom g = bn_geom(x, ctx.dev);
  if (g.C == 0 || x.numel() == 0) return;
  DeviceBuffer coef(size_t(g.C * 2) * sizeof(double), ctx.dev);
  MINIMA_LAUNCH(bn_eval_coef_kernel, dim3(grid_1d(g.C, ctx.dev)), dim3(kThreads), 0, ctx.stream, g.C, chan(weight),
                chan(bias), chan(running_mean), chan(running_var), eps, coef.as<double>());
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] { apply<scalar_t>(ctx, x, y, g, coef.as<double>()); });
}

void CudaBackend::batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,
                                      const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                                      const Tensor& save_invstd) {
  Ctx ctx(x);
  check_bn(x, "batch_norm_backward");
  check_bn(gy, "batch_norm_backward");
  check_bn(gx, "batch_norm_backward");
  BnGeom g = bn_geom(x, ctx.dev);
  if (g.C == 0) return;
  DeviceBuffer partial(size_t(g.C * g.splits * 2) * sizeof(double), ctx.dev);
  DeviceBuffer coef(size_t(g.C * 4) * sizeof(double), ctx.dev);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&] {
    using T = scalar_t;
    const T* xp = static_cast<const T*>(x.data_ptr());
    const T* gp = static_cast<const T*>(gy.data_ptr());
    MINIMA_LAUNCH(bn_backward_stats_kernel<T>, dim3(unsigned(g.C), unsigned(g.splits)), dim3(kThreads), 0,
                  ctx.stream, xp, gp, g, chan(save_mean), partial.as<double>());
    MINIMA_LAUNCH(bn_backward_finalize_kernel, dim3(grid_1d(g.C, ctx.dev)), dim3(kThreads), 0, ctx.stream, g,
                  partial.as<double>(), chan(weight), chan(save_mean), chan(save_invstd), chan(gweight),
                  chan(gbias), coef.as<double>());
    const FastDiv fc(uint32_t(g.small ? g.C : 1));
    T* gxp = static_cast<T*>(gx.data_ptr());
    if (bn_vec<T>(g, {&x, &gy, &gx})) {
      MINIMA_LAUNCH(bn_backward_apply_vec_kernel<T>, dim3(grid_1d(x.numel() / Pack<T>::V, ctx.dev)),
                    dim3(kThreads), 0, ctx.stream, xp, gp, gxp, g, fc, coef.as<double>());
    } else {
      BnBackwardApplyF<T> f{xp, gp, gxp, g, fc, coef.as<double>()};
      launch_elementwise<3>(ctx, gx.shape(), {gx, x, gy}, f);
    }
  });
}

}  // namespace minima::cuda
