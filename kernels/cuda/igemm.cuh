// kernels/cuda/igemm.cuh: the fp32 SIMT matrix-multiply kernel that both GEMM (gemm.cu) and the
// three convolution passes (conv.cu, as implicit GEMMs) run on.
//
// C[m, n] = sum_k A(m, k) * B(k, n) for a BM x 128 tile of C per block (BM = 128 with 256 threads,
// or 64 with 128 threads for GEMMs with few rows), K consumed 8 at a time:
//  * each thread owns an 8 x 8 register tile of C: rows {ty*4 + i, BM/2 + ty*4 + i} and columns
//    {tx*4 + j, 64 + tx*4 + j} (i, j < 4), so its operands are two float4 loads from each shared
//    tile per k step: 4 shared loads feed 64 FMAs;
//  * shared memory holds the A and B tiles k-major ([8][BM + 4] and [8][128 + 4]; the padding
//    keeps the transposing stores free of bank conflicts) and is double-buffered: the global loads
//    of tile t+1 are issued into registers before the FMAs of tile t, and stored to the other
//    buffer after them, with one __syncthreads per tile.
// What A and B are comes from "loader" types, which is how the convolutions gather their im2col
// matrices without materializing them:
//   struct Loader {
//     static constexpr bool kContig;  // true: consecutive k are adjacent in memory (threads of a
//                                     // warp then read along k), false: consecutive rows are
//     struct Row {...};               // per-row state, computed once per block
//     __device__ Row row(int z, int r, bool valid) const;  // r: row of A (m) or of B (n)
//     __device__ float load(const Row& row, int k) const;   // 0 for invalid rows/padding
//   };
// Loads are scalar (coalesced across the warp) so no operand needs any alignment, stride or size
// multiple. The epilogue functor receives every in-range result once:
//   __device__ void operator()(int z, int split, int m, int n, float v) const;
// grid = (ceil(N/128), ceil(M/BM), zdiv * splits); blockIdx.z = split * zdiv + z, and split s
// covers k in [s * k_chunk, min(K, (s + 1) * k_chunk)) (split-K, for the weight gradient).
#pragma once
#include "kernels/cuda/cuda_common.cuh"

namespace minima::cuda {

constexpr int kIgBN = 128, kIgBK = 8;

template <class L, int ROWS, int NT>
struct TileLoader {
  static constexpr int BK = kIgBK;
  static constexpr int P = ROWS * BK / NT;       // elements per thread per tile
  static constexpr int NR = L::kContig ? P : 1;  // distinct rows a thread touches
  static_assert(NT % ROWS == 0 || L::kContig, "rows-major loading needs NT to be a multiple of ROWS");
  static_assert(NT % BK == 0, "k-major loading needs NT to be a multiple of 8");

  typename L::Row rows[NR];
  int tid;

  // Element e of a thread's share: row and k inside the tile.
  __device__ __forceinline__ static int row_of(int e, int t) { return L::kContig ? (e * NT + t) / BK : t % ROWS; }
  __device__ __forceinline__ static int k_of(int e, int t) { return L::kContig ? t % BK : e * (NT / ROWS) + t / ROWS; }

  __device__ __forceinline__ TileLoader(const L& l, int z, int row0, int nrows, int t) : tid(t) {
#pragma unroll
    for (int e = 0; e < NR; ++e) {
      int r = row0 + row_of(e, t);
      rows[e] = l.row(z, r, r < nrows);
    }
  }
  __device__ __forceinline__ void load(const L& l, int k0, int kend, float (&reg)[P]) const {
    if (k0 + BK <= kend) {  // a whole tile of k (every tile but a ragged last one): no k test
#pragma unroll
      for (int e = 0; e < P; ++e) reg[e] = l.load(rows[L::kContig ? e : 0], k0 + k_of(e, tid));
      return;
    }
#pragma unroll
    for (int e = 0; e < P; ++e) {
      int k = k0 + k_of(e, tid);
      reg[e] = k < kend ? l.load(rows[L::kContig ? e : 0], k) : 0.f;
    }
  }
  __device__ __forceinline__ void store(float* s, const float (&reg)[P]) const {
#pragma unroll
    for (int e = 0; e < P; ++e) s[k_of(e, tid) * (ROWS + 4) + row_of(e, tid)] = reg[e];
  }
};

// At most 128 registers per thread: two 256-thread blocks (or four 128-thread ones) per SM, so
// one block's FMAs overlap another's barrier waits.
template <int BM, class AL, class BL, class EP>
__global__ void __launch_bounds__(2 * BM, 256 / BM)
    igemm_kernel(int M, int N, int K, int k_chunk, int zdiv, AL al, BL bl, EP ep) {
  constexpr int BN = kIgBN, BK = kIgBK, NT = 2 * BM;
  constexpr int LDA = BM + 4, LDB = BN + 4;
  using LA = TileLoader<AL, BM, NT>;
  using LB = TileLoader<BL, BN, NT>;
  __shared__ __align__(16) float As[2][BK * LDA];
  __shared__ __align__(16) float Bs[2][BK * LDB];

  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int split = blockIdx.z / zdiv, z = blockIdx.z % zdiv;
  const int kb = split * k_chunk;
  const int ke = min(K, kb + k_chunk);
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  LA la(al, z, m0, M, tid);
  LB lb(bl, z, n0, N, tid);
  float ra[LA::P], rb[LB::P];
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  const int ntiles = ke > kb ? (ke - kb + BK - 1) / BK : 0;
  if (ntiles > 0) {
    la.load(al, kb, ke, ra);
    lb.load(bl, kb, ke, rb);
    la.store(As[0], ra);
    lb.store(Bs[0], rb);
  }
  __syncthreads();

  for (int t = 0; t < ntiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ntiles;
    if (more) {  // next tile's global loads, in flight during this tile's FMAs
      la.load(al, kb + (t + 1) * BK, ke, ra);
      lb.load(bl, kb + (t + 1) * BK, ke, rb);
    }
    const float* a = As[cur];
    const float* b = Bs[cur];
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(a + kk * LDA + ty * 4);
      const float4 a1 = *reinterpret_cast<const float4*>(a + kk * LDA + BM / 2 + ty * 4);
      const float4 b0 = *reinterpret_cast<const float4*>(b + kk * LDB + tx * 4);
      const float4 b1 = *reinterpret_cast<const float4*>(b + kk * LDB + BN / 2 + tx * 4);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    if (more) {
      la.store(As[cur ^ 1], ra);
      lb.store(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? ty * 4 + i : BM / 2 + ty * 4 + (i - 4));
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int n = n0 + (j < 4 ? tx * 4 + j : BN / 2 + tx * 4 + (j - 4));
      if (n < N) ep(z, split, m, n, acc[i][j]);
    }
  }
}

// Launches igemm_kernel with BM = 64 (few rows) or 128.
template <int BM, class AL, class BL, class EP>
void launch_igemm(const Ctx& ctx, int M, int N, int K, int k_chunk, int zdiv, int splits, const AL& al, const BL& bl,
                  const EP& ep) {
  MINIMA_CHECK((int64_t(M) + BM - 1) / BM <= 65535 && int64_t(zdiv) * splits <= 65535,
               "GEMM too large for one launch: M = ", M, ", batch x splits = ", int64_t(zdiv) * splits);
  dim3 grid(unsigned((N + kIgBN - 1) / kIgBN), unsigned((M + BM - 1) / BM), unsigned(zdiv * splits));
  MINIMA_LAUNCH((igemm_kernel<BM, AL, BL, EP>), grid, dim3(2 * BM), 0, ctx.stream, M, N, K, k_chunk, zdiv, al, bl, ep);
}

// The block height by problem size: BM = 64 when M fits in one such tile, else 128.
template <class AL, class BL, class EP>
void run_igemm(const Ctx& ctx, int M, int N, int K, int k_chunk, int zdiv, int splits, const AL& al, const BL& bl,
               const EP& ep) {
  if (M <= 64)
    launch_igemm<64>(ctx, M, N, K, k_chunk, zdiv, splits, al, bl, ep);
  else
    launch_igemm<128>(ctx, M, N, K, k_chunk, zdiv, splits, al, bl, ep);
}

}  // namespace minima::cuda
