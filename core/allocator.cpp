// core/allocator.cpp: the CPU allocator (64-byte aligned, with byte counters) and Storage.
#include "core/allocator.h"

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/sysinfo.h>
#endif

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
// Freed memory stays in the process and serves the next request of any size, because pages fresh
// from the OS cost a page fault each (about 1.7 us per 4 KiB page, the kernel zeroing it). A
// training step frees and re-allocates its activations every iteration, and an evaluation at
// batch 1000 frees blocks of hundreds of MB whose sizes change from layer to layer (DenseNet's
// concatenations grow by 12 channels a layer).
//
// glibc's malloc gives blocks of 32 MB and more (its largest mmap threshold) their own mapping and
// returns it to the OS on free, so every such block paid for its pages again. The allocator
// therefore tells malloc to serve every block from its heap, where freed blocks coalesce and are
// split for later requests, and to trim the heap's free top only once it exceeds 2 GB. (Before,
// it kept freed blocks of 64 KiB and more in a cache by size class, up to 2 GB: a block served only
// its own size again, and DenseNet40's evaluation at batch 1000, whose sizes outran the cache, spent
// 33 s of 37 in the kernel, on 19 million page faults.) A user's own malloc settings
// (MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES in the environment) are left alone.
void keep_freed_memory() {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  if (std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("GLIBC_TUNABLES")) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
#endif
}

// The machine's memory and swap in bytes (or the most a size_t holds where unknown). A request
// beyond it can never be served, so it is refused before malloc sees it: glibc answers a request
// that fails in its main arena by moving the calling thread to another arena for good, and that
// arena's heaps (64 MB at most) give every larger block a mapping of its own again, returned to
// the OS on free, so each later large tensor of the thread would fault in fresh pages (one
// refused 8 TB request in a test process made a 192 MB tensor fault in all its 49,153 pages).
size_t machine_bytes() {
  static const size_t bytes = [] {
#if defined(__linux__)
    struct sysinfo si {};
    if (sysinfo(&si) == 0) return size_t(si.totalram + si.totalswap) * size_t(si.mem_unit);
#endif
    return std::numeric_limits<size_t>::max();
  }();
  return bytes;
}

class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() { keep_freed_memory(); }
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    // Rounding up to whole lines would wrap a request near 2^64 around to a few bytes.
    MINIMA_CHECK(nbytes <= kMaxAllocationBytes && nbytes <= machine_bytes(), "out of host memory allocating ", nbytes,
                 " bytes");
    void* p = std::aligned_alloc(64, (nbytes + 63) / 64 * 64);
    MINIMA_CHECK(p != nullptr, "out of host memory allocating ", nbytes, " bytes");
    size_t now = in_use_ += nbytes;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    in_use_ -= nbytes;
    std::free(p);
  }
  size_t bytes_in_use() const override { return in_use_; }
  size_t peak_bytes() const override { return peak_; }
  void reset_peak() override { peak_ = in_use_.load(); }

 private:
  std::atomic<size_t> in_use_{0}, peak_{0};
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
