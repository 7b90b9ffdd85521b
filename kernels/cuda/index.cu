// kernels/cuda/index.cu: index_select / index_add and gather / scatter_add (index: int64,
// contiguous). A bad index is raised on the host with the CPU backend's message: index_select and
// gather report it from their kernel (the element is written as 0); index_add and scatter_add
// validate the whole index first, so a bad one leaves their output untouched.
// The two accumulating ops have two schedules:
//  * atomics (default, float dtypes): one thread per source element adds into its target;
//  * ordered (deterministic mode, and always for integer dtypes): one thread per output
//    "column" (every coordinate but `dim`) walks the indices in order, so repeated indices are
//    summed in the CPU's order and the result is bitwise reproducible; slower when there are few
//    columns and many indices.
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_common.cuh"

namespace minima::cuda {

namespace {

__device__ __forceinline__ void atomic_add_value(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_value(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_value(bf16* p, float v) {
  // v is a bfloat16 value widened to float, so each add rounds once to bfloat16, as each add on the
  // CPU does; repeated indices are added in the hardware's order rather than the CPU's, so such sums
  // may differ from the CPU's by a few bfloat16 steps (deterministic mode adds in order).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16_rn(v));
#else
  // A compare-and-swap on the element's own two bytes (never on its neighbour's).
  auto* half = reinterpret_cast<unsigned short*>(p);
  unsigned short old = *half, assumed;
  do {
    assumed = old;
    unsigned short next = bf16::from_float(bf16::to_float(assumed) + v);
    old = atomicCAS(half, assumed, next);
  } while (old != assumed);
#endif
}

// Checks every index against [0, bound) before an accumulating op writes anything, so a bad
// index leaves the output untouched, as on the CPU.
__global__ void validate_index_kernel(const int64_t* idx, int64_t n, int64_t bound, unsigned long long* err) {
  MINIMA_GRID_STRIDE(i, n) {
    int64_t v = idx[i];
    if (v < 0 || v >= bound) report_bad_index(err, i);
  }
}

void validate_index(const Ctx& ctx, const Tensor& index, int64_t bound, const char* op, int64_t dim) {
  if (index.numel() == 0) return;
  MINIMA_LAUNCH(validate_index_kernel, dim3(grid_1d(index.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                static_cast<const int64_t*>(index.data_ptr()), index.numel(), bound, index_error_slot(ctx.dev));
  check_index_error(ctx, index, bound, op, dim);
}

template <class T>
constexpr bool has_atomic_add() {
  return std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>;
}

void split3(const Shape& s, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= s[i];
  for (int64_t i = dim + 1; i < int64_t(s.size()); ++i) inner *= s[i];
}

// ---- index_select / index_add: out/src viewed as [outer, n, inner], x/out as [outer, D, inner] ----
template <class T>
__global__ void index_select_kernel(T* out, const T* x, const int64_t* idx, int64_t outer, int64_t n, int64_t D,
                                    int64_t inner, unsigned long long* err) {
  MINIMA_GRID_STRIDE(j, outer * n * inner) {
    int64_t k = j % inner, t = j / inner, i = t % n, o = t / n;
    int64_t v = idx[i];
    if (v < 0 || v >= D) {
      report_bad_index(err, i);
      out[j] = T(0);
    } else {
      out[j] = x[(o * D + v) * inner + k];
    }
  }
}

template <class T>
__global__ void index_add_atomic_kernel(T* out, const T* src, const int64_t* idx, int64_t outer, int64_t n, int64_t D,
                                        int64_t inner, unsigned long long* err) {
  if constexpr (has_atomic_add<T>()) {
    MINIMA_GRID_STRIDE(j, outer * n * inner) {
      int64_t k = j % inner, t = j / inner, i = t % n, o = t / n;
      int64_t v = idx[i];
      if (v < 0 || v >= D)
        report_bad_index(err, i);
      else
        atomic_add_value(out + (o * D + v) * inner + k, Acc<T>(src[j]));
    }
  }
}

template <class T>
__global__ void index_add_ordered_kernel(T* out, const T* src, const int64_t* idx, int64_t outer, int64_t n, int64_t D,
                                         int64_t inner, unsigned long long* err) {
  MINIMA_GRID_STRIDE(col, outer * inner) {
    int64_t k = col % inner, o = col / inner;
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = idx[i];
      if (v < 0 || v >= D) {
        report_bad_index(err, i);
        continue;
      }
      T* d = out + (o * D + v) * inner + k;
      *d = to_storage<T>(arith_add(Acc<T>(*d), Acc<T>(src[(o * n + i) * inner + k])));
    }
  }
}

// ---- gather / scatter_add: element positions through the index's shape ----
struct IndexGeom {
  int nd, dim;
  int64_t size[kMaxDims];     // index shape
  int64_t stride[kMaxDims];   // strides of the tensor indexed (x for gather, out for scatter_add)
  int64_t istride[kMaxDims];  // contiguous strides of the index
  int64_t bound;              // size of that tensor along dim
};

IndexGeom index_geom(const Tensor& index, const Tensor& t, int64_t dim) {
  MINIMA_CHECK(index.dim() <= kMaxDims, "gather/scatter_add on CUDA: at most ", kMaxDims, " dims, got ", index.shape());
  IndexGeom g;
  g.nd = int(index.dim());
  g.dim = int(dim);
  g.bound = t.size(dim);
  Shape cs = contiguous_strides(index.shape());
  for (int d = 0; d < g.nd; ++d) {
    g.size[d] = index.size(d);
    g.stride[d] = t.stride(d);
    g.istride[d] = cs[size_t(d)];
  }
  return g;
}

// Offset in the indexed tensor of index element i (coordinates of i, with idx[i] along dim).
__device__ __forceinline__ int64_t index_offset(const IndexGeom& g, int64_t i, int64_t v) {
  int64_t off = 0;
  for (int d = g.nd - 1; d >= 0; --d) {
    int64_t c = i % g.size[d];
    i /= g.size[d];
    off += (d == g.dim ? v : c) * g.stride[d];
  }
  return off;
}

template <class T>
__global__ void gather_kernel(T* out, const T* x, const int64_t* idx, int64_t n, IndexGeom g, unsigned long long* err) {
  MINIMA_GRID_STRIDE(i, n) {
    int64_t v = idx[i];
    if (v < 0 || v >= g.bound) {
      report_bad_index(err, i);
      out[i] = T(0);
    } else {
      out[i] = x[index_offset(g, i, v)];
    }
  }
}

template <class T>
__global__ void scatter_add_atomic_kernel(T* out, const T* src, const int64_t* idx, int64_t n, IndexGeom g,
                                          unsigned long long* err) {
  if constexpr (has_atomic_add<T>()) {
    MINIMA_GRID_STRIDE(i, n) {
      int64_t v = idx[i];
      if (v < 0 || v >= g.bound)
        report_bad_index(err, i);
      else
        atomic_add_value(out + index_offset(g, i, v), Acc<T>(src[i]));
    }
  }
}

// One thread per column of the index (all coordinates but dim), walking dim in order.
template <class T>
__global__ void scatter_add_ordered_kernel(T* out, const T* src, const int64_t* idx, int64_t ncol, IndexGeom g,
                                           unsigned long long* err) {
  MINIMA_GRID_STRIDE(col, ncol) {
    // First element of the column: decompose col over the index dims except dim.
    int64_t rest = col, i0 = 0;
    for (int d = g.nd - 1; d >= 0; --d) {
      if (d == g.dim) continue;
      int64_t c = rest % g.size[d];
      rest /= g.size[d];
      i0 += c * g.istride[d];
    }
    const int64_t len = g.nd ? g.size[g.dim] : 1, step = g.nd ? g.istride[g.dim] : 1;
    for (int64_t j = 0; j < len; ++j) {
      int64_t i = i0 + j * step;
      int64_t v = idx[i];
      if (v < 0 || v >= g.bound) {
        report_bad_index(err, i);
        continue;
      }
      T* d = out + index_offset(g, i, v);
      *d = to_storage<T>(arith_add(Acc<T>(*d), Acc<T>(src[i])));
    }
  }
}

}  // namespace

void CudaBackend::index_select(const Tensor& out, const Tensor& x0, int64_t dim, const Tensor& index) {
  Ctx ctx(out);
  NoGradGuard ng;
  Tensor x = x0.contiguous();
  MINIMA_CHECK(out.is_contiguous(), "index_select: the output must be contiguous");
  int64_t D = x.size(dim), n = index.numel(), outer, inner;
  split3(x.shape(), dim, outer, inner);
  if (out.numel() == 0) {  // nothing to copy, but a bad index is still an error
    validate_index(ctx, index, D, "index_select", dim);
    return;
  }
  MINIMA_DISPATCH_ALL(x.dtype(), "index_select", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(index_select_kernel<T>, dim3(grid_1d(out.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                  static_cast<const int64_t*>(index.data_ptr()), outer, n, D, inner, index_error_slot(ctx.dev));
  });
  check_index_error(ctx, index, D, "index_select", dim);
}

void CudaBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src0) {
  Ctx ctx(out);
  NoGradGuard ng;
  Tensor src = src0.contiguous();
  MINIMA_CHECK(out.is_contiguous(), "index_add: the output must be contiguous");
  int64_t D = out.size(dim), n = index.numel(), outer, inner;
  split3(out.shape(), dim, outer, inner);
  validate_index(ctx, index, D, "index_add", dim);
  if (src.numel() == 0) return;
  MINIMA_DISPATCH_ALL(out.dtype(), "index_add", [&] {
    using T = scalar_t;
    T* op = static_cast<T*>(out.data_ptr());
    const T* sp = static_cast<const T*>(src.data_ptr());
    const int64_t* ip = static_cast<const int64_t*>(index.data_ptr());
    if (has_atomic_add<T>() && !deterministic())
      MINIMA_LAUNCH(index_add_atomic_kernel<T>, dim3(grid_1d(src.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream, op,
                    sp, ip, outer, n, D, inner, index_error_slot(ctx.dev));
    else
      MINIMA_LAUNCH(index_add_ordered_kernel<T>, dim3(grid_1d(outer * inner, ctx.dev)), dim3(kThreads), 0, ctx.stream,
                    op, sp, ip, outer, n, D, inner, index_error_slot(ctx.dev));
  });
}

void CudaBackend::gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  Ctx ctx(out);
  MINIMA_CHECK(out.is_contiguous(), "gather: the output must be contiguous");
  if (index.numel() == 0) return;
  IndexGeom g = index_geom(index, x, dim);
  MINIMA_DISPATCH_ALL(x.dtype(), "gather", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(gather_kernel<T>, dim3(grid_1d(index.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(out.data_ptr()), static_cast<const T*>(x.data_ptr()),
                  static_cast<const int64_t*>(index.data_ptr()), index.numel(), g, index_error_slot(ctx.dev));
  });
  check_index_error(ctx, index, x.size(dim), "gather", dim);
}

void CudaBackend::scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src0) {
  Ctx ctx(out);
  NoGradGuard ng;
  Tensor src = src0.contiguous();
  if (index.numel() == 0) return;
  const int64_t bound = out.dim() ? out.size(dim) : 1;
  validate_index(ctx, index, bound, "scatter_add", dim);
  IndexGeom g = index_geom(index, out, dim);
  MINIMA_DISPATCH_ALL(out.dtype(), "scatter_add", [&] {
    using T = scalar_t;
    T* op = static_cast<T*>(out.data_ptr());
    const T* sp = static_cast<const T*>(src.data_ptr());
    const int64_t* ip = static_cast<const int64_t*>(index.data_ptr());
    if (has_atomic_add<T>() && !deterministic()) {
      MINIMA_LAUNCH(scatter_add_atomic_kernel<T>, dim3(grid_1d(index.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                    op, sp, ip, index.numel(), g, index_error_slot(ctx.dev));
    } else {
      int64_t ncol = index.numel() / std::max<int64_t>(1, index.dim() ? index.size(dim) : 1);
      MINIMA_LAUNCH(scatter_add_ordered_kernel<T>, dim3(grid_1d(ncol, ctx.dev)), dim3(kThreads), 0, ctx.stream, op, sp,
                    ip, ncol, g, index_error_slot(ctx.dev));
    }
  });
}

}  // namespace minima::cuda
