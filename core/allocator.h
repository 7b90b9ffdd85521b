// core/allocator.h: raw memory for tensor storage. The CPU allocator hands out 64-byte aligned
// blocks; the CUDA backend provides a caching allocator behind the same interface.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.h"

namespace minima {

// No allocator serves more than this (4 EiB, far beyond any machine): larger requests fail as out
// of memory before any size arithmetic could wrap around.
constexpr size_t kMaxAllocationBytes = size_t(1) << 62;

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  // Bytes currently handed out and the high-water mark since the last reset.
  virtual size_t bytes_in_use() const = 0;
  virtual size_t peak_bytes() const = 0;
  virtual void reset_peak() = 0;
};

Allocator* allocator_for(Device d);

// A block of memory on one device, shared by every view of it.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* alloc = nullptr;        // null: memory owned elsewhere (from_blob)
  std::shared_ptr<void> keep_alive;  // for from_blob: whatever owns the memory
  // Counts in-place writes to the memory (Tensor::mark_modified): autograd records it for every
  // tensor a backward closure saves and refuses to run that closure once it has changed.
  uint64_t version = 0;
  Storage(size_t n, Device d);
  Storage(void* p, size_t n, Device d, std::shared_ptr<void> owner)
      : data(p), nbytes(n), device(d), keep_alive(std::move(owner)) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

}  // namespace minima
