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
// With --bn persistent, training forward and backward each run as one cooperative kernel instead,
// which reads x (and gy) once, streaming it through shared memory with cp.async; see "The
// persistent path" below.
// Per-channel vectors (weight, bias, running stats, saved stats) may be f32, f64 or bf16: they
// are read and written through their run-time dtype.
#include <cstdio>
#include <cuda/atomic>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "kernels/cuda/bn_plan.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

// An optional per-channel vector (null data: absent) of float32, bfloat16 or float64 values.
// A read comes in two halves: raw() loads the stored bits and as_double() converts them. A load
// is waited for only where its value is first used, so raw() can be issued well before the value
// is needed and its latency hides behind the work in between; get() does both at once.
struct ChanVec {
  void* p = nullptr;
  DType t = DType::f32;
  int64_t stride = 1;
  __device__ __forceinline__ uint64_t raw(int64_t c) const {
    if (!p) return 0;
    switch (t) {
      case DType::f32: return static_cast<const uint32_t*>(p)[c * stride];
      case DType::bf16: return static_cast<const uint16_t*>(p)[c * stride];
      default: return static_cast<const uint64_t*>(p)[c * stride];  // f64 (chan() admits no other dtype)
    }
  }
  __device__ __forceinline__ double as_double(uint64_t bits, double dflt) const {
    if (!p) return dflt;
    switch (t) {
      case DType::f32: return double(__uint_as_float(uint32_t(bits)));
      case DType::bf16: return double(__uint_as_float(uint32_t(bits) << 16));
      default: return __longlong_as_double(static_cast<long long>(bits));
    }
  }
  __device__ __forceinline__ double get(int64_t c, double dflt) const { return as_double(raw(c), dflt); }
  __device__ __forceinline__ void set(int64_t c, double v) const {
    if (p) store_from_double(p, t, c * stride, v);
  }
};
ChanVec chan(const Tensor& t) {
  ChanVec v;
  if (t.defined()) {
    MINIMA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::bf16 || t.dtype() == DType::f64,
                 "batch_norm: per-channel values must be float32, bfloat16 or float64, got ", t.dtype());
    v.p = t.data_ptr();
    v.t = t.dtype();
    v.stride = t.dim() ? t.stride(0) : 1;
  }
  return v;
}

struct BnGeom {
  int64_t N, C, S, M;     // M = N * S values per channel
  int64_t splits, chunk;  // the statistics passes' blocks per channel and values per block (a multiple of 8)
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
  g.chunk = ((g.M + g.splits - 1) / g.splits + 7) / 8 * 8;  // whole 16-byte packs of any dtype
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

// Block-wide sum of two doubles (a block of whole warps, up to 1024 threads; every thread gets the
// sums): block_sum's tree for both at once, so two barriers instead of four and the same sums.
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sa[32], sb[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  a = warp_sum(a);
  b = warp_sum(b);
  __syncthreads();  // the scratch of the previous call has been read
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  a = warp_sum(lane < nw ? sa[lane] : 0.0);
  b = warp_sum(lane < nw ? sb[lane] : 0.0);
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

// As bn_stats_kernel, for planes of whole 16-byte packs (bn_vec): a thread issues kVecUnroll pack
// loads before it adds any, so several are in flight (with one scalar load per thread, the pass
// reached about 61 % of copy bandwidth on an H200). The same shift and double sums; the terms are
// grouped differently, so the two kernels agree to rounding.
constexpr int kVecUnroll = 4;

// The statistics of one pack, added to a thread's sums in double. Forward: s1 += sum(d), s2 +=
// sum(d^2), d = x - shift.
template <class T>
__device__ __forceinline__ void add_pack_moments(const Pack<T>& v, double shift, double& s1, double& s2) {
#pragma unroll
  for (int e = 0; e < Pack<T>::V; ++e) {
    const double d = double(Acc<T>(v.v[e])) - shift;
    s1 += d;
    s2 += d * d;
  }
}
// Backward: s1 += sum(gy), s2 += sum(gy * (x - mean)).
template <class T>
__device__ __forceinline__ void add_pack_grad_sums(const Pack<T>& xv, const Pack<T>& gv, double mean, double& s1,
                                                   double& s2) {
#pragma unroll
  for (int e = 0; e < Pack<T>::V; ++e) {
    const double gd = double(Acc<T>(gv.v[e]));
    s1 += gd;
    s2 += gd * (double(Acc<T>(xv.v[e])) - mean);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) bn_stats_vec_kernel(const T* x, BnGeom g, double* partial) {
  using A = Acc<T>;
  using P = Pack<T>;
  const int64_t c = blockIdx.x, split = blockIdx.y;
  const int64_t j0 = split * g.chunk, j1 = min(g.M, j0 + g.chunk);  // both multiples of the pack
  const double shift = double(A(x[c * g.S]));
  double s1 = 0, s2 = 0;
  for (int64_t j = j0 + int64_t(threadIdx.x) * P::V; j < j1; j += kVecUnroll * kThreads * P::V) {
    P v[kVecUnroll];
#pragma unroll
    for (int u = 0; u < kVecUnroll; ++u) {
      const int64_t ju = j + int64_t(u) * kThreads * P::V;
      if (ju < j1) v[u] = *reinterpret_cast<const P*>(x + bn_offset(g, c, ju));
    }
#pragma unroll
    for (int u = 0; u < kVecUnroll; ++u)
      if (j + int64_t(u) * kThreads * P::V < j1) add_pack_moments<T>(v[u], shift, s1, s2);
  }
  block_sum2(s1, s2);
  if (threadIdx.x == 0) {
    partial[(c * g.splits + split) * 2] = s1;
    partial[(c * g.splits + split) * 2 + 1] = s2;
  }
}

// What a training forward writes per channel, and its settings.
struct BnForwardArgs {
  ChanVec save_mean, save_invstd, weight, bias, running_mean, running_var;
  double momentum, eps;
};

// The per-channel parameters a finalize reads, as stored (ChanVec::raw): the persistent kernels
// load them before they wait for a channel's sums, so the wait hides the loads' latency.
struct BnForwardParams {
  uint64_t weight, bias;
};
__device__ __forceinline__ BnForwardParams bn_forward_params(const BnForwardArgs& a, int64_t c) {
  return {a.weight.raw(c), a.bias.raw(c)};
}

// Channel c from the sums s1, s2 of d = x - shift and d^2 over its M values: the fused
// scale/offset of the normalize (y = x * scale + offset), and, when `write`, the saved statistics
// and the running stats (PyTorch's momentum rule, unbiased variance). Shared by both paths.
__device__ __forceinline__ void bn_finalize_channel(const BnForwardArgs& a, const BnForwardParams& in, int64_t c,
                                                    int64_t M, double shift, double s1, double s2, bool write,
                                                    double& scale, double& offset) {
  const double m = double(M), dm = s1 / m;
  double var = s2 / m - dm * dm;
  if (var < 0) var = 0;  // rounding; a NaN stays NaN
  const double mean = shift + dm, invstd = 1.0 / sqrt(var + a.eps);
  if (write) {
    a.save_mean.set(c, mean);
    a.save_invstd.set(c, invstd);
    a.running_mean.set(c, (1.0 - a.momentum) * a.running_mean.get(c, 0.0) + a.momentum * mean);
    const double unbiased = M > 1 ? var * m / (m - 1) : var;
    a.running_var.set(c, (1.0 - a.momentum) * a.running_var.get(c, 1.0) + a.momentum * unbiased);
  }
  scale = a.weight.as_double(in.weight, 1.0) * invstd;
  offset = a.bias.as_double(in.bias, 0.0) - mean * scale;
}

// One thread per channel: adds the splits' partial sums in order, then bn_finalize_channel into
// coef[2c], coef[2c+1].
template <class T>
__global__ void bn_finalize_kernel(const T* x, BnGeom g, const double* partial, BnForwardArgs a, double* coef) {
  MINIMA_GRID_STRIDE(c, g.C) {
    double s1 = 0, s2 = 0;
    for (int64_t k = 0; k < g.splits; ++k) {
      s1 += partial[(c * g.splits + k) * 2];
      s2 += partial[(c * g.splits + k) * 2 + 1];
    }
    bn_finalize_channel(a, bn_forward_params(a, c), c, g.M, double(Acc<T>(x[c * g.S])), s1, s2, true, coef[2 * c],
                        coef[2 * c + 1]);
  }
}

// Evaluation: scale/shift from the running statistics.
__global__ void bn_eval_coef_kernel(int64_t C, ChanVec weight, ChanVec bias, ChanVec running_mean, ChanVec running_var,
                                    double eps, double* coef) {
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
  __device__ void store(const int64_t* off, const In& in) const {
    y[off[0]] = to_storage<T>(in.v * in.scale + in.shift);
  }
};

// Backward sums: partial[(c * splits + split) * 2 + {0, 1}] = sum(gy), sum(gy * (x - mean)).
template <class T>
__global__ void __launch_bounds__(kThreads)
    bn_backward_stats_kernel(const T* x, const T* gy, BnGeom g, ChanVec save_mean, double* partial) {
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

// As bn_backward_stats_kernel, for planes of whole 16-byte packs (see bn_stats_vec_kernel).
template <class T>
__global__ void __launch_bounds__(kThreads)
    bn_backward_stats_vec_kernel(const T* x, const T* gy, BnGeom g, ChanVec save_mean, double* partial) {
  using A = Acc<T>;
  using P = Pack<T>;
  constexpr int U = kVecUnroll / 2;  // two loads per pack: x and gy
  const int64_t c = blockIdx.x, split = blockIdx.y;
  const int64_t j0 = split * g.chunk, j1 = min(g.M, j0 + g.chunk);
  const double mean = double(A(save_mean.get(c, 0.0)));
  double s1 = 0, s2 = 0;
  for (int64_t j = j0 + int64_t(threadIdx.x) * P::V; j < j1; j += U * kThreads * P::V) {
    P xv[U], gv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t ju = j + int64_t(u) * kThreads * P::V;
      if (ju >= j1) continue;
      const int64_t o = bn_offset(g, c, ju);
      xv[u] = *reinterpret_cast<const P*>(x + o);
      gv[u] = *reinterpret_cast<const P*>(gy + o);
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (j + int64_t(u) * kThreads * P::V < j1) add_pack_grad_sums<T>(xv[u], gv[u], mean, s1, s2);
  }
  block_sum2(s1, s2);
  if (threadIdx.x == 0) {
    partial[(c * g.splits + split) * 2] = s1;
    partial[(c * g.splits + split) * 2 + 1] = s2;
  }
}

// What a backward reads and writes per channel.
struct BnBackwardArgs {
  ChanVec weight, save_mean, save_invstd, gweight, gbias;
};

// As BnForwardParams, for the backward's finalize.
struct BnBackwardParams {
  uint64_t invstd, weight, mean;
};
__device__ __forceinline__ BnBackwardParams bn_backward_params(const BnBackwardArgs& a, int64_t c) {
  return {a.save_invstd.raw(c), a.weight.raw(c), a.save_mean.raw(c)};
}

// Channel c from sg = sum(gy) and sgd = sum(gy * (x - mean)) over its M values: the coefficients
// of gx = k[0] * gy + k[1] * (x - k[2]) + k[3], i.e. {w*invstd, -w*invstd^2*sum(gy*xhat)/M, mean,
// -w*invstd*sum(gy)/M}, and, when `write`, gweight = sum(gy * xhat) and gbias = sum(gy). Shared
// by both paths.
__device__ __forceinline__ void bn_backward_channel(const BnBackwardArgs& a, const BnBackwardParams& in, int64_t c,
                                                    int64_t M, double sg, double sgd, bool write, double* k) {
  const double invstd = a.save_invstd.as_double(in.invstd, 1.0), m = double(M);
  const double sgx = sgd * invstd;  // sum(gy * xhat)
  if (write) {
    a.gweight.set(c, sgx);
    a.gbias.set(c, sg);
  }
  const double w = a.weight.as_double(in.weight, 1.0) * invstd;
  k[0] = w;
  k[1] = -w * invstd * sgx / m;
  k[2] = a.save_mean.as_double(in.mean, 0.0);
  k[3] = -w * sg / m;
}

// One thread per channel: adds the splits' partial sums in order, then bn_backward_channel into
// coef[4c .. 4c+3].
__global__ void bn_backward_finalize_kernel(BnGeom g, const double* partial, BnBackwardArgs a, double* coef) {
  MINIMA_GRID_STRIDE(c, g.C) {
    double sg = 0, sgd = 0;
    for (int64_t k = 0; k < g.splits; ++k) {
      sg += partial[(c * g.splits + k) * 2];
      sgd += partial[(c * g.splits + k) * 2 + 1];
    }
    bn_backward_channel(a, bn_backward_params(a, c), c, g.M, sg, sgd, true, coef + 4 * c);
  }
}

// gx = k0 * gy + k1 * (x - mean) + k3, coefficients per channel (see bn_backward_channel).
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
__global__ void __launch_bounds__(kThreads)
    bn_apply_vec_kernel(const T* x, T* y, BnGeom g, FastDiv fc, const double* coef) {
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
__global__ void __launch_bounds__(kThreads)
    bn_backward_apply_vec_kernel(const T* x, const T* gy, T* gx, BnGeom g, FastDiv fc, const double* coef) {
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
    if (!aligned16(*t)) return false;
  return true;
}

template <class T>
void apply(const Ctx& ctx, const Tensor& x, const Tensor& y, const BnGeom& g, const double* coef) {
  const FastDiv fc(uint32_t(g.small ? g.C : 1));
  if (bn_vec<T>(g, {&x, &y})) {
    MINIMA_LAUNCH(bn_apply_vec_kernel<T>, dim3(grid_1d(x.numel() / Pack<T>::V, ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), g, fc, coef);
    return;
  }
  BnApplyF<T> f{static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), g, fc, coef};
  launch_elementwise<2>(ctx, y.shape(), {y, x}, f);
}

void check_bn(const Tensor& x, const char* what) {
  MINIMA_CHECK(x.dim() == 4 && x.is_contiguous(), what, ": expected a contiguous [N, C, H, W] tensor, got ", x.shape());
}

// ---------------------------------------------------------------------------------------------
// The persistent path (--bn persistent): one cooperative kernel per training forward or backward,
// which reads its input once. The passes above read x (and gy) twice, because the normalize pass
// needs the statistics of a whole channel, and a DRAM-sized tensor is gone from L2 by then.
//
// Every block is resident for the whole kernel, with NS stages of shared memory (NS = 3 by
// default, bn_stages). Each channel's N*S values are split into P chunks, and the B blocks take
// the C*P chunks in rounds, B at a time in channel order (bn_plan.h), so a channel's chunks lie in
// one round or in two consecutive ones. A block copies its chunks from global into shared memory
// with cp.async, which needs no registers and lets the copies of a whole chunk (and, with three
// stages, of the chunk after it) be in flight while the block does other work. Round r of a block:
//   1. start the copies of its chunk of round r + NS - 1, into the stage round r - 1 used;
//   2. wait for the copies of round r + 1 (started in round r + 2 - NS), sum that chunk from
//      shared memory, write the block's partial sums and count itself in as arrived for its
//      channel;
//   3. wait until all P chunks of the channel of its round-r chunk have arrived;
//   4. add the channel's P partial sums in a fixed order (each block of the channel the same way,
//      so they all get the same statistics; deterministic), and normalize its chunk of round r
//      from shared memory. The block holding the channel's first chunk writes the per-channel
//      outputs.
// With three stages, round r + 2's copies stream in during steps 2 to 4, so the device's memory
// stays busy while blocks wait for one another; with two, step 2 waits for copies started in
// step 1. The waits cannot deadlock: every block sums and counts in its chunk of round r + 1
// before it waits in round r, and a wait in round r needs only chunks of rounds r - 1 to r + 1 (a
// channel spans at most two rounds); so by induction on r every wait ends, and a cooperative
// launch keeps every block resident meanwhile (should that ever fail, a wait gives up after 20 s:
// see bn_gather). In place (y = x, gx = gy) is safe: chunks are disjoint, each is read only by the
// block that holds it, and before that block writes it back; the one value read across blocks,
// the forward's shift (a channel's first value), is read by each block of the channel before it
// counts itself in, and so before the channel is written. It needs planes of whole 16-byte packs (a
// pack never straddles two channels) and 16-byte aligned tensors. Pack q of a chunk is copied,
// summed and normalized by thread q % kPThreads alone, so a stage needs no barrier between its
// uses: each thread waits for its own copies.
// ---------------------------------------------------------------------------------------------

constexpr int kPThreads = 512;    // threads of a persistent block
constexpr int kPBlocksPerSm = 2;  // blocks per SM it is laid out for

// This block's chunk of round r (see bn_plan.h).
__device__ __forceinline__ BnChunk bn_chunk(const BnGeom& g, const BnPlan& p, int64_t r) {
  return bn_chunk_of(p, g.M, g.C, blockIdx.x, r);
}

// Element offset of pack q of chunk k: value j of a channel lies in plane n = j / S at (n*C + c)*S + j % S.
__device__ __forceinline__ int64_t bn_pack_offset(const BnGeom& g, const BnChunk& k, int64_t q, int V) {
  const uint32_t j = uint32_t(k.j0 + q * V);  // g.small: every index fits in 31 bits
  const int64_t n = g.fs.div(j);
  return (n * g.C + k.c) * g.S + (int64_t(j) - n * g.S);
}

// Asynchronous copies of 16 bytes from global to shared memory (cp.async, sm_80 and later): a
// thread's copies since its last commit form a group, and cp_async_wait<N> returns once at most
// the N latest groups of the thread are still in flight, with the others' bytes visible to the
// thread. Before sm_80 the copy is a plain load and store, and the wait does nothing.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
#else
  *static_cast<uint4*>(smem) = *static_cast<const uint4*>(gmem);
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Step 1 for one input: this thread's packs of chunk k (none when the block holds no chunk).
template <class T>
__device__ __forceinline__ void bn_copy_chunk(const T* in, const BnGeom& g, const BnChunk& k, Pack<T>* stage) {
  if (k.c < 0) return;
  for (int64_t q = threadIdx.x; q < k.len / Pack<T>::V; q += kPThreads)
    cp_async16(stage + q, in + bn_pack_offset(g, k, q, Pack<T>::V));
}

// Step 2's end: thread 0 publishes the block's partial sums, then counts the block in.
__device__ __forceinline__ void bn_arrive(double* partial, unsigned* arrived, const BnPlan& p, const BnChunk& k,
                                          double a, double b) {
  if (threadIdx.x != 0) return;
  partial[(k.c * p.P + k.part) * 2] = a;
  partial[(k.c * p.P + k.part) * 2 + 1] = b;
  ::cuda::atomic_ref<unsigned, ::cuda::thread_scope_device> count(arrived[k.c]);
  count.fetch_add(1u, ::cuda::memory_order_release);
}

// The device's nanosecond clock (the same on every SM).
__device__ __forceinline__ uint64_t bn_global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// How long a block waits for a channel before it gives up: far beyond any real wait (a round
// takes microseconds, and a few seconds under compute-sanitizer), so only a broken plan or launch
// gets here. The kernel then traps: the context is lost (every later CUDA call of the process
// fails, starting with the next one on the stream), but the process ends instead of hanging.
constexpr uint64_t kBnWaitLimitNs = 20'000'000'000ull;

// Steps 3 and 4's sums: waits for the P blocks of channel c, then adds their partial sums in
// order. Thread 0's acquire load synchronizes with every block's release of the count, and the
// barrier carries that to the other threads, so no further fence is needed.
__device__ __forceinline__ void bn_gather(const double* partial, unsigned* arrived, const BnPlan& p, int64_t c,
                                          double& a, double& b) {
  if (threadIdx.x == 0) {
    ::cuda::atomic_ref<unsigned, ::cuda::thread_scope_device> count(arrived[c]);
    unsigned ns = 32;
    const uint64_t t0 = bn_global_ns();
    unsigned seen;
    while ((seen = count.load(::cuda::memory_order_acquire)) < unsigned(p.P)) {
      __nanosleep(ns);
      if (ns < 256) ns *= 2;
      if (bn_global_ns() - t0 > kBnWaitLimitNs) {
        printf("minima: persistent batch norm: block %u waited 20 s for channel %lld (%u of %lld chunks arrived)\n",
               blockIdx.x, static_cast<long long>(c), seen, static_cast<long long>(p.P));
        __trap();
      }
    }
  }
  __syncthreads();
  a = b = 0;
  for (int64_t k = threadIdx.x; k < p.P; k += kPThreads) {  // .cg: from L2, never a stale L1 line
    a += __ldcg(partial + (c * p.P + k) * 2);
    b += __ldcg(partial + (c * p.P + k) * 2 + 1);
  }
  block_sum2(a, b);
}

// The forward's shift of chunk k's channel: its first value, as bn_stats_kernel. Loaded as it is
// stored and converted where it is used (bn_shift_value), so the load is not waited for when it
// is issued. A block with no chunk loads nothing: in place, x[0] may be being overwritten.
template <class T>
__device__ __forceinline__ T bn_shift(const T* x, const BnGeom& g, const BnChunk& k) {
  return k.c >= 0 ? x[k.c * g.S] : T();
}
template <class T>
__device__ __forceinline__ double bn_shift_value(T stored) {
  return double(Acc<T>(stored));
}

template <class T, int NS>
__global__ void __launch_bounds__(kPThreads, kPBlocksPerSm)
    bn_persistent_forward_kernel(const T* x, T* y, BnGeom g, BnPlan p, double* partial, unsigned* arrived,
                                 BnForwardArgs a) {
  static_assert(NS == 2 || NS == 3, "two or three stages");
  using A = Acc<T>;
  using P = Pack<T>;
  extern __shared__ __align__(16) unsigned char bn_smem[];
  P* const stages = reinterpret_cast<P*>(bn_smem);  // [NS][p.stage / V]
  const int64_t stage_packs = p.stage / P::V;
  auto stage = [&](int64_t r) { return stages + (r % NS) * stage_packs; };
  // Step 2 for chunk k in `st`: the sums of d = x - shift and d^2, published.
  auto sum_and_arrive = [&](const BnChunk& k, const P* st, T stored_shift) {
    if (k.c < 0) return;
    const double shift = bn_shift_value(stored_shift);
    double s1 = 0, s2 = 0;
    for (int64_t q = threadIdx.x; q < k.len / P::V; q += kPThreads) add_pack_moments<T>(st[q], shift, s1, s2);
    block_sum2(s1, s2);
    bn_arrive(partial, arrived, p, k, s1, s2);
  };
  // Before round 0: the copies of rounds 0 to NS - 2 started, round 0's sums published. The
  // shifts are read as the copies start, so their latency hides behind the copies'.
  for (int64_t r = 0; r + 1 < NS; ++r) {
    bn_copy_chunk(x, g, bn_chunk(g, p, r), stage(r));
    cp_async_commit();
  }
  BnChunk cur = bn_chunk(g, p, 0);
  T shift = bn_shift(x, g, cur);
  T next_shift = NS == 3 ? bn_shift(x, g, bn_chunk(g, p, 1)) : shift;
  cp_async_wait<NS - 2>();
  sum_and_arrive(cur, stage(0), shift);
  for (int64_t r = 0; r < p.rounds; ++r) {
    const BnChunk ahead = bn_chunk(g, p, r + NS - 1);  // step 1
    bn_copy_chunk(x, g, ahead, stage(r + NS - 1));
    cp_async_commit();
    const T ahead_shift = bn_shift(x, g, ahead);
    if constexpr (NS == 2) next_shift = ahead_shift;
    const BnChunk next = bn_chunk(g, p, r + 1);  // step 2
    cp_async_wait<NS - 2>();
    sum_and_arrive(next, stage(r + 1), next_shift);
    if (cur.c >= 0) {  // steps 3 and 4
      double s1, s2, scale, offset;
      const BnForwardParams in = bn_forward_params(a, cur.c);  // lands during the wait
      bn_gather(partial, arrived, p, cur.c, s1, s2);
      bn_finalize_channel(a, in, cur.c, g.M, bn_shift_value(shift), s1, s2, cur.part == 0 && threadIdx.x == 0, scale,
                          offset);
      const A sa = A(scale), oa = A(offset);
      const P* st = stage(r);
      for (int64_t q = threadIdx.x; q < cur.len / P::V; q += kPThreads) {
        P v = st[q];
#pragma unroll
        for (int e = 0; e < P::V; ++e) v.v[e] = to_storage<T>(A(v.v[e]) * sa + oa);
        *reinterpret_cast<P*>(y + bn_pack_offset(g, cur, q, P::V)) = v;
      }
    }
    cur = next;
    shift = next_shift;
    if constexpr (NS == 3) next_shift = ahead_shift;
  }
}

// The backward's stages hold x and gy: stage s of input i (0: x, 1: gy) at [s][i][p.stage / V].
template <class T, int NS>
__global__ void __launch_bounds__(kPThreads, kPBlocksPerSm)
    bn_persistent_backward_kernel(const T* x, const T* gy, T* gx, BnGeom g, BnPlan p, double* partial,
                                  unsigned* arrived, BnBackwardArgs a) {
  static_assert(NS == 2 || NS == 3, "two or three stages");
  using A = Acc<T>;
  using P = Pack<T>;
  extern __shared__ __align__(16) unsigned char bn_smem[];
  P* const stages = reinterpret_cast<P*>(bn_smem);
  const int64_t stage_packs = p.stage / P::V;
  auto xs = [&](int64_t r) { return stages + (r % NS) * 2 * stage_packs; };
  auto gs = [&](int64_t r) { return stages + ((r % NS) * 2 + 1) * stage_packs; };
  auto copy = [&](int64_t r, const BnChunk& k) {
    bn_copy_chunk(x, g, k, xs(r));
    bn_copy_chunk(gy, g, k, gs(r));
    cp_async_commit();
  };
  // The mean of chunk k's channel (saved by the forward), loaded as its copies start and converted
  // where it is used (see ChanVec::raw); a block with no chunk loads nothing.
  auto mean_of = [&](const BnChunk& k) { return k.c >= 0 ? a.save_mean.raw(k.c) : uint64_t(0); };
  // Step 2 for the chunk of round r: the sums of gy and gy * (x - mean), published.
  auto sum_and_arrive = [&](int64_t r, const BnChunk& k, uint64_t stored_mean) {
    if (k.c < 0) return;
    const double mean = double(A(a.save_mean.as_double(stored_mean, 0.0)));
    const P* xr = xs(r);
    const P* gr = gs(r);
    double s1 = 0, s2 = 0;
    for (int64_t q = threadIdx.x; q < k.len / P::V; q += kPThreads) add_pack_grad_sums<T>(xr[q], gr[q], mean, s1, s2);
    block_sum2(s1, s2);
    bn_arrive(partial, arrived, p, k, s1, s2);
  };
  for (int64_t r = 0; r + 1 < NS; ++r) copy(r, bn_chunk(g, p, r));
  BnChunk cur = bn_chunk(g, p, 0);
  const uint64_t first_mean = mean_of(cur);
  uint64_t next_mean = NS == 3 ? mean_of(bn_chunk(g, p, 1)) : first_mean;
  cp_async_wait<NS - 2>();
  sum_and_arrive(0, cur, first_mean);
  for (int64_t r = 0; r < p.rounds; ++r) {
    const BnChunk ahead = bn_chunk(g, p, r + NS - 1);  // step 1
    copy(r + NS - 1, ahead);
    const uint64_t ahead_mean = mean_of(ahead);
    if constexpr (NS == 2) next_mean = ahead_mean;
    const BnChunk next = bn_chunk(g, p, r + 1);  // step 2
    cp_async_wait<NS - 2>();
    sum_and_arrive(r + 1, next, next_mean);
    if (cur.c >= 0) {  // steps 3 and 4
      double sg, sgd, k[4];
      const BnBackwardParams in = bn_backward_params(a, cur.c);  // lands during the wait
      bn_gather(partial, arrived, p, cur.c, sg, sgd);
      bn_backward_channel(a, in, cur.c, g.M, sg, sgd, cur.part == 0 && threadIdx.x == 0, k);
      const A k0 = A(k[0]), k1 = A(k[1]), mean = A(k[2]), k3 = A(k[3]);
      const P* xr = xs(r);
      const P* gr = gs(r);
      for (int64_t q = threadIdx.x; q < cur.len / P::V; q += kPThreads) {
        const P xv = xr[q];
        P v = gr[q];
#pragma unroll
        for (int e = 0; e < P::V; ++e) v.v[e] = to_storage<T>(k0 * A(v.v[e]) + k1 * (A(xv.v[e]) - mean) + k3);
        *reinterpret_cast<P*>(gx + bn_pack_offset(g, cur, q, P::V)) = v;
      }
    }
    cur = next;
    if constexpr (NS == 3) next_mean = ahead_mean;
  }
}

// What a persistent kernel gets on a device: its dynamic shared memory (`stages` stages of
// `inputs` arrays), the values one stage holds per input, and how many of its blocks are resident
// at once per SM and in all (blocks 0: the persistent path does not run there). Worked out once
// per device and kernel.
struct PersistentFit {
  size_t smem = 0;
  int64_t stage = 0;
  int per_sm = 0;
  int64_t blocks = 0;
  int stages = 0;
};

std::mutex g_persistent_mu;  // guards the four below
std::map<std::pair<int, const void*>, PersistentFit> g_persistent_fits;
BnPersistentStats g_persistent_stats;
std::set<int> g_persistent_refused;  // devices that refused a cooperative launch

template <class... KArgs>
PersistentFit persistent_fit(int dev, void (*kernel)(KArgs...), int inputs, int stages, size_t elem_size) {
  std::lock_guard<std::mutex> lock(g_persistent_mu);
  PersistentFit f;
  f.stages = stages;
  if (g_persistent_refused.count(dev)) return f;  // blocks 0: the passes
  const auto key = std::make_pair(dev, reinterpret_cast<const void*>(kernel));
  if (auto it = g_persistent_fits.find(key); it != g_persistent_fits.end()) return it->second;
  int coop = 0, per_sm = 0, reserved = 0, optin = 0;
  MINIMA_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
  MINIMA_CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  MINIMA_CUDA_CHECK(cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev));
  MINIMA_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cudaFuncAttributes attr{};
  MINIMA_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  // Shared memory per block: the SM's share for `per` blocks, less what each block reserves and
  // its static arrays, in whole units of `stages` stages of 16-byte packs.
  const int64_t unit = int64_t(stages) * inputs * 16;
  auto bytes_for = [&](int per) {
    const int64_t b = std::min<int64_t>(optin, per_sm / per - reserved) - int64_t(attr.sharedSizeBytes);
    return b / unit * unit;
  };
  // Laid out for kPBlocksPerSm blocks per SM. Should an SM hold fewer of them (a device with fewer
  // registers, or a carveout not granted), one block per SM takes the whole shared memory
  // instead, so no stage space sits idle.
  for (int per : {kPBlocksPerSm, 1}) {
    const int64_t bytes = bytes_for(per);
    if (!coop || bytes < unit) continue;
    MINIMA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    // The stages take the SM's whole shared memory: ask for the largest carveout, not L1.
    MINIMA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    int occupancy = 0;
    MINIMA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, kernel, kPThreads, size_t(bytes)));
    if (occupancy < per && per > 1) continue;
    f.smem = size_t(bytes);
    f.stage = bytes / (int64_t(stages) * inputs * int64_t(elem_size));
    f.per_sm = occupancy;
    f.blocks = int64_t(occupancy) * sm_count(dev);
    break;
  }
  g_persistent_fits[key] = f;
  return f;
}

// After a cooperative launch was refused as too large: the persistent path is not taken again on
// this device, by any of the persistent kernels (every dtype, direction and stage count). The
// occupancy it was planned with held when the fit was computed, so a refusal means the device is
// shared (MPS, another context); the run goes on with the three kernels, whose sums are grouped
// differently, so it says so once per device instead of changing silently.
void persistent_refused(int dev) {
  std::lock_guard<std::mutex> lock(g_persistent_mu);
  if (g_persistent_refused.insert(dev).second) {
    std::fprintf(stderr,
                 "warning: batch norm's cooperative launch was refused on cuda:%d (is the device shared?); --bn "
                 "persistent runs as three kernels from here on, which round their sums differently\n",
                 dev);
  }
}

void persistent_ran(bool forward, const BnPlan& plan, const PersistentFit& fit) {
  std::lock_guard<std::mutex> lock(g_persistent_mu);
  BnPersistentStats& s = g_persistent_stats;
  ++(forward ? s.forward_calls : s.backward_calls);
  (forward ? s.forward : s.backward) = plan;
  s.per_sm = fit.per_sm;
  s.stages = fit.stages;
}

// The kernels with `stages` stages (bn_stages() read once per call, so the kernel and its fit agree).
template <class T>
auto persistent_forward_kernel(int stages) {
  return stages == 2 ? bn_persistent_forward_kernel<T, 2> : bn_persistent_forward_kernel<T, 3>;
}
template <class T>
auto persistent_backward_kernel(int stages) {
  return stages == 2 ? bn_persistent_backward_kernel<T, 2> : bn_persistent_backward_kernel<T, 3>;
}

// Whether the persistent path takes this call: chosen, not while a graph is captured (the
// cooperative launch is kept out of graphs), whole packs per plane, aligned, and a fitting plan.
template <class T, class... KArgs>
bool use_persistent(const Ctx& ctx, const BnGeom& g, std::initializer_list<const Tensor*> ts, void (*kernel)(KArgs...),
                    int inputs, int stages, BnPlan& p, PersistentFit& f) {
  if (bn_impl() != BnImpl::Persistent || !bn_vec<T>(g, ts) || stream_capturing(ctx.dev)) return false;
  f = persistent_fit(ctx.dev, kernel, inputs, stages, sizeof(T));
  return f.blocks > 0 && plan_bn_persistent(g.M, g.C, f.blocks, kPThreads, f.stage, Pack<T>::V, p);
}

}  // namespace

BnPersistentStats batch_norm_persistent_stats() {
  std::lock_guard<std::mutex> lock(g_persistent_mu);
  return g_persistent_stats;
}

bool batch_norm_persistent_fits(int64_t M, int64_t C, DType dtype, bool backward, int device) {
  const Ctx ctx(device);  // the fit sets the kernel's attributes on the current device
  bool fits = false;
  MINIMA_DISPATCH_FLOAT(dtype, "batch_norm", [&] {
    using T = scalar_t;
    const int stages = bn_stages();
    const PersistentFit f = backward
                                ? persistent_fit(ctx.dev, persistent_backward_kernel<T>(stages), 2, stages, sizeof(T))
                                : persistent_fit(ctx.dev, persistent_forward_kernel<T>(stages), 1, stages, sizeof(T));
    BnPlan p;
    fits = f.blocks > 0 && plan_bn_persistent(M, C, f.blocks, kPThreads, f.stage, Pack<T>::V, p);
  });
  return fits;
}

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
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    using T = scalar_t;
    const T* xp = static_cast<const T*>(x.data_ptr());
    const BnForwardArgs args{chan(save_mean),    chan(save_invstd), chan(weight), chan(bias),
                             chan(running_mean), chan(running_var), momentum,     eps};
    BnPlan plan;
    PersistentFit fit;
    const int stages = bn_stages();
    const auto kernel = persistent_forward_kernel<T>(stages);
    if (use_persistent<T>(ctx, g, {&x, &y}, kernel, 1, stages, plan, fit)) {
      DeviceBuffer partial(size_t(g.C * plan.P * 2) * sizeof(double), ctx.dev);
      DeviceBuffer arrived(size_t(g.C) * sizeof(unsigned), ctx.dev);
      MINIMA_CUDA_CHECK(cudaMemsetAsync(arrived.data(), 0, arrived.size(), ctx.stream));
      if (MINIMA_TRY_LAUNCH_COOPERATIVE(kernel, dim3(unsigned(plan.B)), dim3(kPThreads), fit.smem, ctx.stream, xp,
                                        static_cast<T*>(y.data_ptr()), g, plan, partial.as<double>(),
                                        arrived.as<unsigned>(), args)) {
        persistent_ran(true, plan, fit);
        return;
      }
      persistent_refused(ctx.dev);
    }
    DeviceBuffer partial(size_t(g.C * g.splits * 2) * sizeof(double), ctx.dev);
    DeviceBuffer coef(size_t(g.C * 2) * sizeof(double), ctx.dev);
    if (bn_vec<T>(g, {&x}))
      MINIMA_LAUNCH(bn_stats_vec_kernel<T>, dim3(unsigned(g.C), unsigned(g.splits)), dim3(kThreads), 0, ctx.stream, xp,
                    g, partial.as<double>());
    else
      MINIMA_LAUNCH(bn_stats_kernel<T>, dim3(unsigned(g.C), unsigned(g.splits)), dim3(kThreads), 0, ctx.stream, xp, g,
                    partial.as<double>());
    MINIMA_LAUNCH(bn_finalize_kernel<T>, dim3(grid_1d(g.C, ctx.dev)), dim3(kThreads), 0, ctx.stream, xp, g,
                  partial.as<double>(), args, coef.as<double>());
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
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&] {
    using T = scalar_t;
    const T* xp = static_cast<const T*>(x.data_ptr());
    const T* gp = static_cast<const T*>(gy.data_ptr());
    T* gxp = static_cast<T*>(gx.data_ptr());
    const BnBackwardArgs args{chan(weight), chan(save_mean), chan(save_invstd), chan(gweight), chan(gbias)};
    BnPlan plan;
    PersistentFit fit;
    const int stages = bn_stages();
    const auto kernel = persistent_backward_kernel<T>(stages);
    if (g.M > 0 && use_persistent<T>(ctx, g, {&x, &gy, &gx}, kernel, 2, stages, plan, fit)) {
      DeviceBuffer partial(size_t(g.C * plan.P * 2) * sizeof(double), ctx.dev);
      DeviceBuffer arrived(size_t(g.C) * sizeof(unsigned), ctx.dev);
      MINIMA_CUDA_CHECK(cudaMemsetAsync(arrived.data(), 0, arrived.size(), ctx.stream));
      if (MINIMA_TRY_LAUNCH_COOPERATIVE(kernel, dim3(unsigned(plan.B)), dim3(kPThreads), fit.smem, ctx.stream, xp, gp,
                                        gxp, g, plan, partial.as<double>(), arrived.as<unsigned>(), args)) {
        persistent_ran(false, plan, fit);
        return;
      }
      persistent_refused(ctx.dev);
    }
    DeviceBuffer partial(size_t(g.C * g.splits * 2) * sizeof(double), ctx.dev);
    DeviceBuffer coef(size_t(g.C * 4) * sizeof(double), ctx.dev);
    if (bn_vec<T>(g, {&x, &gy}))
      MINIMA_LAUNCH(bn_backward_stats_vec_kernel<T>, dim3(unsigned(g.C), unsigned(g.splits)), dim3(kThreads), 0,
                    ctx.stream, xp, gp, g, chan(save_mean), partial.as<double>());
    else
      MINIMA_LAUNCH(bn_backward_stats_kernel<T>, dim3(unsigned(g.C), unsigned(g.splits)), dim3(kThreads), 0, ctx.stream,
                    xp, gp, g, chan(save_mean), partial.as<double>());
    MINIMA_LAUNCH(bn_backward_finalize_kernel, dim3(grid_1d(g.C, ctx.dev)), dim3(kThreads), 0, ctx.stream, g,
                  partial.as<double>(), args, coef.as<double>());
    const FastDiv fc(uint32_t(g.small ? g.C : 1));
    if (bn_vec<T>(g, {&x, &gy, &gx})) {
      MINIMA_LAUNCH(bn_backward_apply_vec_kernel<T>, dim3(grid_1d(x.numel() / Pack<T>::V, ctx.dev)), dim3(kThreads), 0,
                    ctx.stream, xp, gp, gxp, g, fc, coef.as<double>());
    } else {
      BnBackwardApplyF<T> f{xp, gp, gxp, g, fc, coef.as<double>()};
      launch_elementwise<3>(ctx, gx.shape(), {gx, x, gy}, f);
    }
  });
}

}  // namespace minima::cuda
