// kernels/cuda/random.cu: Philox random fills. Element i of the (contiguous) output is computed
// by the same Philox::uniform / Philox::normal functions the CPU backend calls (core/random.h,
// host-and-device), from (seed, offset, i) alone, so CPU and GPU draw identical numbers: bitwise
// for float32 and bfloat16 outputs; for float64 the Box-Muller normal goes through the device's
// log/cos, which may differ from the host's in the last bit.
#include "core/random.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

template <class T>
__global__ void uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  MINIMA_GRID_STRIDE(i, n) {
    using A = Acc<T>;
    double u = fma(hi - lo, Philox::uniform(seed, offset, uint64_t(i)), lo);  // as the CPU: one explicit fma
    T v = to_storage<T>(static_cast<A>(u));
    // A value the storage type rounds up to hi is replaced by lo, as on the CPU: draws stay in
    // [lo, hi) on the storage type's grid.
    out[i] = double(static_cast<A>(v)) >= hi ? to_storage<T>(static_cast<A>(lo)) : v;
  }
}

template <class T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  MINIMA_GRID_STRIDE(i, n) {
    double v = fma(std, Philox::normal(seed, offset, uint64_t(i)), mean);
    out[i] = to_storage<T>(static_cast<Acc<T>>(v));
  }
}

}  // namespace

void CudaBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) {
  Ctx ctx(out);
  MINIMA_CHECK(out.is_contiguous(), "random fill: the output must be contiguous");
  MINIMA_DISPATCH_FLOAT(out.dtype(), "random fill", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(uniform_kernel<T>, dim3(grid_1d(out.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(out.data_ptr()), out.numel(), seed, offset, lo, hi);
  });
}

void CudaBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  Ctx ctx(out);
  MINIMA_CHECK(out.is_contiguous(), "random fill: the output must be contiguous");
  MINIMA_DISPATCH_FLOAT(out.dtype(), "random fill", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(normal_kernel<T>, dim3(grid_1d(out.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(out.data_ptr()), out.numel(), seed, offset, mean, std);
  });
}

}  // namespace minima::cuda
