// kernels/cuda/memory.cu: device memory and data movement.
//  * The caching allocator: freed blocks are kept and handed out again for requests of about the
//    same size (best fit, at most 1/8 larger), so a training step with static shapes stops
//    calling cudaMalloc after its first iteration and allocates in the same order every step (what
//    CUDA graph capture needs). Reuse is safe without events because every kernel of a device runs
//    on its one stream, in order. Sizes are rounded up to 512 bytes. When cudaMalloc fails, the
//    cache is returned to the driver and the call retried once.
//    MINIMA_CUDA_ALLOCATOR=direct in the environment disables caching (exact-size cudaMalloc and
//    cudaFree per block), so compute-sanitizer sees every overrun; another value than direct or
//    caching (the default) is warned about.
//  * fill (cudaMemset when every byte of the value is equal) and copy: host<->device transfers,
//    copies between devices, and strided copies on one device with any strides (zero for
//    broadcasts, negative for flips) and any pair of dtypes.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

bool direct_allocation(const char* env, std::string& warning) {
  warning.clear();
  if (env == nullptr || *env == '\0' || std::strcmp(env, "caching") == 0) return false;
  if (std::strcmp(env, "direct") == 0) return true;
  // A misspelt "direct" leaves the cache on, which hides overruns from compute-sanitizer: say so.
  warning = std::string("MINIMA_CUDA_ALLOCATOR=") + env + " is not one of caching, direct; using caching";
  return false;
}

namespace {

std::atomic<bool> g_poison{false};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int dev) : dev_(dev) {
    std::string warning;
    direct_ = direct_allocation(std::getenv("MINIMA_CUDA_ALLOCATOR"), warning);
    static std::atomic<bool> warned{false};  // one allocator per device, one warning per process
    if (!warning.empty() && !warned.exchange(true)) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  }

  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    // Rounding up to 512 bytes would wrap a request near 2^64 around to a few bytes.
    MINIMA_CHECK(nbytes <= kMaxAllocationBytes, "out of device memory allocating ", nbytes, " bytes");
    size_t size = direct_ ? nbytes : (nbytes + 511) / 512 * 512;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!direct_) {
        auto it = free_.lower_bound(size);
        if (it != free_.end() && it->first <= size + size / 8) {
          p = it->second;
          size = it->first;
          cached_ -= size;
          ++reuses_;
          free_.erase(it);
        }
      }
    }
    if (!p) p = device_malloc(size);
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_[p] = {size, nbytes};
      in_use_ += nbytes;
      if (in_use_ > peak_) peak_ = in_use_;
    }
    if (g_poison) {
      Ctx ctx(dev_);
      MINIMA_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, size, ctx.stream));
    }
    return p;
  }

  // Never throws: it runs from Storage destructors, possibly at process exit.
  void deallocate(void* p, size_t) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours; nothing sensible to do in a destructor
    size_t size = it->second.size;
    in_use_ -= it->second.requested;
    live_.erase(it);
    if (direct_) {
      int prev = 0;
      MINIMA_CUDA_CHECK_NOTHROW(cudaGetDevice(&prev));
      MINIMA_CUDA_CHECK_NOTHROW(cudaSetDevice(dev_));
      MINIMA_CUDA_CHECK_NOTHROW(cudaFree(p));
      MINIMA_CUDA_CHECK_NOTHROW(cudaSetDevice(prev));
      reserved_ -= size;
      return;
    }
    free_.emplace(size, p);
    cached_ += size;
  }

  size_t bytes_in_use() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }
  size_t peak_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = in_use_;
  }

  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats s;
    s.in_use = in_use_;
    s.peak = peak_;
    s.reserved = reserved_;
    s.cached = cached_;
    s.device_allocs = mallocs_;
    s.reuses = reuses_;
    return s;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

 private:
  struct Block {
    size_t size, requested;
  };

  void release_cached_locked() {
    if (free_.empty()) return;
    Ctx ctx(dev_);
    MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    for (auto& [size, p] : free_) {
      MINIMA_CUDA_CHECK(cudaFree(p));
      reserved_ -= size;
    }
    free_.clear();
    cached_ = 0;
  }

  void* device_malloc(size_t size) {
    Ctx ctx(dev_);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the failed allocation from the error state before retrying
      std::lock_guard<std::mutex> lock(mu_);
      release_cached_locked();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear it again: the failure is reported by the throw below
      std::lock_guard<std::mutex> lock(mu_);
      throw Error(str("CUDA error at ", __FILE__, ":", __LINE__, ": cudaMalloc of ", size, " bytes on cuda:", dev_,
                      " failed with ", cudaGetErrorName(e), ": ", cudaGetErrorString(e), " (minima holds ", in_use_,
                      " bytes in tensors and ", cached_, " bytes cached)"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ += size;
    ++mallocs_;
    return p;
  }

  int dev_;
  bool direct_ = false;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, Block> live_;
  size_t in_use_ = 0, peak_ = 0, reserved_ = 0, cached_ = 0;
  int64_t mallocs_ = 0, reuses_ = 0;
};

CachingAllocator& allocator_of(int device) {
  static std::mutex mu;
  static auto& allocs = *new std::vector<CachingAllocator*>();  // never freed: Storage may outlive statics
  std::lock_guard<std::mutex> lock(mu);
  int n = cuda_device_count();
  MINIMA_CHECK(device >= 0 && device < n, "cuda:", device, " requested, but ", n, " CUDA device",
               n == 1 ? " is" : "s are", " available");
  if (allocs.empty()) allocs.resize(size_t(n), nullptr);
  if (!allocs[size_t(device)]) allocs[size_t(device)] = new CachingAllocator(device);
  return *allocs[size_t(device)];
}

}  // namespace

Allocator* caching_allocator(int device) { return &allocator_of(device); }
AllocatorStats allocator_stats(int device) { return allocator_of(device).stats(); }
void empty_cache(int device) { allocator_of(device).empty_cache(); }
void set_poison_allocations(bool on) { g_poison = on; }
bool poison_allocations() { return g_poison; }

DeviceBuffer::DeviceBuffer(size_t nbytes, int device) : n_(nbytes), dev_(device) {
  p_ = allocator_of(device).allocate(nbytes);
}
DeviceBuffer::~DeviceBuffer() { release(); }
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_), dev_(o.dev_) {
  o.p_ = nullptr;
  o.n_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    p_ = o.p_;
    n_ = o.n_;
    dev_ = o.dev_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}
void DeviceBuffer::release() {
  if (p_) allocator_of(dev_).deallocate(p_, n_);
  p_ = nullptr;
  n_ = 0;
}

// ---------------------------------------------------------------------------------------------
// fill
// ---------------------------------------------------------------------------------------------
namespace {
template <class U>
struct FillF {
  U* out;
  U value;
  struct In {};
  __device__ In load(const int64_t*) const { return {}; }
  __device__ void store(const int64_t* off, const In&) const { out[off[0]] = value; }
};

template <class U>
void launch_fill(const Ctx& ctx, const Tensor& out, U bits) {
  launch_elementwise<1>(ctx, out.shape(), {out}, FillF<U>{static_cast<U*>(out.data_ptr()), bits});
}
}  // namespace

void CudaBackend::fill(const Tensor& out, double v) {
  if (out.numel() == 0) return;
  Ctx ctx(out);
  // The value in the storage type, converted exactly as the CPU backend converts it.
  unsigned char bytes[8] = {0};
  size_t es = out.element_size();
  switch (out.dtype()) {
    case DType::f32: {
      float f = float(v);
      std::memcpy(bytes, &f, 4);
      break;
    }
    case DType::f64: std::memcpy(bytes, &v, 8); break;
    case DType::bf16: {
      bf16 b = bf16(float(v));
      std::memcpy(bytes, &b.bits, 2);
      break;
    }
    case DType::i64: {
      int64_t i = int64_t(v);
      std::memcpy(bytes, &i, 8);
      break;
    }
    case DType::u8: bytes[0] = uint8_t(int64_t(v)); break;
  }
  bool same = true;
  for (size_t i = 1; i < es; ++i) same = same && bytes[i] == bytes[0];
  if (same && out.is_contiguous()) {
    MINIMA_CUDA_CHECK(cudaMemsetAsync(out.data_ptr(), bytes[0], size_t(out.numel()) * es, ctx.stream));
    return;
  }
  switch (es) {
    case 1: launch_fill<uint8_t>(ctx, out, bytes[0]); break;
    case 2: {
      uint16_t u;
      std::memcpy(&u, bytes, 2);
      launch_fill<uint16_t>(ctx, out, u);
      break;
    }
    case 4: {
      uint32_t u;
      std::memcpy(&u, bytes, 4);
      launch_fill<uint32_t>(ctx, out, u);
      break;
    }
    default: {
      uint64_t u;
      std::memcpy(&u, bytes, 8);
      launch_fill<uint64_t>(ctx, out, u);
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------------------------
namespace {
// Same dtype, any strides: move the bits.
template <class U>
struct CopyRawF {
  U* dst;
  const U* src;
  using In = U;
  __device__ In load(const int64_t* off) const { return src[off[1]]; }
  __device__ void store(const int64_t* off, const In& v) const { dst[off[0]] = v; }
};

// Different dtypes: through double, like the CPU backend (exact for every pair except i64 values
// beyond 2^53). The dtype switches are uniform across the grid, so they cost little.
struct CopyConvertF {
  void* dst;
  const void* src;
  DType dt, st;
  using In = double;
  __device__ In load(const int64_t* off) const { return load_as_double(src, st, off[1]); }
  __device__ void store(const int64_t* off, const In& v) const { store_from_double(dst, dt, off[0], v); }
};

// Between two floating dtypes (the casts of mixed precision): the same conversion as
// CopyConvertF (S -> double -> D, which is exact up to D's one rounding, bf16's through float),
// with both types known at compile time.
template <class D, class S>
__device__ __forceinline__ D cast_like_cpu(S s) {
  const double v = double(Acc<S>(s));
  if constexpr (std::is_same_v<D, bf16>)
    return bf16(float(v));
  else
    return D(v);
}

template <class D, class S>
struct CopyCastF {
  D* dst;
  const S* src;
  using In = S;
  __device__ In load(const int64_t* off) const { return src[off[1]]; }
  __device__ void store(const int64_t* off, const In& v) const { dst[off[0]] = cast_like_cpu<D>(v); }
};

// Dense and 16-byte aligned: eight elements per thread and step, as whole 16-byte loads and stores
// (8 x 2, 4 or 8 bytes), the last n % 8 elements one per thread.
template <class T>
struct alignas(16) Octet {
  T v[8];
};
template <class D, class S>
__global__ void __launch_bounds__(kThreads) cast_dense_kernel(int64_t n, D* dst, const S* src) {
  MINIMA_GRID_STRIDE(p, n / 8) {
    const Octet<S> in = reinterpret_cast<const Octet<S>*>(src)[p];
    Octet<D> out;
#pragma unroll
    for (int e = 0; e < 8; ++e) out.v[e] = cast_like_cpu<D>(in.v[e]);
    reinterpret_cast<Octet<D>*>(dst)[p] = out;
  }
  const int64_t i = n / 8 * 8 + int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = cast_like_cpu<D>(src[i]);
}

void launch_cast(const Ctx& ctx, const Tensor& dst, const Tensor& src) {
  MINIMA_DISPATCH_FLOAT(dst.dtype(), "copy", [&] {
    using D = scalar_t;
    MINIMA_DISPATCH_FLOAT(src.dtype(), "copy", [&] {
      using S = scalar_t;
      D* d = static_cast<D*>(dst.data_ptr());
      const S* s = static_cast<const S*>(src.data_ptr());
      if (dst.is_contiguous() && src.is_contiguous() && aligned16(dst) && aligned16(src)) {
        const int64_t n = dst.numel();
        MINIMA_LAUNCH((cast_dense_kernel<D, S>), dim3(grid_1d(std::max<int64_t>(n / 8, 1), ctx.dev)), dim3(kThreads), 0,
                      ctx.stream, n, d, s);
      } else {
        launch_elementwise<2>(ctx, dst.shape(), {dst, src}, CopyCastF<D, S>{d, s});
      }
    });
  });
}

template <class U>
void launch_copy_raw(const Ctx& ctx, const Tensor& dst, const Tensor& src) {
  launch_elementwise<2>(ctx, dst.shape(), {dst, src},
                        CopyRawF<U>{static_cast<U*>(dst.data_ptr()), static_cast<const U*>(src.data_ptr())});
}
}  // namespace

void device_copy(const Tensor& dst, const Tensor& src, const Ctx& ctx) {
  MINIMA_CHECK(dst.shape() == src.shape(), "copy: shapes ", dst.shape(), " and ", src.shape(), " differ");
  if (dst.numel() == 0) return;
  if (dst.dtype() != src.dtype()) {
    if (is_floating(dst.dtype()) && is_floating(src.dtype())) {
      launch_cast(ctx, dst, src);
      return;
    }
    launch_elementwise<2>(ctx, dst.shape(), {dst, src},
                          CopyConvertF{dst.data_ptr(), src.data_ptr(), dst.dtype(), src.dtype()});
    return;
  }
  if (dst.is_contiguous() && src.is_contiguous()) {
    if (dst.data_ptr() == src.data_ptr()) return;
    MINIMA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), size_t(dst.numel()) * dst.element_size(),
                                      cudaMemcpyDeviceToDevice, ctx.stream));
    return;
  }
  switch (dst.element_size()) {
    case 1: launch_copy_raw<uint8_t>(ctx, dst, src); break;
    case 2: launch_copy_raw<uint16_t>(ctx, dst, src); break;
    case 4: launch_copy_raw<uint32_t>(ctx, dst, src); break;
    default: launch_copy_raw<uint64_t>(ctx, dst, src); break;
  }
}

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  MINIMA_CHECK(dst.defined() && src.defined(), "copy: undefined tensor");
  MINIMA_CHECK(dst.shape() == src.shape(), "copy: shapes ", dst.shape(), " and ", src.shape(), " differ");
  if (dst.numel() == 0) return;
  bool dc = dst.device().is_cuda(), sc = src.device().is_cuda();
  if (dc && sc && dst.device() == src.device()) {
    Ctx ctx(dst);
    device_copy(dst, src, ctx);
    return;
  }
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    size_t bytes = size_t(dst.numel()) * dst.element_size();
    if (dc && !sc) {  // host -> device; synchronous, so the host buffer may be reused at once
      Ctx ctx(dst);
      MINIMA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, cudaMemcpyHostToDevice, ctx.stream));
      MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    } else if (!dc && sc) {  // device -> host, after everything queued before it
      Ctx ctx(src);
      MINIMA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, cudaMemcpyDeviceToHost, ctx.stream));
      MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    } else {  // between two devices
      MINIMA_CHECK(dc && sc, "CUDA copy: neither tensor is on a CUDA device");
      cuda::synchronize(src.device().index);
      Ctx ctx(dst);
      MINIMA_CUDA_CHECK(cudaMemcpyPeerAsync(dst.data_ptr(), dst.device().index, src.data_ptr(), src.device().index,
                                            bytes, ctx.stream));
      MINIMA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    }
    return;
  }
  // General transfer: convert and compact on the source side, one contiguous transfer, then a
  // strided copy on the destination side.
  NoGradGuard ng;
  Tensor s = src;
  if (s.dtype() != dst.dtype() || !s.is_contiguous()) {
    Tensor t = empty(src.shape(), TensorOptions(dst.dtype(), src.device()));
    backend_for(src.device()).copy(t, src);
    s = t;
  }
  Tensor d = dst.is_contiguous() ? dst : empty(dst.shape(), TensorOptions(dst.dtype(), dst.device()));
  copy(d, s);
  if (d.impl() != dst.impl()) backend_for(dst.device()).copy(dst, d);
}

}  // namespace minima::cuda
