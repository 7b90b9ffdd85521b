// kernels/cuda/softmax.cu: log_softmax over one dim (x contiguous, viewed as [outer, D, inner]),
// its backward gx = gy - exp(y) * sum(gy), and the per-sample negative log-likelihood.
//  * inner == 1 (the class dim is last, the usual case): a group of threads per row, a warp or,
//    for rows longer than 1024, the whole block; max, sum of exp and the write are three passes
//    over the row (the row stays in L1/L2 between them), combined with warp shuffles;
//  * inner > 1: one thread per (outer, inner) column, walking D with neighbouring threads on
//    neighbouring addresses.
// nll checks its targets: an out-of-range target makes the kernel report its position and write
// NaN, and the host raises the CPU backend's error.
#include "kernels/cuda/cuda_common.cuh"

namespace minima::cuda {

namespace {

// Reduction over a group of `tpo` threads (32 or the 256-thread block); all of the group get it.
template <class A, bool IsMax>
__device__ __forceinline__ A group_reduce(A v, int tpo, A* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    A w = __shfl_xor_sync(0xffffffffu, v, o);
    v = IsMax ? (w > v ? w : v) : v + w;
  }
  if (tpo > 32) {
    __syncthreads();  // scratch may still be read from a previous call
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = scratch[0];
    for (int w = 1; w < kThreads / 32; ++w) v = IsMax ? (scratch[w] > v ? scratch[w] : v) : v + scratch[w];
  }
  return v;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    log_softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t D, int tpo) {
  using A = Acc<T>;
  __shared__ A scratch[kThreads / 32];
  const int groups = kThreads / tpo, lane = threadIdx.x % tpo;
  const int64_t r = int64_t(blockIdx.x) * groups + threadIdx.x / tpo;
  const bool active = r < rows;  // inactive threads still take part in the block's barriers
  const T* xs = x + (active ? r : 0) * D;
  A m = -d_inf<A>();
  if (active)
    for (int64_t d = lane; d < D; d += tpo) {
      A v = A(xs[d]);
      m = v > m ? v : m;
    }
  m = group_reduce<A, true>(m, tpo, scratch);
  A s = 0;
  if (active)
    for (int64_t d = lane; d < D; d += tpo) s += d_exp(A(xs[d]) - m);
  s = group_reduce<A, false>(s, tpo, scratch);
  if (!active) return;
  const A log_s = d_log(s);  // (x - m) - log(s): see the CPU kernel
  T* ys = y + r * D;
  for (int64_t d = lane; d < D; d += tpo) ys[d] = to_storage<T>((A(xs[d]) - m) - log_s);
}

template <class T>
__global__ void log_softmax_cols_kernel(const T* x, T* y, int64_t outer, int64_t D, int64_t inner) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, outer * inner) {
    int64_t o = i / inner, in = i % inner;
    const T* xs = x + o * D * inner + in;
    T* ys = y + o * D * inner + in;
    A m = -d_inf<A>();
    for (int64_t d = 0; d < D; ++d) {
      A v = A(xs[d * inner]);
      m = v > m ? v : m;
    }
    A s = 0;
    for (int64_t d = 0; d < D; ++d) s += d_exp(A(xs[d * inner]) - m);
    const A log_s = d_log(s);
    for (int64_t d = 0; d < D; ++d) ys[d * inner] = to_storage<T>((A(xs[d * inner]) - m) - log_s);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    log_softmax_backward_rows_kernel(const T* gy, const T* y, T* gx, int64_t rows, int64_t D, int tpo) {
  using A = Acc<T>;
  __shared__ A scratch[kThreads / 32];
  const int groups = kThreads / tpo, lane = threadIdx.x % tpo;
  const int64_t r = int64_t(blockIdx.x) * groups + threadIdx.x / tpo;
  const bool active = r < rows;
  const int64_t base = (active ? r : 0) * D;
  A s = 0;
  if (active)
    for (int64_t d = lane; d < D; d += tpo) s += A(gy[base + d]);
  s = group_reduce<A, false>(s, tpo, scratch);
  if (!active) return;
  for (int64_t d = lane; d < D; d += tpo) gx[base + d] = to_storage<T>(A(gy[base + d]) - d_exp(A(y[base + d])) * s);
}

template <class T>
__global__ void log_softmax_backward_cols_kernel(const T* gy, const T* y, T* gx, int64_t outer, int64_t D,
                                                 int64_t inner) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, outer * inner) {
    int64_t base = (i / inner) * D * inner + i % inner;
    A s = 0;
    for (int64_t d = 0; d < D; ++d) s += A(gy[base + d * inner]);
    for (int64_t d = 0; d < D; ++d)
      gx[base + d * inner] = to_storage<T>(A(gy[base + d * inner]) - d_exp(A(y[base + d * inner])) * s);
  }
}

void split3(const Tensor& x, int64_t dim, int64_t& outer, int64_t& D, int64_t& inner) {
  outer = 1;
  inner = 1;
  D = x.dim() ? x.size(dim) : 1;
  for (int64_t i = 0; i < dim; ++i) outer *= x.size(i);
  for (int64_t i = dim + 1; i < x.dim(); ++i) inner *= x.size(i);
}

template <class T>
__global__ void nll_forward_kernel(const T* logp, const int64_t* target, T* loss, int64_t N, int64_t C,
                                   unsigned long long* err) {
  MINIMA_GRID_STRIDE(i, N) {
    int64_t t = target[i];
    if (t < 0 || t >= C) {
      if (err) report_bad_index(err, i);                         // no slot when the targets are trusted
      loss[i] = to_storage<T>(d_inf<float>() - d_inf<float>());  // NaN
    } else {
      loss[i] = to_storage<T>(-Acc<T>(logp[i * C + t]));
    }
  }
}

// Writes every element: -gloss[i] at the target, 0 elsewhere.
template <class T>
__global__ void nll_backward_kernel(T* glogp, const T* gloss, const int64_t* target, int64_t N, int64_t C) {
  MINIMA_GRID_STRIDE(j, N * C) {
    int64_t i = j / C, c = j - i * C;
    int64_t t = target[i];  // validated by the forward; an out-of-range one matches no c
    glogp[j] = c == t ? to_storage<T>(-Acc<T>(gloss[i])) : to_storage<T>(0.f);
  }
}

}  // namespace

void CudaBackend::log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) {
  Ctx ctx(y);
  MINIMA_CHECK(x.is_contiguous() && y.is_contiguous(), "log_softmax: expected contiguous tensors");
  int64_t outer, D, inner;
  split3(x, dim, outer, D, inner);
  if (x.numel() == 0) return;
  MINIMA_DISPATCH_FLOAT(x.dtype(), "log_softmax", [&] {
    using T = scalar_t;
    const T* xp = static_cast<const T*>(x.data_ptr());
    T* yp = static_cast<T*>(y.data_ptr());
    if (inner == 1) {
      int tpo = D > 1024 ? kThreads : 32;
      int64_t groups = kThreads / tpo;
      MINIMA_LAUNCH(log_softmax_rows_kernel<T>, dim3(unsigned((outer + groups - 1) / groups)), dim3(kThreads), 0,
                    ctx.stream, xp, yp, outer, D, tpo);
    } else {
      MINIMA_LAUNCH(log_softmax_cols_kernel<T>, dim3(grid_1d(outer * inner, ctx.dev)), dim3(kThreads), 0, ctx.stream,
                    xp, yp, outer, D, inner);
    }
  });
}

void CudaBackend::log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) {
  Ctx ctx(gx);
  MINIMA_CHECK(gy.is_contiguous() && y.is_contiguous() && gx.is_contiguous(),
               "log_softmax_backward: expected contiguous tensors");
  int64_t outer, D, inner;
  split3(y, dim, outer, D, inner);
  if (y.numel() == 0) return;
  MINIMA_DISPATCH_FLOAT(y.dtype(), "log_softmax_backward", [&] {
    using T = scalar_t;
    const T* gp = static_cast<const T*>(gy.data_ptr());
    const T* yp = static_cast<const T*>(y.data_ptr());
    T* gxp = static_cast<T*>(gx.data_ptr());
    if (inner == 1) {
      int tpo = D > 1024 ? kThreads : 32;
      int64_t groups = kThreads / tpo;
      MINIMA_LAUNCH(log_softmax_backward_rows_kernel<T>, dim3(unsigned((outer + groups - 1) / groups)), dim3(kThreads),
                    0, ctx.stream, gp, yp, gxp, outer, D, tpo);
    } else {
      MINIMA_LAUNCH(log_softmax_backward_cols_kernel<T>, dim3(grid_1d(outer * inner, ctx.dev)), dim3(kThreads), 0,
                    ctx.stream, gp, yp, gxp, outer, D, inner);
    }
  });
}

void CudaBackend::nll_forward(const Tensor& loss, const Tensor& logp, const Tensor& target) {
  Ctx ctx(loss);
  int64_t N = logp.size(0), C = logp.size(1);
  // Trusted targets (TrustedTargetsGuard): no read-back, and no report left behind for the next
  // checked call to pick up; a bad target only makes its loss NaN.
  const bool trusted = targets_trusted();
  MINIMA_DISPATCH_FLOAT(logp.dtype(), "nll_loss", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(nll_forward_kernel<T>, dim3(grid_1d(N, ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<const T*>(logp.data_ptr()), static_cast<const int64_t*>(target.data_ptr()),
                  static_cast<T*>(loss.data_ptr()), N, C, trusted ? nullptr : index_error_slot(ctx.dev));
  });
  if (!trusted) check_target_error(ctx, target, C);
}

void CudaBackend::nll_backward(const Tensor& glogp, const Tensor& gloss, const Tensor& target) {
  Ctx ctx(glogp);
  int64_t N = glogp.size(0), C = glogp.size(1);
  MINIMA_DISPATCH_FLOAT(glogp.dtype(), "nll_loss_backward", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(nll_backward_kernel<T>, dim3(grid_1d(N * C, ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(glogp.data_ptr()), static_cast<const T*>(gloss.data_ptr()),
                  static_cast<const int64_t*>(target.data_ptr()), N, C);
  });
  // No host check here: nll_loss's backward runs on the targets its forward has just validated
  // (and synchronized for), and a second check would stall every training step once more. A bad
  // target still only zeroes its row.
}

}  // namespace minima::cuda
