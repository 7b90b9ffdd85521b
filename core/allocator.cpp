// core/allocator.cpp: the CPU allocator (64-byte aligned, with byte counters) and Storage.
#include "core/allocator.h"

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer aborts on an allocation it cannot serve (e.g. a --in of 100000x100000 asks for
// 20 TB); a release build gets a null pointer there, and reports "out of host memory" through the
// check below. Under the sanitizer too, so that a sanitizer build tests the same error paths.
// (ASAN_OPTIONS in the environment still overrides this.)
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

namespace minima {

namespace {
// Blocks of 64 KiB and more are cached after free and handed out again for requests of the same
// size class (sizes rounded up to 1/8 of their power of two), because a training step frees and
// re-allocates the same activation sizes every iteration and fresh pages from the OS cost a page
// fault each. The cache holds at most kMaxCached bytes; smaller blocks go straight to malloc.
class CpuAllocator final : public Allocator {
 public:
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer nothing is cached: every block goes back to malloc, so a use after
  // free or an overflow into a block's rounding slack is still reported.
  static constexpr size_t kCacheFrom = ~size_t(0);
#else
  static constexpr size_t kCacheFrom = size_t(64) << 10;
#endif
  static constexpr size_t kMaxCached = size_t(2) << 30;

  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    // Rounding up to a size class would wrap a request near 2^64 around to a few bytes.
    MINIMA_CHECK(nbytes <= kMaxAllocationBytes, "out of host memory allocating ", nbytes, " bytes");
    size_t cls = size_class(nbytes);
    void* p = nullptr;
    if (cls >= kCacheFrom) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(cls);
      if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
        cached_ -= cls;
      }
    }
    if (!p) {
      p = std::aligned_alloc(64, cls);
      MINIMA_CHECK(p != nullptr, "out of host memory allocating ", nbytes, " bytes");
    }
    size_t now = in_use_ += nbytes;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    in_use_ -= nbytes;
    size_t cls = size_class(nbytes);
    if (cls >= kCacheFrom) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + cls <= kMaxCached) {
        free_.emplace(cls, p);
        cached_ += cls;
        return;
      }
    }
    std::free(p);
  }
  size_t bytes_in_use() const override { return in_use_; }
  size_t peak_bytes() const override { return peak_; }
  void reset_peak() override { peak_ = in_use_.load(); }
  ~CpuAllocator() override {
    for (auto& kv : free_) std::free(kv.second);
  }

 private:
  static size_t size_class(size_t n) {
    size_t r = (n + 63) / 64 * 64;
    if (r < kCacheFrom) return r;
    size_t top = size_t(1) << (63 - __builtin_clzll(r));  // highest power of two <= r
    size_t step = top / 8;
    return (r + step - 1) / step * step;
  }
  std::atomic<size_t> in_use_{0}, peak_{0};
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
};
}  // namespace

Allocator* cpu_allocator() {
  static CpuAllocator a;
  return &a;
}
Allocator* cuda_allocator(int device);  // kernels/cuda (or a stub that throws)

Allocator* allocator_for(Device d) { return d.is_cpu() ? cpu_allocator() : cuda_allocator(d.index); }

Storage::Storage(size_t n, Device d) : nbytes(n), device(d), alloc(allocator_for(d)) { data = alloc->allocate(n); }

Storage::~Storage() {
  if (alloc) alloc->deallocate(data, nbytes);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    int i = -1;
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data() + 5, end, i);
    if (ec == std::errc() && ptr == end && i >= 0) return cuda(i);
  }
  throw Error(minima::str("unknown device '", s, "' (expected cpu, cuda or cuda:N)"));
}

}  // namespace minima
