// core/backend.cpp: picks the kernel set for a device. The CUDA entry points come from
// kernels/cuda when minima is built with CUDA; otherwise they say so clearly.
#include "core/backend.h"

#include "kernels/cpu/cpu_backend.h"

namespace minima {

Backend& cpu_backend() {
  static cpu::CpuBackend b;
  return b;
}

Backend& backend_for(Device d) { return d.is_cpu() ? cpu_backend() : cuda_backend(); }

namespace {
thread_local bool g_targets_trusted = false;
}
TrustedTargetsGuard::TrustedTargetsGuard() : prev_(g_targets_trusted) { g_targets_trusted = true; }
TrustedTargetsGuard::~TrustedTargetsGuard() { g_targets_trusted = prev_; }
bool targets_trusted() { return g_targets_trusted; }

#ifndef MINIMA_HAS_CUDA
Backend& cuda_backend() {
  throw Error("this minima was built without CUDA (configure with -DMINIMA_CUDA=ON and an nvcc on PATH)");
}
Allocator* cuda_allocator(int) { cuda_backend(); return nullptr; }
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
#endif

}  // namespace minima
