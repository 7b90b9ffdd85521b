// kernels/cuda/elementwise.cuh: the one strided loop every elementwise CUDA kernel runs on (the
// twin of kernels/cpu/loops.h). K operands share a logical shape; OffsetCalc turns an element's
// linear index into one offset per operand (or the index itself when all are dense).
//
// An operation is a small functor with two steps, so a thread can issue the loads of kUnroll
// elements before any of their stores (stores may alias loads in in-place ops, so the compiler
// could not reorder them itself; keeping several loads in flight is what reaches the copy
// bandwidth):
//   struct F {
//     struct In {...};                                   // what load() reads
//     __device__ In load(const int64_t* off) const;      // off[k]: element offset of operand k
//     __device__ void store(const int64_t* off, const In& v) const;  // computes and writes
//   };
#pragma once
#include "kernels/cuda/cuda_common.cuh"

namespace minima::cuda {

constexpr int kUnroll = 4;

// 16 bytes of T (4 float32, 8 bfloat16, 2 float64), the unit of the vectorized kernels (the dense
// path of elementwise.cu, batch norm's normalize pass): one load or store instruction each.
template <class T>
struct alignas(16) Pack {
  static constexpr int V = 16 / sizeof(T);
  T v[V];
};
// Whether a tensor's data may be read and written as whole 16-byte packs.
inline bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

template <int K, class F>
__global__ void __launch_bounds__(kThreads) elementwise_kernel(int64_t n, OffsetCalc<K> oc, F f) {
  using In = typename F::In;
  const int64_t step = int64_t(gridDim.x) * kThreads * kUnroll;
  for (int64_t base = int64_t(blockIdx.x) * kThreads * kUnroll + threadIdx.x; base < n; base += step) {
    In v[kUnroll];
    int64_t off[kUnroll][K];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t i = base + int64_t(u) * kThreads;
      if (i < n) {
        oc.get(i, off[u]);
        v[u] = f.load(off[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t i = base + int64_t(u) * kThreads;
      if (i < n) f.store(off[u], v[u]);
    }
  }
}

// Runs f over `shape`; ts[k] is operand k viewed with that shape (broadcast operands: stride 0).
template <int K, class F>
void launch_elementwise(const Ctx& ctx, const Shape& shape, const std::array<Tensor, K>& ts, const F& f) {
  int64_t n = numel_of(shape);
  if (n == 0) return;
  OffsetCalc<K> oc = make_offset_calc<K>(shape, ts);
  unsigned grid = grid_1d((n + kUnroll - 1) / kUnroll, ctx.dev);
  MINIMA_LAUNCH((elementwise_kernel<K, F>), dim3(grid), dim3(kThreads), 0, ctx.stream, n, oc, f);
}

}  // namespace minima::cuda
