// data/loader_cuda.cu: the GPU side of the input pipeline: one kernel assembles a whole batch from
// the device-resident dataset (gather by this epoch's order, crop, flip, normalize, labels).
// One block per sample: the block computes the sample's augmentation once (data/augment.h, the
// same functions as the CPU loop), stages the normalization table in shared memory and, for
// per-image standardization, reduces exact integer sums, so results equal the CPU path bit for bit.
// Kernels run on the CUDA backend's stream of the device, so they are ordered with the training
// step's kernels; the synchronous copies (dataset upload, the epoch's order) use the legacy
// default stream, which that blocking stream also synchronizes with.
#include <cuda_runtime.h>

#include "core/error.h"
#include "data/loader.h"
#include "kernels/cuda/cuda_common.cuh"

#define MINIMA_DATA_CUDA_CHECK(expr)                                                                   \
  do {                                                                                                 \
    cudaError_t err_ = (expr);                                                                         \
    if (err_ != cudaSuccess)                                                                           \
      throw ::minima::Error(                                                                           \
          ::minima::str(__FILE__, ":", __LINE__, ": ", #expr, " failed: ", cudaGetErrorString(err_))); \
  } while (0)

namespace minima::data::cuda {

namespace {

constexpr int kThreads = 256;

template <bool U8, bool PER_IMAGE>
__global__ void batch_kernel(const void* images, const int64_t* labels, const int64_t* idx, int64_t C, int64_t H,
                             int64_t W, int32_t pad, bool crop, bool flip, uint64_t key, const float* table,
                             int64_t table_size, float* out, int64_t* labels_out) {
  extern __shared__ float s_table[];
  __shared__ unsigned long long s_sum1, s_sum2;
  const int64_t b = blockIdx.x, i = idx[b], n = C * H * W;
  for (int64_t t = threadIdx.x; t < table_size; t += blockDim.x) s_table[t] = table[t];
  if (threadIdx.x == 0) {
    labels_out[b] = labels[i];
    s_sum1 = 0;
    s_sum2 = 0;
  }
  const SampleAug a = sample_augment(key, uint64_t(i), pad, crop, flip);
  __syncthreads();
  float* o = out + b * n;
  if (U8) {
    const uint8_t* s = static_cast<const uint8_t*>(images) + i * n;
    if (PER_IMAGE) {
      unsigned long long l1 = 0, l2 = 0;
      for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
        const int64_t c = e / (H * W), y = (e / W) % H, x = e % W;
        const int64_t off = source_offset(c, y, x, H, W, a);
        const uint32_t v = off < 0 ? 0u : s[off];
        l1 += v;
        l2 += v * v;
      }
      atomicAdd(&s_sum1, l1);  // integer sums: exact whatever the order
      atomicAdd(&s_sum2, l2);
      __syncthreads();
      const uint64_t s1 = s_sum1, s2 = s_sum2;
      const double inv = per_image_inv(s1, s2, n);
      for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
        const int64_t c = e / (H * W), y = (e / W) % H, x = e % W;
        const int64_t off = source_offset(c, y, x, H, W, a);
        o[e] = per_image_value(off < 0 ? 0u : s[off], s1, n, inv);
      }
    } else {
      for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
        const int64_t c = e / (H * W), y = (e / W) % H, x = e % W;
        const int64_t off = source_offset(c, y, x, H, W, a);
        o[e] = s_table[c * 256 + (off < 0 ? 0 : s[off])];
      }
    }
  } else {
    const float* s = static_cast<const float*>(images) + i * n;
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
      const int64_t c = e / (H * W), y = (e / W) % H, x = e % W;
      const int64_t off = source_offset(c, y, x, H, W, a);
      const float v = off < 0 ? 0.0f : s[off];
      o[e] = __fmul_rn(__fsub_rn(v, s_table[2 * c]), s_table[2 * c + 1]);
    }
  }
}

}  // namespace

size_t free_memory(int device) {
  int prev = 0;
  MINIMA_DATA_CUDA_CHECK(cudaGetDevice(&prev));
  MINIMA_DATA_CUDA_CHECK(cudaSetDevice(device));
  size_t free_b = 0, total_b = 0;
  cudaError_t err = cudaMemGetInfo(&free_b, &total_b);
  cudaSetDevice(prev);
  MINIMA_DATA_CUDA_CHECK(err);
  return free_b;
}

void copy_host_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) MINIMA_DATA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_device_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) MINIMA_DATA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void synchronize() { MINIMA_DATA_CUDA_CHECK(cudaDeviceSynchronize()); }

void make_batch(int device, const void* images, bool images_u8, const int64_t* labels, const int64_t* idx, int64_t B,
                int64_t C, int64_t H, int64_t W, const Augment& aug, uint64_t aug_key, Normalize norm,
                const float* table, int64_t table_size, float* out, int64_t* labels_out) {
  if (B == 0) return;
  ::minima::cuda::Ctx ctx(device);  // selects the device and its stream
  MINIMA_CHECK(images_u8 || norm != Normalize::per_image, "per-image standardization needs uint8 images");
  // The lookup table (uint8: 256 values per channel; float: mean and 1/std per channel) goes to
  // shared memory; per-image standardization has none. Past the default 48 KiB (uint8 images
  // with more than 48 channels) the kernel opts in to the device's larger limit.
  const bool per_image = images_u8 && norm == Normalize::per_image;
  const int64_t ts = per_image ? 0 : table_size;
  const size_t shmem = size_t(ts) * sizeof(float);
  auto kernel = per_image   ? batch_kernel<true, true>
                : images_u8 ? batch_kernel<true, false>
                            : batch_kernel<false, false>;
  if (shmem > 48 * 1024) {
    int limit = 0;
    MINIMA_DATA_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    MINIMA_CHECK(shmem <= size_t(limit), "GPU input pipeline: ", C, " channels need a ", shmem,
                 "-byte lookup table, more than the ", limit, " bytes of shared memory a block may use");
    MINIMA_DATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shmem)));
  }
  const int32_t pad = int32_t(aug.pad);
  kernel<<<dim3(unsigned(B)), dim3(unsigned(kThreads)), shmem, ctx.stream>>>(images, labels, idx, C, H, W, pad,
                                                                             aug.crop, aug.flip, aug_key, table, ts,
                                                                             out, labels_out);
  MINIMA_DATA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace minima::data::cuda
