// kernels/cuda/pool.cu: max / average / adaptive-average pooling over contiguous NCHW tensors.
// Forward passes: one thread per output element, its window walked in the CPU's order (so the
// sums and the max-pooling winners, flat h*W+w indices, are identical to the CPU's).
// Backward passes gather instead of scattering where the window geometry is known: one thread
// per input element sums the outputs whose windows contain it, in ascending order, exactly as
// the CPU accumulates; no atomics, deterministic. max_pool2d's backward only has the recorded
// indices (no geometry), so it scatters: with float atomics normally, or, in deterministic mode,
// one thread per (image, channel) plane walking its outputs in order (the CPU's loop); bf16
// gradients accumulate in a float buffer, rounded once like the CPU's.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

struct PoolDims {
  int64_t NC, H, W, OH, OW;
};
PoolDims dims_of(const Tensor& in, const Tensor& out) {
  return {in.size(0) * in.size(1), in.size(2), in.size(3), out.size(2), out.size(3)};
}

template <class T>
__global__ void max_pool_forward_kernel(const T* x, T* y, int64_t* idx, PoolDims d, Pool2dParams p) {
  using A = Acc<T>;
  const int64_t total = d.NC * d.OH * d.OW;
  MINIMA_GRID_STRIDE(i, total) {
    int64_t ow = i % d.OW, t = i / d.OW, oh = t % d.OH, pl = t / d.OH;
    const T* xs = x + pl * d.H * d.W;
    int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    int64_t h1 = min(h0 + p.kh, d.H), w1 = min(w0 + p.kw, d.W);
    A best = -d_inf<A>();
    int64_t bi = -1;
    bool done = false;
    for (int64_t h = max(h0, int64_t(0)); h < h1 && !done; ++h)
      for (int64_t w = max(w0, int64_t(0)); w < w1; ++w) {
        A v = A(xs[h * d.W + w]);
        if (v > best || d_isnan(v) || bi < 0) {
          best = v;
          bi = h * d.W + w;
          if (d_isnan(v)) {
            done = true;
            break;
          }
        }
      }
    y[i] = to_storage<T>(best);
    idx[i] = bi;
  }
}

// Scatter with float / double atomics.
__device__ __forceinline__ void atomic_add_value(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_value(double* p, double v) { atomicAdd(p, v); }

// gx (accumulation type TA, zeroed) += gy (storage type TY) at the recorded indices.
template <class TA, class TY>
__global__ void max_pool_backward_atomic_kernel(TA* gx, const TY* gy, const int64_t* idx, int64_t NC, int64_t HW,
                                                int64_t OHW) {
  MINIMA_GRID_STRIDE(i, NC * OHW) {
    int64_t pl = i / OHW;
    atomic_add_value(gx + pl * HW + idx[i], TA(Acc<TY>(gy[i])));
  }
}

// Deterministic: one thread per plane, in the CPU's order.
template <class TA, class TY>
__global__ void max_pool_backward_plane_kernel(TA* gx, const TY* gy, const int64_t* idx, int64_t NC, int64_t HW,
                                               int64_t OHW) {
  MINIMA_GRID_STRIDE(pl, NC) {
    TA* g = gx + pl * HW;
    for (int64_t i = 0; i < OHW; ++i) g[idx[pl * OHW + i]] += TA(Acc<TY>(gy[pl * OHW + i]));
  }
}

// Clipped window of an output and its divisor, by PyTorch's (and the CPU's) rules.
struct Window {
  int64_t h0, h1, w0, w1, div;
};
__device__ __forceinline__ Window avg_window(int64_t oh, int64_t ow, int64_t H, int64_t W, const Pool2dParams& p) {
  int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  int64_t h1 = min(h0 + p.kh, H + p.pad_h), w1 = min(w0 + p.kw, W + p.pad_w);
  int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = max(h0, int64_t(0));
  w0 = max(w0, int64_t(0));
  h1 = min(h1, H);
  w1 = min(w1, W);
  int64_t div = p.count_include_pad ? padded : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, max(div, int64_t(1))};
}

template <class T>
__global__ void avg_pool_forward_kernel(const T* x, T* y, PoolDims d, Pool2dParams p) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, d.NC * d.OH * d.OW) {
    int64_t ow = i % d.OW, t = i / d.OW, oh = t % d.OH, pl = t / d.OH;
    Window wd = avg_window(oh, ow, d.H, d.W, p);
    A s = 0;
    for (int64_t h = wd.h0; h < wd.h1; ++h)
      for (int64_t w = wd.w0; w < wd.w1; ++w) s += A(x[(pl * d.H + h) * d.W + w]);
    y[i] = to_storage<T>(s / A(wd.div));
  }
}

// Outputs whose (unclipped) window [o*s - pad, o*s - pad + k) contains input position h:
// o in [ceil((h + pad - k + 1) / s), floor((h + pad) / s)], clipped to [0, O).
__device__ __forceinline__ void window_range(int64_t h, int64_t k, int64_t s, int64_t pad, int64_t O, int64_t& lo,
                                             int64_t& hi) {
  int64_t a = h + pad - k + 1;
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = min((h + pad) / s, O - 1);
}

template <class T>
__global__ void avg_pool_backward_kernel(T* gx, const T* gy, PoolDims d, Pool2dParams p) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, d.NC * d.H * d.W) {
    int64_t w = i % d.W, t = i / d.W, h = t % d.H, pl = t / d.H;
    int64_t oh0, oh1, ow0, ow1;
    window_range(h, p.kh, p.stride_h, p.pad_h, d.OH, oh0, oh1);
    window_range(w, p.kw, p.stride_w, p.pad_w, d.OW, ow0, ow1);
    A s = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        Window wd = avg_window(oh, ow, d.H, d.W, p);
        if (h < wd.h0 || h >= wd.h1 || w < wd.w0 || w >= wd.w1) continue;
        s += A(gy[(pl * d.OH + oh) * d.OW + ow]) / A(wd.div);
      }
    gx[i] = to_storage<T>(s);
  }
}

__device__ __forceinline__ int64_t a_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ __forceinline__ int64_t a_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

template <class T>
__global__ void adaptive_forward_kernel(const T* x, T* y, PoolDims d) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, d.NC * d.OH * d.OW) {
    int64_t ow = i % d.OW, t = i / d.OW, oh = t % d.OH, pl = t / d.OH;
    int64_t h0 = a_start(oh, d.H, d.OH), h1 = a_end(oh, d.H, d.OH);
    int64_t w0 = a_start(ow, d.W, d.OW), w1 = a_end(ow, d.W, d.OW);
    A s = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += A(x[(pl * d.H + h) * d.W + w]);
    y[i] = to_storage<T>(s / A((h1 - h0) * (w1 - w0)));
  }
}

// Outputs o with a_start(o) <= h < a_end(o): o in [floor(h*O/I), ceil((h+1)*O/I) - 1]; the range
// is widened by one on each side and each candidate checked, so rounding can never drop one.
template <class T>
__global__ void adaptive_backward_kernel(T* gx, const T* gy, PoolDims d) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, d.NC * d.H * d.W) {
    int64_t w = i % d.W, t = i / d.W, h = t % d.H, pl = t / d.H;
    int64_t oh0 = max(int64_t(0), h * d.OH / d.H - 1), oh1 = min(d.OH - 1, ((h + 1) * d.OH + d.H - 1) / d.H);
    int64_t ow0 = max(int64_t(0), w * d.OW / d.W - 1), ow1 = min(d.OW - 1, ((w + 1) * d.OW + d.W - 1) / d.W);
    A s = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      int64_t h0 = a_start(oh, d.H, d.OH), h1 = a_end(oh, d.H, d.OH);
      if (h < h0 || h >= h1) continue;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        int64_t w0 = a_start(ow, d.W, d.OW), w1 = a_end(ow, d.W, d.OW);
        if (w < w0 || w >= w1) continue;
        s += A(gy[(pl * d.OH + oh) * d.OW + ow]) / A((h1 - h0) * (w1 - w0));
      }
    }
    gx[i] = to_storage<T>(s);
  }
}

}  // namespace

void CudaBackend::max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) {
  Ctx ctx(y);
  PoolDims d = dims_of(x, y);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(max_pool_forward_kernel<T>, dim3(grid_1d(y.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()),
                  static_cast<int64_t*>(indices.data_ptr()), d, p);
  });
}

void CudaBackend::max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) {
  Ctx ctx(gx);
  int64_t NC = gx.size(0) * gx.size(1), HW = gx.size(2) * gx.size(3), OHW = gy.size(2) * gy.size(3);
  // Sums go into float (double for f64) and are rounded once, as on the CPU: a bf16 gradient is
  // accumulated in a float buffer and converted at the end.
  Tensor acc = gx.dtype() == DType::bf16 ? empty(gx.shape(), TensorOptions(DType::f32, gx.device())) : gx;
  fill(acc, 0.0);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), "max_pool2d_backward", [&] {
    using TY = scalar_t;
    using TA = Acc<TY>;
    TA* g = static_cast<TA*>(acc.data_ptr());
    const TY* gyp = static_cast<const TY*>(gy.data_ptr());
    const int64_t* ip = static_cast<const int64_t*>(indices.data_ptr());
    if (deterministic())
      MINIMA_LAUNCH((max_pool_backward_plane_kernel<TA, TY>), dim3(grid_1d(NC, ctx.dev)), dim3(kThreads), 0, ctx.stream,
                    g, gyp, ip, NC, HW, OHW);
    else
      MINIMA_LAUNCH((max_pool_backward_atomic_kernel<TA, TY>), dim3(grid_1d(NC * OHW, ctx.dev)), dim3(kThreads), 0,
                    ctx.stream, g, gyp, ip, NC, HW, OHW);
  });
  if (acc.impl() != gx.impl()) device_copy(gx, acc, ctx);
}

void CudaBackend::avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) {
  Ctx ctx(y);
  PoolDims d = dims_of(x, y);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(avg_pool_forward_kernel<T>, dim3(grid_1d(y.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), d, p);
  });
}

void CudaBackend::avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) {
  Ctx ctx(gx);
  PoolDims d = dims_of(gx, gy);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), "avg_pool2d_backward", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(avg_pool_backward_kernel<T>, dim3(grid_1d(gx.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(gx.data_ptr()), static_cast<const T*>(gy.data_ptr()), d, p);
  });
}

void CudaBackend::adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) {
  Ctx ctx(y);
  PoolDims d = dims_of(x, y);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "adaptive_avg_pool2d", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(adaptive_forward_kernel<T>, dim3(grid_1d(y.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), d);
  });
}

void CudaBackend::adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) {
  Ctx ctx(gx);
  PoolDims d = dims_of(gx, gy);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), "adaptive_avg_pool2d_backward", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(adaptive_backward_kernel<T>, dim3(grid_1d(gx.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(gx.data_ptr()), static_cast<const T*>(gy.data_ptr()), d);
  });
}

}  // namespace minima::cuda
