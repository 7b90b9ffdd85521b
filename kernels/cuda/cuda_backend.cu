// kernels/cuda/cuda_backend.cu: placeholder until the CUDA backend lands: device discovery and a
// backend that refuses every op with a clear message.
#include <cuda_runtime.h>

#include "core/backend.h"

namespace minima {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}
bool cuda_available() { return cuda_device_count() > 0; }
Backend& cuda_backend() { throw Error("the CUDA backend is not implemented yet"); }
Allocator* cuda_allocator(int) { throw Error("the CUDA backend is not implemented yet"); }

}  // namespace minima
