// kernels/cuda/cuda_common.cuh: what every CUDA kernel file shares.
//  * check macros: every CUDA / cuBLAS call goes through one that throws minima::Error naming
//    file:line, the call and the library's error string (cuDNN's lives in vendor_cudnn.cu);
//  * Ctx: the device of a call (made current) and its one stream, passed explicitly to launches;
//  * MINIMA_LAUNCH: the one launch helper (skips empty grids, checks the launch), and
//    MINIMA_TRY_LAUNCH_COOPERATIVE for kernels whose blocks wait for one another;
//  * FastDiv and OffsetCalc: index arithmetic for strided tensors (dims merged on the host,
//    32-bit multiply-shift division when every index fits in 31 bits);
//  * device-side dtype helpers (bf16 is stored as 16 bits and computed in float), warp reductions;
//  * the CudaBackend class and the cross-file entry points (native vs vendor paths, autotuning).
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>

#include "core/backend.h"
#include "core/tensor.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_config.h"

namespace minima::cuda {

// ---------------------------------------------------------------------------------------------
// Error checks
// ---------------------------------------------------------------------------------------------
[[noreturn]] void throw_cuda_error(int code, const char* name, const char* desc, const char* what, const char* file,
                                   int line, const char* library);
inline void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) throw_cuda_error(int(e), cudaGetErrorName(e), cudaGetErrorString(e), what, file, line, "CUDA");
}
}  // namespace minima::cuda

#define MINIMA_CUDA_CHECK(expr) ::minima::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)

namespace minima::cuda {
// For destructors and other paths that must not throw: reports a failure on stderr (file:line,
// the call, the error string) and carries on. Silent while the CUDA runtime is shutting down.
void report_cuda_error(int code, const char* name, const char* desc, const char* what, const char* file, int line,
                       const char* library);
inline void check_cuda_nothrow(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // consumed here, or the next launch check would report it as its own
  if (e != cudaErrorCudartUnloading)
    report_cuda_error(int(e), cudaGetErrorName(e), cudaGetErrorString(e), what, file, line, "CUDA");
}
}  // namespace minima::cuda
#define MINIMA_CUDA_CHECK_NOTHROW(expr) ::minima::cuda::check_cuda_nothrow((expr), #expr, __FILE__, __LINE__)

namespace minima::cuda {

// ---------------------------------------------------------------------------------------------
// Devices, streams, launches
// ---------------------------------------------------------------------------------------------
cudaStream_t stream_for(int device);
// Whether the device's stream is capturing a CUDA graph (no syncs, no timing allowed then).
bool stream_capturing(int device);

// The device a backend call runs on (made current) and the stream its kernels go to.
struct Ctx {
  int dev = 0;
  cudaStream_t stream = nullptr;
  explicit Ctx(int device);
  explicit Ctx(const Tensor& t);
};

constexpr int kThreads = 256;  // block size of the 1-D kernels

// Blocks for a grid-stride loop over n items: enough to fill the device, capped so each thread
// handles several items when n is large.
inline unsigned grid_1d(int64_t n, int dev, int threads = kThreads) {
  int64_t want = (n + threads - 1) / threads;
  int64_t cap = int64_t(sm_count(dev)) * 32;
  if (want > cap) want = cap;
  return unsigned(want < 1 ? 1 : want);
}

template <class... KArgs, class... Args>
void launch_kernel(const char* file, int line, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  kernel<<<grid, block, smem, stream>>>(static_cast<KArgs>(std::forward<Args>(args))...);
  check_cuda(cudaGetLastError(), "kernel launch", file, line);
}

// A cooperative launch: every block of the grid is resident at once, so blocks may wait for one
// another. The grid must fit the kernel's occupancy on the device; when it does not
// (cudaErrorCooperativeLaunchTooLarge, e.g. under MPS or with fewer SMs than the occupancy query
// assumed) nothing runs and false is returned, so the caller can take another path. Any other
// error throws.
template <class... KArgs, class... Args>
bool try_launch_cooperative_kernel(const char* file, int line, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                   size_t smem, cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return true;
  std::tuple<KArgs...> values(static_cast<KArgs>(std::forward<Args>(args))...);
  std::array<void*, sizeof...(KArgs)> ptrs =
      std::apply([](auto&... v) { return std::array<void*, sizeof...(KArgs)>{static_cast<void*>(&v)...}; }, values);
  const cudaError_t e =
      cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel), grid, block, ptrs.data(), smem, stream);
  if (e == cudaErrorCooperativeLaunchTooLarge) {
    (void)cudaGetLastError();  // not sticky: clear it so the next check does not see it
    return false;
  }
  check_cuda(e, "cooperative kernel launch", file, line);
  return true;
}

}  // namespace minima::cuda

// MINIMA_LAUNCH(kernel, grid, block, shared_bytes, stream, args...). A kernel name with template
// arguments goes in parentheses: MINIMA_LAUNCH((k<float, 4>), ...).
#define MINIMA_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::minima::cuda::launch_kernel(__FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)
#define MINIMA_TRY_LAUNCH_COOPERATIVE(kernel, grid, block, smem, stream, ...) \
  ::minima::cuda::try_launch_cooperative_kernel(__FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)

// Grid-stride loop over [0, n), for kernels with their own bodies. (i names the loop's variable, so
// it cannot be parenthesized.)
// NOLINTBEGIN(bugprone-macro-parentheses)
#define MINIMA_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)
// NOLINTEND(bugprone-macro-parentheses)

namespace minima::cuda {

// ---------------------------------------------------------------------------------------------
// Index arithmetic
// ---------------------------------------------------------------------------------------------
// Division by a run-time constant d < 2^31 as a multiply and a shift (Granlund & Montgomery),
// exact for every dividend n < 2^31.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor ? divisor : 1) {
    s = 0;
    while ((uint64_t(1) << s) < d) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
  __device__ __forceinline__ uint32_t mod(uint32_t n) const { return n - div(n) * d; }
};

constexpr int kMaxDims = 12;

// Maps the linear (row-major) index of an element of a shared logical shape to the element
// offsets of K strided operands. Built by make_offset_calc, which drops size-1 dims and merges
// dims that are contiguous for every operand; dims are stored innermost first.
template <int K>
struct OffsetCalc {
  int nd = 0;
  bool contig = true;  // every operand is dense and in the same order: offset == index
  bool small = true;   // every index < 2^31: 32-bit fast division
  bool narrow = true;  // and every offset of every operand within +-2^31: 32-bit offset arithmetic
  int64_t size[kMaxDims] = {};
  FastDiv fdiv[kMaxDims];
  int64_t stride[kMaxDims][K] = {};

  __device__ __forceinline__ void get(int64_t i, int64_t (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = contig ? i : 0;
    if (contig) return;
    if (small && narrow)
      get_small<int32_t>(uint32_t(i), off);  // 64-bit multiplies cost several
    else if (small)
      get_small<int64_t>(uint32_t(i), off);  // instructions each
    else {
      int64_t rest = i;
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == nd) break;
        int64_t c = rest;
        if (d + 1 < nd) {
          int64_t q = rest / size[d];
          c = rest - q * size[d];
          rest = q;
        }
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += c * stride[d][k];
      }
    }
  }

  template <class O>
  __device__ __forceinline__ void get_small(uint32_t rest, int64_t (&off)[K]) const {
    O o[K] = {};
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == nd) break;
      uint32_t c = rest;
      if (d + 1 < nd) {
        uint32_t q = fdiv[d].div(rest);
        c = rest - q * fdiv[d].d;
        rest = q;
      }
#pragma unroll
      for (int k = 0; k < K; ++k) o[k] += O(c) * O(stride[d][k]);
    }
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = o[k];
  }
};

// strides[k] points at operand k's element strides, one per dim of `shape` (broadcast operands
// carry stride 0).
template <int K>
OffsetCalc<K> make_offset_calc_raw(const Shape& shape, const std::array<const int64_t*, K>& strides) {
  OffsetCalc<K> oc;
  MINIMA_CHECK(shape.size() <= 64, "CUDA kernels support at most 64 dims, got shape ", shape);
  int64_t sz[64];
  int64_t st[64][K];
  int n = 0;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    int64_t s[K];
    for (int k = 0; k < K; ++k) s[k] = strides[k][d];
    if (n > 0) {  // merge with the inner neighbour when contiguous with it for every operand
      bool merge = true;
      for (int k = 0; k < K; ++k) merge = merge && s[k] == st[n - 1][k] * sz[n - 1];
      if (merge) {
        sz[n - 1] *= shape[d];
        continue;
      }
    }
    sz[n] = shape[d];
    for (int k = 0; k < K; ++k) st[n][k] = s[k];
    ++n;
  }
  MINIMA_CHECK(n <= kMaxDims, "CUDA kernels support at most ", kMaxDims, " non-mergeable dims; got shape ", shape);
  oc.nd = n;
  bool contig = n <= 1;
  if (n == 1)
    for (int k = 0; k < K; ++k) contig = contig && st[0][k] == 1;
  oc.contig = contig;
  oc.small = numel_of(shape) < (int64_t(1) << 31);
  for (int k = 0; k < K; ++k) {  // the farthest element of operand k from its first, either way
    int64_t reach = 0;
    for (int d = 0; d < n; ++d) reach += (sz[d] - 1) * (st[d][k] < 0 ? -st[d][k] : st[d][k]);
    oc.narrow = oc.narrow && reach < (int64_t(1) << 31);
  }
  for (int d = 0; d < n; ++d) {
    oc.size[d] = sz[d];
    if (oc.small) oc.fdiv[d] = FastDiv(uint32_t(sz[d]));
    for (int k = 0; k < K; ++k) oc.stride[d][k] = st[d][k];
  }
  return oc;
}

// ts[k] is operand k viewed with `shape`.
template <int K>
OffsetCalc<K> make_offset_calc(const Shape& shape, const std::array<Tensor, K>& ts) {
  std::array<const int64_t*, K> strides;
  for (int k = 0; k < K; ++k) {
    MINIMA_CHECK(ts[k].shape() == shape, "internal: operand of shape ", ts[k].shape(), " in a loop over ", shape);
    strides[k] = ts[k].strides().data();
  }
  return make_offset_calc_raw<K>(shape, strides);
}

// ---------------------------------------------------------------------------------------------
// Element types on the device
// ---------------------------------------------------------------------------------------------
template <class T>
using Acc = typename acc_type<T>::type;

template <class T, class A>
__device__ __forceinline__ T to_storage(A v) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16(float(v));
  else
    return T(v);
}

// Reads/writes element i of a buffer whose dtype is known only at run time (small parameter
// vectors such as batch norm's weight, which may be f32, f64 or bf16).
__device__ __forceinline__ double load_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return double(static_cast<const float*>(p)[i]);
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return double(float(static_cast<const bf16*>(p)[i]));
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return double(static_cast<const uint8_t*>(p)[i]);
  }
  return 0.0;
}
__device__ __forceinline__ void store_from_double(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::bf16: static_cast<bf16*>(p)[i] = bf16(float(v)); break;
    // Through int64 like the CPU's conversion on x86 (negative values wrap for u8).
    case DType::i64: static_cast<int64_t*>(p)[i] = double_to_int64(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(double_to_int64(v)); break;
  }
}

// Overloads so templated kernels call the float or double version of each function.
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double d_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float d_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double d_abs(double x) { return fabs(x); }
template <class A>
__device__ __forceinline__ bool d_isnan(A x) {
  if constexpr (std::is_floating_point_v<A>)
    return x != x;
  else
    return false;
}
template <class A>
__device__ __forceinline__ A d_inf() {
  if constexpr (std::is_same_v<A, float>)
    return __int_as_float(0x7f800000);
  else
    return __longlong_as_double(0x7ff0000000000000LL);
}

// ---------------------------------------------------------------------------------------------
// Reductions inside a warp / a block (fixed trees: deterministic)
// ---------------------------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}
// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets the
// result. `scratch` holds 32 values; the call ends with the scratch free for reuse.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nw ? scratch[lane] : T(0);
  r = warp_sum(r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Bad-index reporting: a kernel that meets an out-of-range index records its position in a
// per-device slot (the lowest position wins, as the CPU backend reports the first bad index in
// order) and writes a harmless value instead; the host then raises the same error the CPU backend
// raises. The slot holds all ones when nothing was reported. The check synchronizes, except while a
// graph is captured.
// ---------------------------------------------------------------------------------------------
unsigned long long* index_error_slot(int dev);
__device__ __forceinline__ void report_bad_index(unsigned long long* slot, int64_t pos) {
  atomicMin(slot, static_cast<unsigned long long>(pos));
}
// Throws "<op>: index V at position P is out of range for dim D of size B" after a kernel that
// reported into the slot. `what` replaces "index" in the message (e.g. "target").
void check_index_error(const Ctx& ctx, const Tensor& index, int64_t bound, const char* op, int64_t dim);
void check_target_error(const Ctx& ctx, const Tensor& target, int64_t classes);

// ---------------------------------------------------------------------------------------------
// Cross-file entry points
// ---------------------------------------------------------------------------------------------
// memory.cu
void device_copy(const Tensor& dst, const Tensor& src, const Ctx& ctx);  // same device
// elementwise.cu: y[n, c, ...] += bias[c] over a contiguous NCHW tensor.
void add_channel_bias(const Tensor& y, const Tensor& bias, const Ctx& ctx);
// gemm.cu / vendor_cublas.cu: c = alpha * a @ b + beta * c on rank-3 operands whose matrices
// each have a unit stride in one of their two dims (c: in its last dim).
void native_gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta, const Ctx& ctx);
void cublas_gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta, const Ctx& ctx);
// conv.cu / vendor_cudnn.cu: x, w, y (and their gradients) contiguous NCHW; no bias.
void native_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Conv2dParams& p, const Ctx& ctx);
void native_conv_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p,
                                const Ctx& ctx);
void native_conv_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p,
                                 const Ctx& ctx);
void cudnn_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Conv2dParams& p, const Ctx& ctx);
void cudnn_conv_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p,
                               const Ctx& ctx);
void cudnn_conv_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p,
                                const Ctx& ctx);

// cuda_backend.cu: "auto" between a native and a vendor path for the call described by `key`.
// The first time a key is seen both run (timed with events, each writing the real output) and
// the faster is remembered; the return value says whether to run the vendor path this time.
// In deterministic mode or while capturing, returns `rule_vendor` without timing.
bool autotune_use_vendor(const std::string& key, const Ctx& ctx, const std::function<void()>& native,
                         const std::function<void()>& vendor, bool rule_vendor);

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------
class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  MINIMA_BACKEND_KERNEL_OVERRIDES
  void synchronize() override;
};

}  // namespace minima::cuda
