// kernels/cuda/gemm.cu: batched matrix products c[z] = alpha * a[z] @ b[z] + beta * c[z] on
// rank-3 operands with any strides, and the backend's gemm entry that chooses between these
// native kernels and cuBLAS (vendor_cublas.cu) by the gemm setting of cuda_config.h.
// Native kernels, by dtype:
//  * float32: the SIMT kernel of igemm.cuh (128 x 128 tiles, 8 x 8 per thread, double-buffered
//    shared memory), full fp32; or, when TF32 is allowed, the tensor-core kernel below with wmma
//    m16n16k8 TF32 fragments and fp32 accumulation;
//  * bfloat16: the tensor-core kernel with wmma m16n16k16 bf16 fragments, fp32 accumulation, one
//    rounding to bf16 on the way out (as the CPU reference rounds);
//  * float64: a plain 16 x 16 shared-memory tiled kernel.
// Every kernel addresses its operands through (batch, row, col) strides, so transposed views and
// broadcast batches need no copies; with beta == 0 the output is never read (it may hold NaN).
#include <mma.h>

#include <cstdlib>
#include <limits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/igemm.cuh"

namespace minima::cuda {

namespace {

// ---- the SIMT path: loaders over strided matrices ----
// Element (z, r, k) of the operand at p[z * bs + r * rs + k * ks]. KC: ks == 1. O: the offset type,
// int when every offset of the operand fits (32-bit multiplies and a 4-byte row state: the kernel
// stays inside its 128 registers without spilling), int64_t otherwise.
template <class T, bool KC, class O>
struct MatLoader {
  static constexpr bool kContig = KC;
  const T* p;
  int64_t bs;
  O rs, ks;
  static constexpr O kOutside = std::numeric_limits<O>::min();  // no offset reaches it
  struct Row {
    O off;  // of element (z, r, 0); kOutside outside the matrix
  };
  __device__ __forceinline__ Row row(int z, int r, bool valid) const {
    return {valid ? O(z * bs) + O(r) * rs : kOutside};
  }
  __device__ __forceinline__ float load(const Row& row, int k) const {
    if (row.off == kOutside) return 0.f;
    return float(KC ? p[row.off + k] : p[row.off + O(k) * ks]);
  }
};

// Whether every offset z * bs + r * rs + k * ks of an operand (strides of either sign) fits in int.
bool fits_int(int64_t batch, int64_t bs, int64_t rows, int64_t rs, int64_t K, int64_t ks) {
  return (batch - 1) * std::abs(bs) + (rows - 1) * std::abs(rs) + (K - 1) * std::abs(ks) < (int64_t(1) << 31);
}

template <class TC>
struct GemmEpilogue {
  TC* c;
  int64_t bs, rs, cs;
  float alpha, beta;
  __device__ __forceinline__ void operator()(int z, int, int m, int n, float v) const {
    TC* p = c + z * bs + int64_t(m) * rs + int64_t(n) * cs;
    float r = alpha * v;
    if (beta != 0.f) r += beta * float(*p);
    *p = to_storage<TC>(r);
  }
};

// One batch chunk (at most 65535 matrices) of the operands, with pointers already offset.
struct Operands {
  const void* a;
  int64_t abs, ars, acs;
  const void* b;
  int64_t bbs, brs, bcs;
  void* c;
  int64_t cbs, crs, ccs;
  int batch, M, N, K;
};

template <bool AK, bool BK, class O>
void simt_gemm(const Ctx& ctx, const Operands& o, float alpha, float beta) {
  MatLoader<float, AK, O> la{static_cast<const float*>(o.a), o.abs, O(o.ars), O(o.acs)};
  // B as a loader over its columns: row n, k -> b[k * brs + n * bcs].
  MatLoader<float, BK, O> lb{static_cast<const float*>(o.b), o.bbs, O(o.bcs), O(o.brs)};
  GemmEpilogue<float> ep{static_cast<float*>(o.c), o.cbs, o.crs, o.ccs, alpha, beta};
  run_igemm(ctx, o.M, o.N, o.K, o.K, o.batch, 1, la, lb, ep);
}

// ---- the tensor-core path (wmma) ----
template <class T>
struct Wmma;
template <>
struct Wmma<float> {
  using Frag = nvcuda::wmma::precision::tf32;
  using S = float;  // shared-memory element
  static constexpr int WK = 8, PAD = 4;
};
template <>
struct Wmma<bf16> {
  using Frag = __nv_bfloat16;
  using S = __nv_bfloat16;
  static constexpr int WK = 16, PAD = 8;
};

template <class S, class T>
__device__ __forceinline__ void put_smem(S* s, int i, T v) {
  if constexpr (std::is_same_v<T, float>)
    s[i] = v;
  else
    reinterpret_cast<uint16_t*>(s)[i] = v.bits;
}
template <class S>
__device__ __forceinline__ void put_zero(S* s, int i) {
  if constexpr (std::is_same_v<S, float>)
    s[i] = 0.f;
  else
    reinterpret_cast<uint16_t*>(s)[i] = 0;
}

// 128 x 128 tile per block of 8 warps (4 along M x 2 along N, 32 x 64 each = 2 x 4 fragments),
// K in steps of 32 through shared memory (row-major A [128][32+pad], B [32][128+pad]).
template <class T>
__global__ void __launch_bounds__(256) wmma_gemm_kernel(Operands o, float alpha, float beta) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  using W = Wmma<T>;
  using S = typename W::S;
  constexpr int BM = 128, BN = 128, BK = 32, LDA = BK + W::PAD, LDB = BN + W::PAD, WK = W::WK;
  __shared__ __align__(128) S As[BM * LDA];
  __shared__ __align__(128) S Bs[BK * LDB];
  static_assert(sizeof(As) >= 8 * 256 * sizeof(float), "the epilogue reuses As as per-warp scratch");

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp % 4, wn = warp / 4;
  const int z = blockIdx.z, m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const T* A = static_cast<const T*>(o.a) + z * o.abs;
  const T* B = static_cast<const T*>(o.b) + z * o.bbs;
  const bool a_kc = o.acs == 1;  // read A along k (else along m)
  const bool b_nc = o.bcs == 1;  // read B along n (else along k)

  wmma::fragment<wmma::accumulator, 16, 16, WK, float> acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int k0 = 0; k0 < o.K; k0 += BK) {
    for (int e = tid; e < BM * BK; e += 256) {
      int r = a_kc ? e / BK : e % BM, k = a_kc ? e % BK : e / BM;
      int m = m0 + r, kg = k0 + k;
      if (m < o.M && kg < o.K)
        put_smem(As, r * LDA + k, A[int64_t(m) * o.ars + int64_t(kg) * o.acs]);
      else
        put_zero(As, r * LDA + k);
    }
    for (int e = tid; e < BK * BN; e += 256) {
      int k = b_nc ? e / BN : e % BK, n = b_nc ? e % BN : e / BK;
      int kg = k0 + k, ng = n0 + n;
      if (kg < o.K && ng < o.N)
        put_smem(Bs, k * LDB + n, B[int64_t(kg) * o.brs + int64_t(ng) * o.bcs]);
      else
        put_zero(Bs, k * LDB + n);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += WK) {
      wmma::fragment<wmma::matrix_a, 16, 16, WK, typename W::Frag, wmma::row_major> af[2];
      wmma::fragment<wmma::matrix_b, 16, 16, WK, typename W::Frag, wmma::row_major> bfr[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(af[i], As + (wm * 32 + i * 16) * LDA + kk, LDA);
        if constexpr (std::is_same_v<T, float>)
          for (int t = 0; t < af[i].num_elements; ++t) af[i].x[t] = wmma::__float_to_tf32(af[i].x[t]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wmma::load_matrix_sync(bfr[j], Bs + kk * LDB + wn * 64 + j * 16, LDB);
        if constexpr (std::is_same_v<T, float>)
          for (int t = 0; t < bfr[j].num_elements; ++t) bfr[j].x[t] = wmma::__float_to_tf32(bfr[j].x[t]);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) wmma::mma_sync(acc[i][j], af[i], bfr[j], acc[i][j]);
    }
    __syncthreads();
  }

  // Epilogue: each warp stages one 16 x 16 fragment at a time in its own piece of As.
  float* scratch = reinterpret_cast<float*>(As) + warp * 256;
  T* C = static_cast<T*>(o.c) + z * o.cbs;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        int m = m0 + wm * 32 + i * 16 + e / 16, n = n0 + wn * 64 + j * 16 + e % 16;
        if (m < o.M && n < o.N) {
          T* p = C + int64_t(m) * o.crs + int64_t(n) * o.ccs;
          float v = alpha * scratch[e];
          if (beta != 0.f) v += beta * float(*p);
          *p = to_storage<T>(v);
        }
      }
      __syncwarp();
    }
#else
  __trap();  // tensor-core GEMM needs sm_80 or newer
#endif
}

// ---- float64: a plain tiled kernel ----
__global__ void gemm_f64_kernel(Operands o, double alpha, double beta) {
  __shared__ double As[16][17], Bs[16][17];
  const int tx = threadIdx.x, ty = threadIdx.y, z = blockIdx.z;
  const int m = blockIdx.y * 16 + ty, n = blockIdx.x * 16 + tx;
  const double* A = static_cast<const double*>(o.a) + z * o.abs;
  const double* B = static_cast<const double*>(o.b) + z * o.bbs;
  double acc = 0;
  for (int k0 = 0; k0 < o.K; k0 += 16) {
    As[ty][tx] = (m < o.M && k0 + tx < o.K) ? A[int64_t(m) * o.ars + int64_t(k0 + tx) * o.acs] : 0.0;
    Bs[ty][tx] = (k0 + ty < o.K && n < o.N) ? B[int64_t(k0 + ty) * o.brs + int64_t(n) * o.bcs] : 0.0;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) acc += As[ty][kk] * Bs[kk][tx];
    __syncthreads();
  }
  if (m < o.M && n < o.N) {
    double* p = static_cast<double*>(o.c) + z * o.cbs + int64_t(m) * o.crs + int64_t(n) * o.ccs;
    *p = beta != 0.0 ? alpha * acc + beta * *p : alpha * acc;
  }
}

}  // namespace

// Why the native kernels cannot run c = a @ b ("" when they can): 32-bit dims, and at most 65535
// row tiles in one launch (16 rows per tile for float64, 128 otherwise). The one definition of
// their limits, for native_gemm's own check and for auto, which sends such shapes to cuBLAS.
static std::string native_gemm_limit(const Tensor& c, const Tensor& a) {
  const int64_t M = c.size(1), N = c.size(2), K = a.size(2);
  if (M >= (int64_t(1) << 31) || N >= (int64_t(1) << 31) || K >= (int64_t(1) << 31))
    return str("gemm: dims beyond 2^31 are not supported, got ", M, "x", N, "x", K);
  const int64_t tile = c.dtype() == DType::f64 ? 16 : 128;
  if ((M + tile - 1) / tile > 65535) return str("gemm: M = ", M, " is too large for one launch of the native kernel");
  return "";
}

void native_gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta, const Ctx& ctx) {
  const int64_t batch = c.size(0), M = c.size(1), N = c.size(2), K = a.size(2);
  const std::string limit = native_gemm_limit(c, a);
  MINIMA_CHECK(limit.empty(), limit);
  const DType t = c.dtype();
  const size_t es = c.element_size();
  for (int64_t z0 = 0; z0 < batch; z0 += 65535) {
    Operands o;
    o.batch = int(std::min<int64_t>(65535, batch - z0));
    o.M = int(M);
    o.N = int(N);
    o.K = int(K);
    o.a = static_cast<const char*>(a.data_ptr()) + z0 * a.stride(0) * int64_t(es);
    o.abs = a.stride(0), o.ars = a.stride(1), o.acs = a.stride(2);
    o.b = static_cast<const char*>(b.data_ptr()) + z0 * b.stride(0) * int64_t(es);
    o.bbs = b.stride(0), o.brs = b.stride(1), o.bcs = b.stride(2);
    o.c = static_cast<char*>(c.data_ptr()) + z0 * c.stride(0) * int64_t(es);
    o.cbs = c.stride(0), o.crs = c.stride(1), o.ccs = c.stride(2);
    if (t == DType::f64) {
      dim3 grid(unsigned((N + 15) / 16), unsigned((M + 15) / 16), unsigned(o.batch));
      MINIMA_LAUNCH(gemm_f64_kernel, grid, dim3(16, 16), 0, ctx.stream, o, alpha, beta);
    } else if (t == DType::bf16 || (t == DType::f32 && allow_tf32())) {
      dim3 grid(unsigned((N + 127) / 128), unsigned((M + 127) / 128), unsigned(o.batch));
      if (t == DType::bf16)
        MINIMA_LAUNCH(wmma_gemm_kernel<bf16>, grid, dim3(256), 0, ctx.stream, o, float(alpha), float(beta));
      else
        MINIMA_LAUNCH(wmma_gemm_kernel<float>, grid, dim3(256), 0, ctx.stream, o, float(alpha), float(beta));
    } else {
      MINIMA_CHECK(t == DType::f32, "gemm: unsupported dtype ", t);
      // The k-contiguous loaders read element k at row + k, so they serve only operands whose k
      // stride is 1; every other layout (strided slices, expanded gradients with stride 0) takes
      // the general loader, which honours both strides. Operands too large for int offsets take
      // the general loader with 64-bit ones.
      bool ak = o.acs == 1;
      bool bk = o.brs == 1;
      bool narrow =
          fits_int(o.batch, o.abs, o.M, o.ars, o.K, o.acs) && fits_int(o.batch, o.bbs, o.N, o.bcs, o.K, o.brs);
      if (!narrow)
        simt_gemm<false, false, int64_t>(ctx, o, float(alpha), float(beta));
      else if (ak && bk)
        simt_gemm<true, true, int>(ctx, o, float(alpha), float(beta));
      else if (ak)
        simt_gemm<true, false, int>(ctx, o, float(alpha), float(beta));
      else if (bk)
        simt_gemm<false, true, int>(ctx, o, float(alpha), float(beta));
      else
        simt_gemm<false, false, int>(ctx, o, float(alpha), float(beta));
    }
  }
}

void CudaBackend::gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) {
  MINIMA_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "gemm: expected rank-3 operands, got ", a.shape(), ", ",
               b.shape(), " and ", c.shape());
  MINIMA_CHECK(a.dtype() == c.dtype() && b.dtype() == c.dtype(), "gemm: operands of dtypes ", a.dtype(), ", ",
               b.dtype(), " and ", c.dtype());
  MINIMA_CHECK(is_floating(c.dtype()), "gemm: unsupported dtype ", c.dtype());
  MINIMA_CHECK(a.size(0) == c.size(0) && b.size(0) == c.size(0) && a.size(1) == c.size(1) && b.size(2) == c.size(2) &&
                   a.size(2) == b.size(1),
               "gemm: shapes ", a.shape(), " @ ", b.shape(), " -> ", c.shape(), " do not match");
  Ctx ctx(c);
  if (c.numel() == 0) return;
  if (a.size(2) == 0 || alpha == 0.0) {  // no products: c = beta * c
    if (beta == 0.0)
      fill(c, 0.0);
    else
      unary(UnaryOp::MulScalar, c, c, beta, 0.0);
    return;
  }
  Impl impl = gemm_impl();
  if (impl == Impl::Native) {
    native_gemm(c, a, b, alpha, beta, ctx);
  } else if (impl == Impl::Vendor) {
    cublas_gemm(c, a, b, alpha, beta, ctx);
  } else {
    // auto: the timing runs write a scratch output when c must be read (beta != 0).
    std::string key = str("gemm|", c.dtype(), "|", c.shape(), "|", a.size(2), "|a", a.strides(), "|b", b.strides(),
                          "|c", c.strides());
    Tensor scratch;
    auto out = [&]() -> Tensor {  // a handle: c or the scratch
      if (beta == 0.0) return c;
      if (!scratch.defined()) scratch = empty(c.shape(), TensorOptions(c.dtype(), c.device()));
      return scratch;
    };
    // Shapes past the native kernels' limits go to cuBLAS without timing.
    bool vendor = !native_gemm_limit(c, a).empty() || autotune_use_vendor(
                                                          key, ctx, [&] { native_gemm(out(), a, b, alpha, 0.0, ctx); },
                                                          [&] { cublas_gemm(out(), a, b, alpha, 0.0, ctx); }, true);
    if (vendor)
      cublas_gemm(c, a, b, alpha, beta, ctx);
    else
      native_gemm(c, a, b, alpha, beta, ctx);
  }
}

}  // namespace minima::cuda
