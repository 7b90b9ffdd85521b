// core/allocator.cpp: the CPU allocator (64-byte aligned, with byte counters) and Storage.
#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/error.h"

namespace minima {

namespace {
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    MINIMA_CHECK(p != nullptr, "out of host memory allocating ", nbytes, " bytes");
    size_t now = in_use_ += nbytes;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    std::free(p);
    in_use_ -= nbytes;
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

Storage::Storage(size_t n, Device d) : nbytes(n), device(d), alloc(allocator_for(d)) {
  data = alloc->allocate(n);
}

Storage::~Storage() {
  if (alloc) alloc->deallocate(data, nbytes);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t pos = 0;
      int i = std::stoi(s.substr(5), &pos);
      if (pos == s.size() - 5 && i >= 0) return cuda(i);
    } catch (...) {
    }
  }
  throw Error(minima::str("unknown device '", s, "' (expected cpu, cuda or cuda:N)"));
}

}  // namespace minima
