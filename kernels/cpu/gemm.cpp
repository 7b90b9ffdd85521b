// kernels/cpu/gemm.cpp: the cache-blocked CPU GEMM (the Goto/BLIS scheme). C is computed in
// blocks: a KC x NC panel of B is packed into NR-wide column strips (fits L2/L3), an MC x KC
// block of A into MR-tall row strips (fits L2), and a register-blocked MR x NR micro-kernel
// multiplies one A strip by one B strip with all MR*NR accumulators in vector registers.
// Packing also absorbs any strides, so transposed views cost nothing extra (contiguous lines are
// transposed into the packed layout in registers). One OpenMP region per product: its threads
// share the packing of each B panel and A block and the (B strip, A strip) multiplications. A
// product with far fewer columns than the tile runs transposed (C^T = B^T A^T), with bitwise the
// same result. The micro-kernel uses GCC vector extensions: one copy
// compiles to AVX2 FMA at -march=x86-64-v3 (or whatever the target has), a second one to AVX-512
// and is taken at run time when the CPU has it (MINIMA_CPU_GEMM=avx2 forces the first).
// Matrix-vector products (one row or one column of C) skip the packing: see gemv. So does a B
// whose columns come in runs (conv2d's receptive fields, a run per output row), read where it
// lies: see gemm_in_place.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "kernels/cpu/cpu_backend.h"

// The AVX-512 micro-kernel needs GCC/clang's target attribute and an x86-64 target, and a baseline
// build with FMA (-march=x86-64-v3, the default): only then do both kernels fuse every
// multiply-add and so agree bitwise. A build without FMA keeps the one kernel.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__FMA__)
#define MINIMA_GEMM_AVX512 1
#else
#define MINIMA_GEMM_AVX512 0
#endif

namespace minima::cpu {

namespace {

// Blocking of one instruction set whose vectors hold BYTES bytes: vector type V of VL lanes, an
// MR x NR register tile of accumulators (NR = two vectors) and the KC/MC/NC cache blocks. AVX2
// (32-byte vectors, 16 registers) holds a 6-row tile; AVX-512 (64-byte vectors, 32 registers)
// holds 12 rows, the two B vectors and the broadcast A value. KC is the same for every set, so
// every element of C sums its products in the same order whichever micro-kernel runs: the AVX2
// and AVX-512 paths agree bitwise.
template <class T, int BYTES>
struct Isa {
  using Scalar = T;
  typedef T V __attribute__((vector_size(BYTES)));
  using IE = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef IE I __attribute__((vector_size(BYTES)));  // lane indices for shuffles of V
  static constexpr int VL = BYTES / int(sizeof(T)), MR = BYTES == 32 ? 6 : 12, NR = 2 * VL;
  static constexpr int64_t KC = 256, MC = sizeof(T) == 4 ? 144 : 96, NC = 1024;
};
template <class T>
using Avx2 = Isa<T, 32>;
template <class T>
using Avx512 = Isa<T, 64>;

template <class T>
struct AlignedBuf {
  T* p = nullptr;
  size_t n = 0;
  void reserve(size_t want) {
    if (want <= n) return;
    std::free(p);
    p = static_cast<T*>(std::aligned_alloc(64, (want * sizeof(T) + 63) / 64 * 64));
    MINIMA_CHECK(p != nullptr, "gemm: out of memory for packing buffers");
    n = want;
  }
  ~AlignedBuf() { std::free(p); }
};

// Square tiles of one vector per row transposed in registers (GCC's __builtin_shuffle; clang
// builds, which only lint, take the scalar loops instead). Used by packing and by the gemv of a
// row-major matrix.
#if defined(__GNUC__) && !defined(__clang__)
#define MINIMA_REG_TRANSPOSE 1
// Lane indices for transpose_tile: at block size s = VL/2, VL/4, ..., 1, rows r and r + s swap
// their off-diagonal s-lane blocks; lo takes [a's lower half of each pair, b's lower half], hi
// [a's upper half, b's upper half].
template <class Cf>
struct TransposeMasks {
  static constexpr int kStages = Cf::VL == 2 ? 1 : Cf::VL == 4 ? 2 : Cf::VL == 8 ? 3 : 4;
  typename Cf::I lo[kStages], hi[kStages];
  TransposeMasks() {
    for (int st = 0, s = Cf::VL / 2; s >= 1; ++st, s /= 2)
      for (int j = 0; j < Cf::VL; ++j) {
        const bool upper = (j & s) != 0;
        lo[st][j] = upper ? Cf::VL + j - s : j;
        hi[st][j] = upper ? Cf::VL + j : j + s;
      }
  }
};
// Lane j of a shuffle's result takes lane lane_source(p, VL, j) of a, or of b when that is >= VL,
// for the patterns p: in-lane interleaves of single floats (a0 b0 a1 b1 | ...) and of float pairs
// (a0 a1 b0 b1 | ...), and a gathering of 128-bit lanes (a0 a2 b0 b2 for four lanes, a0 b0 for
// two); each hi pattern is its lo shifted on by two floats (by one lane for the lanes).
enum class LanePattern { lo1, hi1, lo2, hi2, even, odd };
constexpr int lane_source(LanePattern p, int VL, int j) {
  switch (p) {
    case LanePattern::lo1: return j / 4 * 4 + j % 4 / 2 + j % 2 * VL;
    case LanePattern::hi1: return j / 4 * 4 + j % 4 / 2 + j % 2 * VL + 2;
    case LanePattern::lo2: return j / 4 * 4 + j % 2 + j % 4 / 2 * VL;
    case LanePattern::hi2: return j / 4 * 4 + j % 2 + j % 4 / 2 * VL + 2;
    case LanePattern::even: return j / 4 * 8 + j % 4;
    case LanePattern::odd: return j / 4 * 8 + j % 4 + 4;
  }
  return 0;
}
template <class I, LanePattern P, class Lanes>
struct LaneMask;
template <class I, LanePattern P, int... J>
struct LaneMask<I, P, std::integer_sequence<int, J...>> {
  static constexpr I value = {lane_source(P, int(sizeof...(J)), J)...};
};
// Float tiles of 8 or 16 lanes are transposed with the fixed lane patterns that x86 has as single
// cheap instructions: two rounds within each 128-bit lane (unpcklps/unpckhps, then the same on
// pairs of floats), which leave u[4g + c] holding, in its 128-bit lane L, rows 4g..4g+3 of column
// 4L + c; then a transpose of the 128-bit lanes themselves (vperm2f128 for two lanes, two rounds
// of vshuff32x4 for four). The generic masks (TransposeMasks) compile to vpermt2ps, which costs
// more per shuffle and overwrites one of its inputs (so the compiler adds copies): a row-major
// gemv spent most of its time there, and now runs 1.1-1.2x faster.
template <class Cf>
__attribute__((always_inline)) inline void transpose_float_tile(typename Cf::V (&m)[Cf::VL]) {
  using V = typename Cf::V;
  using I = typename Cf::I;
  constexpr int VL = Cf::VL;
  static_assert(VL == 4 || VL == 8 || VL == 16, "float tiles of one SSE, AVX2 or AVX-512 vector");
  using Lanes = std::make_integer_sequence<int, VL>;
  constexpr I lo1 = LaneMask<I, LanePattern::lo1, Lanes>::value, hi1 = LaneMask<I, LanePattern::hi1, Lanes>::value;
  constexpr I lo2 = LaneMask<I, LanePattern::lo2, Lanes>::value, hi2 = LaneMask<I, LanePattern::hi2, Lanes>::value;
  constexpr I even = LaneMask<I, LanePattern::even, Lanes>::value, odd = LaneMask<I, LanePattern::odd, Lanes>::value;
  V t[VL], u[VL];
#pragma GCC unroll 16
  for (int i = 0; i < VL; i += 2) {
    t[i] = __builtin_shuffle(m[i], m[i + 1], lo1);
    t[i + 1] = __builtin_shuffle(m[i], m[i + 1], hi1);
  }
#pragma GCC unroll 16
  for (int g = 0; g < VL; g += 4) {
    u[g] = __builtin_shuffle(t[g], t[g + 2], lo2);
    u[g + 1] = __builtin_shuffle(t[g], t[g + 2], hi2);
    u[g + 2] = __builtin_shuffle(t[g + 1], t[g + 3], lo2);
    u[g + 3] = __builtin_shuffle(t[g + 1], t[g + 3], hi2);
  }
  if constexpr (VL == 4) {  // one 128-bit lane: the two rounds were the whole transpose
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) m[c] = u[c];
  } else if constexpr (VL == 8) {  // m[4L + c] = (u[c] lane L, u[4 + c] lane L)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      m[c] = __builtin_shuffle(u[c], u[4 + c], even);
      m[4 + c] = __builtin_shuffle(u[c], u[4 + c], odd);
    }
  } else {  // m[4L + c] = lane L of u[c], u[4 + c], u[8 + c], u[12 + c]: a 4 x 4 transpose of lanes
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const V v0 = __builtin_shuffle(u[c], u[4 + c], even), v1 = __builtin_shuffle(u[c], u[4 + c], odd);
      const V v2 = __builtin_shuffle(u[8 + c], u[12 + c], even), v3 = __builtin_shuffle(u[8 + c], u[12 + c], odd);
      m[c] = __builtin_shuffle(v0, v2, even);
      m[4 + c] = __builtin_shuffle(v1, v3, even);
      m[8 + c] = __builtin_shuffle(v0, v2, odd);
      m[12 + c] = __builtin_shuffle(v1, v3, odd);
    }
  }
}

// In place, m[r][j] -> m[j][r].
template <class Cf>
__attribute__((always_inline)) inline void transpose_tile(typename Cf::V (&m)[Cf::VL], const TransposeMasks<Cf>& t) {
  using V = typename Cf::V;
  if constexpr (std::is_same_v<typename Cf::Scalar, float>) {
    transpose_float_tile<Cf>(m);
  } else {
    // Fully unrolled, so that m stays in registers (an indexed m would live in memory).
#pragma GCC unroll 4
    for (int st = 0, s = Cf::VL / 2; s >= 1; ++st, s /= 2)
#pragma GCC unroll 16
      for (int r = 0; r < Cf::VL; ++r)
        if ((r & s) == 0) {
          const V a = m[r], b = m[r + s];
          m[r] = __builtin_shuffle(a, b, t.lo[st]);
          m[r + s] = __builtin_shuffle(a, b, t.hi[st]);
        }
  }
}
#else
#define MINIMA_REG_TRANSPOSE 0
#endif

#if MINIMA_REG_TRANSPOSE
// transpose_into's rows from i on in groups of VL (vectors of BYTES bytes), while whole groups
// remain: VL x VL tiles (VL rows, VL consecutive columns) are loaded row by row, transposed in
// registers and stored as VL rows of dst; columns past the last whole tile are copied one value
// at a time. Advances i past the groups done.
template <class T, int BYTES>
void transpose_row_groups(int64_t& i, int64_t rows, int64_t cols, const T* src, int64_t src_ls, T* dst,
                          int64_t dst_ls) {
  using Cf = Isa<T, BYTES>;
  using V = typename Cf::V;
  constexpr int VL = Cf::VL;
  static const TransposeMasks<Cf> masks;
  const int64_t col_tiles = cols / VL * VL;
  for (; i + VL <= rows; i += VL) {
    for (int64_t j = 0; j < col_tiles; j += VL) {
      V m[VL];
#pragma GCC unroll 16
      for (int r = 0; r < VL; ++r) std::memcpy(&m[r], src + (i + r) * src_ls + j, sizeof(V));
      transpose_tile<Cf>(m, masks);
#pragma GCC unroll 16
      for (int r = 0; r < VL; ++r) std::memcpy(dst + (j + r) * dst_ls + i, &m[r], sizeof(V));
    }
    for (int64_t j = col_tiles; j < cols; ++j)
      for (int64_t r = 0; r < VL; ++r) dst[j * dst_ls + i + r] = src[(i + r) * src_ls + j];
  }
}
#endif

// dst[j * dst_ls + i] = src[i * src_ls + j] for i < rows, j < cols, with rows of src contiguous:
// rows in groups of one AVX2 vector's lanes (8 floats, 4 doubles), then of half as many (a
// 12-row strip of A is a group of 8 and one of 4; a 6-row AVX2 strip of floats one of 4), each
// group a row of register-transposed tiles; rows left over (fewer than half a vector) are copied
// one value at a time. (Before the half-width groups, a third of every 12-row strip and all of a
// 6-row one went through that scalar copy.)
template <class T>
void transpose_into(int64_t rows, int64_t cols, const T* src, int64_t src_ls, T* dst, int64_t dst_ls) {
  int64_t i = 0;
#if MINIMA_REG_TRANSPOSE
  transpose_row_groups<T, 32>(i, rows, cols, src, src_ls, dst, dst_ls);
  transpose_row_groups<T, 16>(i, rows, cols, src, src_ls, dst, dst_ls);
#endif
  for (; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_ls + i] = src[i * src_ls + j];
}

// Packs one strip of R "lines" (rows of A, or columns of B) of kc elements, k-major: out[k*R + i]
// = P[i * ls + k * ks] for the first n lines, zeros for the rest (a ragged last strip). The copy
// order follows memory: whole k-rows at once when the lines are adjacent (row-major B, transposed
// A), each line front to back when it is contiguous (row-major A, transposed B): R streams read in
// k order would thrash the cache.
template <class T, int R>
void pack_strip(int64_t n, int64_t kc, const T* P, int64_t ls, int64_t ks, T* out) {
  if (ls == 1 && n == R) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(out + k * R, P + k * ks, sizeof(T) * R);
    return;
  }
  if (ks == 1) {  // contiguous lines: transposed into k-rows of R
    transpose_into(n, kc, P, ls, out, R);
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t i = 0; i < n; ++i) out[k * R + i] = P[i * ls + k * ks];
  }
  if (n < R)  // k-rows are contiguous: R - n zeros after each one's n values
    for (int64_t k = 0; k < kc; ++k) std::memset(out + k * R + n, 0, sizeof(T) * size_t(R - n));
}

// C = alpha * acc + beta * C on the mr x nr corner of a ROWS x NR register tile. A whole-width
// tile into unit-stride rows with alpha 1 and beta 0 or 1 (every product of matmul and conv2d,
// and every K block after the first) is stored a vector at a time: 1 * acc and 1 * acc + 1 * c
// round exactly as acc and acc + c, so the result is bitwise that of the general path below.
// Products with a small K (conv2d's input gradient, K = output channels) spend much of their time
// here.
template <class T, class Cf, int ROWS>
__attribute__((always_inline)) inline void store_tile(const typename Cf::V (&acc)[ROWS][Cf::NR / Cf::VL], T alpha,
                                                      T beta, T* C, int64_t c_rs, int64_t c_cs, int64_t mr,
                                                      int64_t nr) {
  using V = typename Cf::V;
  constexpr int NR = Cf::NR, VL = Cf::VL, NV = NR / VL;
  if (c_cs == 1 && nr == NR && alpha == T(1) && (beta == T(0) || beta == T(1))) {
    for (int i = 0; i < ROWS; ++i) {
      if (i >= mr) break;
      T* c = C + i * c_rs;
      for (int v = 0; v < NV; ++v) {
        V out = acc[i][v];
        if (beta == T(1)) {
          V old;
          std::memcpy(&old, c + v * VL, sizeof(V));
          out += old;
        }
        std::memcpy(c + v * VL, &out, sizeof(V));
      }
    }
    return;
  }
  alignas(64) T tile[ROWS * NR];
  for (int i = 0; i < ROWS; ++i)
    for (int v = 0; v < NV; ++v) std::memcpy(tile + i * NR + v * VL, &acc[i][v], sizeof(V));
  for (int64_t i = 0; i < mr; ++i) {
    T* c = C + i * c_rs;
    if (beta == T(0)) {
      for (int64_t j = 0; j < nr; ++j) c[j * c_cs] = alpha * tile[i * NR + j];
    } else {
      for (int64_t j = 0; j < nr; ++j) c[j * c_cs] = alpha * tile[i * NR + j] + beta * c[j * c_cs];
    }
  }
}

// Where the micro-kernel reads its B strip: packed (row k's NR values at p + k * NR), or in place
// (gemm_in_place). In place, vector v of row k is P pieces: lanes from piece p's first lane on
// are the VL values at first[v][p] + rows[k] (lanes before that are read but not taken), so that
// a vector may cross from one run of B's columns into the next (P at most kInPlaceMaxPieces).
template <class T, class Cf>
struct PackedStrip {
  const T* p;
  __attribute__((always_inline)) void load(int64_t k, int v, typename Cf::V& x) const {
    std::memcpy(&x, p + k * Cf::NR + v * Cf::VL, sizeof(x));
  }
};
template <class T, class Cf>
struct InPlaceVectors {
  static constexpr int NV = Cf::NR / Cf::VL;
  const T* first[NV][kInPlaceMaxPieces];
  typename Cf::I take[NV][kInPlaceMaxPieces];  // the lanes piece p >= 1 gives: all ones, others zero
  int pieces;                                  // the most that one of the strip's vectors needs
};
template <class T, class Cf, int P>
struct StripInPlace {
  const InPlaceVectors<T, Cf>* d;
  const int64_t* rows;  // of the K block being multiplied
  __attribute__((always_inline)) void load(int64_t k, int v, typename Cf::V& x) const {
    std::memcpy(&x, d->first[v][0] + rows[k], sizeof(x));
    for (int p = 1; p < P; ++p) {
      typename Cf::V y;
      std::memcpy(&y, d->first[v][p] + rows[k], sizeof(y));
      x = d->take[v][p] ? y : x;
    }
  }
};

// acc (ROWS x NR) = the first ROWS rows of the Ap strip (MR values per k, as packed) @ the B strip
// over kc; then C = alpha*acc + beta*C on the mr x nr corner (mr <= ROWS). Always inlined into a
// wrapper compiled for the instruction set of Cf (see below).
template <class T, class Cf, int ROWS, class Strip>
__attribute__((always_inline)) inline void micro_kernel_body(int64_t kc, const T* __restrict__ Ap, const Strip& b,
                                                             T alpha, T beta, T* C, int64_t c_rs, int64_t c_cs,
                                                             int64_t mr, int64_t nr) {
  using V = typename Cf::V;
  constexpr int MR = Cf::MR, NR = Cf::NR, VL = Cf::VL, NV = NR / VL;
  V acc[ROWS][NV];
  for (int i = 0; i < ROWS; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) b.load(k, v, bv[v]);
    for (int i = 0; i < ROWS; ++i) {
      T a = Ap[k * MR + i];
      for (int v = 0; v < NV; ++v) acc[i][v] += a * bv[v];
    }
  }
  store_tile<T, Cf, ROWS>(acc, alpha, beta, C, c_rs, c_cs, mr, nr);
}

// A strip's last rows are often padding: 64 rows are five strips of 12 and one of 4. The
// micro-kernels therefore run the fewest of MR/3, 2*MR/3 or MR rows that hold the strip's mr
// (4, 8 or 12 with AVX-512; 2, 4 or 6 with AVX2), so a 4-row strip costs a third of a whole
// one. Each row's sum is the same sequence of multiply-adds whichever runs: bitwise the same.
template <class Cf>
constexpr int tile_rows(int64_t mr) {
  static_assert(Cf::MR % 3 == 0, "tiles of a third, two thirds and all of MR rows");
  return mr <= Cf::MR / 3 ? Cf::MR / 3 : mr <= 2 * Cf::MR / 3 ? 2 * Cf::MR / 3 : Cf::MR;
}

// The micro-kernel on the smallest tile that holds a strip of mr rows (tile_rows).
template <class T, class Cf, class Strip>
__attribute__((always_inline)) inline void micro_kernel_rows(int64_t kc, const T* Ap, const Strip& b, T alpha, T beta,
                                                             T* C, int64_t c_rs, int64_t c_cs, int64_t mr, int64_t nr) {
  constexpr int R = Cf::MR / 3;
  switch (tile_rows<Cf>(mr)) {
    case R: return micro_kernel_body<T, Cf, R>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
    case 2 * R: return micro_kernel_body<T, Cf, 2 * R>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
    default: return micro_kernel_body<T, Cf, 3 * R>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
  }
}

// One micro-kernel per instruction set and kind of B strip. The AVX-512 ones are compiled for
// AVX-512 whatever -march says and only ever called after the CPU was seen to support it.
template <class T>
void micro_kernel_avx2(int64_t kc, const T* Ap, const T* Bp, T alpha, T beta, T* C, int64_t c_rs, int64_t c_cs,
                       int64_t mr, int64_t nr) {
  micro_kernel_rows<T, Avx2<T>>(kc, Ap, PackedStrip<T, Avx2<T>>{Bp}, alpha, beta, C, c_rs, c_cs, mr, nr);
}
template <class T, int P>
void in_place_kernel_avx2(int64_t kc, const T* Ap, const StripInPlace<T, Avx2<T>, P>& b, T alpha, T beta, T* C,
                          int64_t c_rs, int64_t c_cs, int64_t mr, int64_t nr) {
  micro_kernel_rows<T, Avx2<T>>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
}
#if MINIMA_GEMM_AVX512
template <class T>
__attribute__((target("avx512f,avx512vl,fma,avx2"))) void micro_kernel_avx512(int64_t kc, const T* Ap, const T* Bp,
                                                                              T alpha, T beta, T* C, int64_t c_rs,
                                                                              int64_t c_cs, int64_t mr, int64_t nr) {
  micro_kernel_rows<T, Avx512<T>>(kc, Ap, PackedStrip<T, Avx512<T>>{Bp}, alpha, beta, C, c_rs, c_cs, mr, nr);
}
template <class T, int P>
__attribute__((target("avx512f,avx512vl,fma,avx2"))) void in_place_kernel_avx512(int64_t kc, const T* Ap,
                                                                                 const StripInPlace<T, Avx512<T>, P>& b,
                                                                                 T alpha, T beta, T* C, int64_t c_rs,
                                                                                 int64_t c_cs, int64_t mr, int64_t nr) {
  micro_kernel_rows<T, Avx512<T>>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
}
#endif

// The in-place kernel of the instruction set whose blocking is Cf.
template <class T, class Cf, int P>
void in_place_kernel(int64_t kc, const T* Ap, const StripInPlace<T, Cf, P>& b, T alpha, T beta, T* C, int64_t c_rs,
                     int64_t c_cs, int64_t mr, int64_t nr) {
#if MINIMA_GEMM_AVX512
  if constexpr (std::is_same_v<Cf, Avx512<T>>) {
    in_place_kernel_avx512<T, P>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
  } else
#endif
  {
    in_place_kernel_avx2<T, P>(kc, Ap, b, alpha, beta, C, c_rs, c_cs, mr, nr);
  }
}

// The micro-kernel over runs of B rows (gemm_row_runs): acc (ROWS x NR) = the A strip's columns
// (k-major, as packed) times, for each run in turn, its len rows of the B strip, `step` rows
// apart from row `row`; then C += acc on the mr x nr corner (columns adjacent). The sums are
// micro_kernel_body's, and so is the epilogue (store_tile with alpha 1 and beta 1).
template <class T, class Cf, int ROWS>
__attribute__((always_inline)) inline void runs_kernel_body(const RowRun* runs, int64_t n_runs, int64_t step,
                                                            const T* __restrict__ Ap, const T* __restrict__ Bp, T* C,
                                                            int64_t c_rs, int64_t mr, int64_t nr) {
  using V = typename Cf::V;
  constexpr int MR = Cf::MR, NR = Cf::NR, VL = Cf::VL, NV = NR / VL;
  V acc[ROWS][NV];
  for (int i = 0; i < ROWS; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  // C's tile is read back at the end, after a K block of work: asked for now, its lines are near
  // by then. (A weight gradient's C, the weights' shape, outgrows L2 on deep layers: 2.4 MB for a
  // 3x3 256->256 conv, whose weight gradient took about 1.05x as long without.) A prefetch never
  // faults, so the rows and columns past mr and nr may be asked for too.
  for (int i = 0; i < ROWS; ++i)
    for (int v = 0; v < NV; ++v) __builtin_prefetch(C + i * c_rs + v * VL, 1, 3);
  const T* a = Ap;
  const int64_t b_step = step * NR;
  for (int64_t r = 0; r < n_runs; ++r) {
    const T* b = Bp + runs[r].row * NR;
    for (int64_t k = 0; k < runs[r].len; ++k, a += MR, b += b_step) {
      V bv[NV];
      for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + v * VL, sizeof(V));
      for (int i = 0; i < ROWS; ++i) {
        const T x = a[i];
        for (int v = 0; v < NV; ++v) acc[i][v] += x * bv[v];
      }
    }
  }
  store_tile<T, Cf, ROWS>(acc, T(1), T(1), C, c_rs, 1, mr, nr);
}

// The runs kernel on the smallest tile that holds a strip of mr rows (tile_rows).
template <class T, class Cf>
__attribute__((always_inline)) inline void runs_kernel_rows(const RowRun* runs, int64_t n_runs, int64_t step,
                                                            const T* Ap, const T* Bp, T* C, int64_t c_rs, int64_t mr,
                                                            int64_t nr) {
  constexpr int R = Cf::MR / 3;
  switch (tile_rows<Cf>(mr)) {
    case R: return runs_kernel_body<T, Cf, R>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
    case 2 * R: return runs_kernel_body<T, Cf, 2 * R>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
    default: return runs_kernel_body<T, Cf, 3 * R>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
  }
}

template <class T>
void runs_kernel_avx2(const RowRun* runs, int64_t n_runs, int64_t step, const T* Ap, const T* Bp, T* C, int64_t c_rs,
                      int64_t mr, int64_t nr) {
  runs_kernel_rows<T, Avx2<T>>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
}
#if MINIMA_GEMM_AVX512
template <class T>
__attribute__((target("avx512f,avx512vl,fma,avx2"))) void runs_kernel_avx512(const RowRun* runs, int64_t n_runs,
                                                                             int64_t step, const T* Ap, const T* Bp,
                                                                             T* C, int64_t c_rs, int64_t mr,
                                                                             int64_t nr) {
  runs_kernel_rows<T, Avx512<T>>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
}
#endif

// The runs kernel of the instruction set whose blocking is Cf.
template <class T, class Cf>
void runs_kernel(const RowRun* runs, int64_t n_runs, int64_t step, const T* Ap, const T* Bp, T* C, int64_t c_rs,
                 int64_t mr, int64_t nr) {
#if MINIMA_GEMM_AVX512
  if constexpr (std::is_same_v<Cf, Avx512<T>>) {
    runs_kernel_avx512<T>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
    return;
  }
#endif
  runs_kernel_avx2<T>(runs, n_runs, step, Ap, Bp, C, c_rs, mr, nr);
}

// Whether an M x N product does at least a quarter less padded micro-kernel work transposed
// (C^T = B^T A^T, N x M), as when N is far below NR and M is not: a classifier layer's [128, 512]
// x [512, 10] fills 10 of every 32 columns of its tiles, while transposed its 10 rows fill one
// 12-row strip. Each element of C still sums the same products in the same k order, and a fused
// multiply-add does not care which factor comes first, so the result is bitwise the same.
template <class Cf>
bool transposed_pays(int64_t M, int64_t N) {
  auto padded = [](int64_t n, int64_t to) {
    const int64_t whole_tiles = (n + to - 1) / to;
    return double(whole_tiles) * double(to);
  };
  return 4.0 * padded(N, Cf::MR) * padded(M, Cf::NR) < 3.0 * padded(M, Cf::MR) * padded(N, Cf::NR);
}

// conv2d's packers (kernels/cpu/conv.cpp) size their per-strip tables for strips of up to 32.
static_assert(Avx512<float>::NR <= 32 && Avx2<float>::NR <= 32, "packers assume strips of at most 32 columns");

template <class T>
using MicroKernel = void (*)(int64_t, const T*, const T*, T, T, T*, int64_t, int64_t, int64_t, int64_t);

// Where the Goto loops take A's strips from: a strided matrix, packed an MC x KC block at a time
// (StridedA), or one packed whole beforehand by pack_a (WholeA), strip r's K block pc at
// p + (r * K + pc) * MR. Both layouts hold the same values, so the products are bitwise the same.
template <class T>
struct StridedA {
  static constexpr bool kWhole = false;
  const T* p;
  int64_t rs, cs;
};
template <class T>
struct WholeA {
  static constexpr bool kWhole = true;
  const T* p;
};

// Packs all of A [M, K] into WholeA's layout at out; fill(i0, n, pc, kc, strip) writes rows
// [i0, i0 + n) of K block pc as one MR-row strip. Shared, its loop is an orphaned `omp for`:
// inside a parallel region the region's threads share the strips (and meet at its end), outside
// one the calling thread packs them all. Not shared, the calling thread packs them all anyway
// (inside a region: a copy of its own).
template <class T, class Cf, class Fill>
void pack_whole_a(int64_t M, int64_t K, const Fill& fill, T* out, bool shared = true) {
  constexpr int MR = Cf::MR;
  const int64_t m_strips = (M + MR - 1) / MR, k_blocks = (K + Cf::KC - 1) / Cf::KC;
  auto item = [&](int64_t it) {
    const int64_t r = it / k_blocks, pc = it % k_blocks * Cf::KC;
    fill(r * MR, std::min<int64_t>(MR, M - r * MR), pc, std::min<int64_t>(Cf::KC, K - pc), out + (r * K + pc) * MR);
  };
  if (shared) {
#pragma omp for schedule(static)
    for (int64_t it = 0; it < m_strips * k_blocks; ++it) item(it);
  } else {
    for (int64_t it = 0; it < m_strips * k_blocks; ++it) item(it);
  }
}

// A product with few rows (M <= MC) whose packed A fits in this many bytes takes gemm_short_m.
constexpr int64_t kShortMBytes = int64_t(1) << 20;

// gemm_short_m packs A once per thread, instead of once for all threads to read, when each thread
// has at least this many B strips to multiply by it (and the copies take at most kPrivateABytes).
// A copy shared by two threads cost each of them more than packing its own: the other thread's
// half crosses between the cores on every call, since the buffer is reused and each call's
// packing first takes every line back from the core that last read it. On the EPYC, with the B
// strips apart (below), a 2-thread [128, 784] x [784, 512] product took 355 us packing A together
// and 312 us packing a copy each (one thread packing all of A and multiplying half of B: 295 us).
// A copy costs a thread about one B strip's work (packing a value is about a strip's multiply-
// adds with it), so with 8 strips or more each, the copies cost at most about an eighth more work
// where moving data between cores is cheap (cores that share a cache).
constexpr int64_t kPrivateAMinStrips = 8;
constexpr int64_t kPrivateABytes = int64_t(64) << 20;

// gemm_short_m's per-thread B strips lie at least this far apart in their shared buffer. Side by
// side, two threads writing and reading their 32 KB strips slowed each other: a 2-thread
// [128, 784] x [784, 512] product took 1.15-1.25x the time it takes with the strips apart (on the
// EPYC, 420 -> 355 us; 4 KB apart won back half of it, 16 KB nearly all). Each core's hardware
// prefetchers, running ahead of its own strip, took lines of the neighbour's strip while it
// wrote them.
constexpr int64_t kStripGapBytes = int64_t(32) << 10;

// Few rows (conv2d layers with few output channels): all of A is packed once, then each B strip,
// packed one KC block at a time, is multiplied by every A strip at once, while it is in L1. The
// general schedule would pack whole KC x NC panels of B (a megabyte) for only M / MR micro-kernel
// calls each, and read them back from L2. Each element of C is summed over the same KC blocks in
// the same order with the same epilogues, so the result is bitwise that of gemm_blocked's loops.
template <class T, class Cf, MicroKernel<T> Micro, class ASrc, class PackB>
void gemm_short_m(int64_t M, int64_t N, int64_t K, T alpha, const ASrc& a, const PackB& pack_b, T beta, T* C,
                  int64_t c_rs, int64_t c_cs, bool parallel) {
  constexpr int MR = Cf::MR, NR = Cf::NR;
  const int64_t m_strips = (M + MR - 1) / MR, n_strips = (N + NR - 1) / NR;
  // Allocated here, not in the parallel region (where a failure could not be reported): all of
  // A (unless packed already; one copy, or one per thread), and one B strip per thread.
  const int threads = parallel ? omp_get_max_threads() : 1;
  const size_t a_step = size_t(m_strips * MR * K + kStripGapBytes / int64_t(sizeof(T)));
  const bool private_a = !ASrc::kWhole && threads > 1 && n_strips >= kPrivateAMinStrips * threads &&
                         double(a_step) * sizeof(T) * threads <= double(kPrivateABytes);
  thread_local AlignedBuf<T> abuf, bbuf;
  if constexpr (!ASrc::kWhole) abuf.reserve(private_a ? a_step * size_t(threads) : a_step);
  const size_t strip_step = size_t(Cf::KC * NR + kStripGapBytes / int64_t(sizeof(T)));
  bbuf.reserve(size_t(threads) * strip_step);
  // Through pointers: inside the region, abuf and bbuf would name each worker's own (empty) ones.
  T* const Ap = !ASrc::kWhole ? abuf.p : nullptr;  // packed here in WholeA's layout (thread t's copy at t * a_step)
  T* const Bs = bbuf.p;                            // thread t's B strip at Bs + t * strip_step
#pragma omp parallel if (parallel)
  {
    const T* Aw = a.p;
    if constexpr (!ASrc::kWhole) {
      auto strided = [&](int64_t i0, int64_t n, int64_t pc, int64_t kc, T* out) {
        pack_strip<T, MR>(n, kc, a.p + i0 * a.rs + pc * a.cs, a.rs, a.cs, out);
      };
      T* const mine = private_a ? Ap + size_t(omp_get_thread_num()) * a_step : Ap;
      pack_whole_a<T, Cf>(M, K, strided, mine, !private_a);
      Aw = mine;
    }
    T* const strip = Bs + size_t(omp_get_thread_num()) * strip_step;
#pragma omp for schedule(static)
    for (int64_t s = 0; s < n_strips; ++s) {
      const int64_t j0 = s * NR, nr = std::min<int64_t>(NR, N - j0);
      for (int64_t pc = 0; pc < K; pc += Cf::KC) {
        const int64_t kc = std::min<int64_t>(Cf::KC, K - pc);
        pack_b(j0, nr, pc, kc, strip);
        for (int64_t r = 0; r < m_strips; ++r)
          Micro(kc, Aw + (r * K + pc) * MR, strip, alpha, pc == 0 ? beta : T(1), C + r * MR * c_rs + j0 * c_cs, c_rs,
                c_cs, std::min<int64_t>(MR, M - r * MR), nr);
      }
    }
  }
}

// The Goto loops around one instruction set's micro-kernel. B comes through pack_b(j0, n, pc, kc,
// out), which writes the NR-wide strip of B[pc:pc+kc, j0:j0+n] as pack_strip lays it out: a
// strided matrix, or a conv2d's receptive fields unrolled straight into the strip.
template <class T, class Cf, MicroKernel<T> Micro, class ASrc, class PackB>
void gemm_blocked(int64_t M, int64_t N, int64_t K, T alpha, const ASrc& a, const PackB& pack_b, T beta, T* C,
                  int64_t c_rs, int64_t c_cs, bool parallel) {
  constexpr int MR = Cf::MR, NR = Cf::NR;
  const int64_t m_pad = (M + MR - 1) / MR * MR;
  // (It shares out B strips only: in parallel, it needs one per thread at least.)
  const bool strips_for_all = !parallel || (N + NR - 1) / NR >= omp_get_max_threads();
  if (M <= Cf::MC && double(m_pad) * double(K) * sizeof(T) <= double(kShortMBytes) && strips_for_all) {
    gemm_short_m<T, Cf, Micro>(M, N, K, alpha, a, pack_b, beta, C, c_rs, c_cs, parallel);
    return;
  }
  thread_local AlignedBuf<T> bbuf, abuf;
  bbuf.reserve(size_t(Cf::KC) * size_t(((std::min<int64_t>(Cf::NC, N) + NR - 1) / NR) * NR));
  if constexpr (!ASrc::kWhole) abuf.reserve(size_t((Cf::MC + MR - 1) / MR * MR) * size_t(Cf::KC));  // whole strips
  T* const Bp = bbuf.p;
  T* const Ap = abuf.p;
  // One parallel region for the whole product: its threads share the packed blocks, and take
  // their turns at packing B strips, packing A strips and multiplying (B strip, A strip) pairs;
  // the barrier at the end of each of these loops keeps a block from being repacked while read.
#pragma omp parallel if (parallel)
  for (int64_t jc = 0; jc < N; jc += Cf::NC) {
    const int64_t nc = std::min<int64_t>(Cf::NC, N - jc);
    const int64_t n_strips = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += Cf::KC) {
      const int64_t kc = std::min<int64_t>(Cf::KC, K - pc);
      const T beta_eff = pc == 0 ? beta : T(1);
#pragma omp for schedule(static)
      for (int64_t s = 0; s < n_strips; ++s) {
        const int64_t j0 = s * NR;
        pack_b(jc + j0, std::min<int64_t>(NR, nc - j0), pc, kc, Bp + s * kc * NR);
      }
      for (int64_t ic = 0; ic < M; ic += Cf::MC) {
        const int64_t mc = std::min<int64_t>(Cf::MC, M - ic);
        const int64_t m_strips = (mc + MR - 1) / MR;
        // A[ic:ic+mc, pc:pc+kc] as MR-row strips, strip r at a_block + r * a_step.
        const T* a_block = Ap;
        int64_t a_step = kc * MR;
        if constexpr (!ASrc::kWhole) {
#pragma omp for schedule(static)
          for (int64_t r = 0; r < m_strips; ++r)
            pack_strip<T, MR>(std::min<int64_t>(MR, mc - r * MR), kc, a.p + (ic + r * MR) * a.rs + pc * a.cs, a.rs,
                              a.cs, Ap + r * kc * MR);
        } else {
          a_block = a.p + (ic / MR * K + pc) * MR;
          a_step = K * MR;
        }
        const int64_t items = n_strips * m_strips;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; ++it) {
          const int64_t s = it / m_strips, r = it % m_strips;
          const int64_t j0 = s * NR, i0 = r * MR;
          Micro(kc, a_block + r * a_step, Bp + s * kc * NR, alpha, beta_eff, C + (ic + i0) * c_rs + (jc + j0) * c_cs,
                c_rs, c_cs, std::min<int64_t>(MR, mc - i0), std::min<int64_t>(NR, nc - j0));
        }
      }
    }
  }
}

// A product with a strided B: its strips are packed from memory as NR columns (lines b_cs apart)
// of kc elements (b_rs apart).
template <class T, class Cf, MicroKernel<T> Micro>
void gemm_blocked_strided(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
                          int64_t b_rs, int64_t b_cs, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel) {
  if (transposed_pays<Cf>(M, N)) {  // never true again for the transposed shape
    gemm_blocked_strided<T, Cf, Micro>(N, M, K, alpha, B, b_cs, b_rs, A, a_cs, a_rs, beta, C, c_cs, c_rs, parallel);
    return;
  }
  auto pack_b = [&](int64_t j0, int64_t n, int64_t pc, int64_t kc, T* out) {
    pack_strip<T, Cf::NR>(n, kc, B + pc * b_rs + j0 * b_cs, b_cs, b_rs, out);
  };
  gemm_blocked<T, Cf, Micro>(M, N, K, alpha, StridedA<T>{A, a_rs, a_cs}, pack_b, beta, C, c_rs, c_cs, parallel);
}

#if defined(__FMA__)
// Matrix-vector products: C (M x 1) = alpha * A (M x K) @ B (K x 1) + beta * C, without packing.
// For one column, packing A costs as much as the product, and the micro-kernel would leave NR - 1
// of its NR columns idle. Each element is summed as the micro-kernel sums it: k in order, one
// fused multiply-add at a time, restarted at every KC block whose sum then goes into C through
// the same epilogue. So the result is bitwise that of the blocked path (a test checks it).
// A tile of rows runs as vector FMAs across the rows: when A is column-major its rows are adjacent
// in memory; when it is row-major, VL x VL blocks are loaded row by row and transposed in
// registers (log2 VL rounds of two-input shuffles), so that k still advances one step at a time
// for every row.

// Finishes n rows of one K block: adds k in [k, end) to their running sums acc[] one fused
// multiply-add at a time, then stores them through micro_kernel_body's epilogue (beta_eff: beta in
// the first K block, 1 after it, as in gemm_blocked).
template <class T>
inline void gemv_finish(int64_t n, T* acc, int64_t k, int64_t end, T alpha, const T* A, int64_t a_rs, int64_t a_cs,
                        const T* B, int64_t b_s, T beta_eff, T* C, int64_t c_s) {
  for (; k < end; ++k) {
    const T b = B[k * b_s];
    for (int64_t q = 0; q < n; ++q) acc[q] = std::fma(A[q * a_rs + k * a_cs], b, acc[q]);
  }
  for (int64_t q = 0; q < n; ++q) {
    T* c = C + q * c_s;
    if (beta_eff == T(0))
      *c = alpha * acc[q];
    else
      *c = alpha * acc[q] + beta_eff * *c;
  }
}

// Rows after the last whole tile: scalar, 16 at a time.
template <class T, int64_t KC>
void gemv_rows(int64_t rows, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B, int64_t b_s,
               T beta, T* C, int64_t c_s) {
  constexpr int64_t kMax = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += kMax)
    for (int64_t pc = 0; pc < K; pc += KC) {
      T acc[kMax] = {};
      gemv_finish(std::min(kMax, rows - i0), acc, pc, std::min(K, pc + KC), alpha, A + i0 * a_rs, a_rs, a_cs, B, b_s,
                  pc == 0 ? beta : T(1), C + i0 * c_s, c_s);
    }
}

// One tile of NV * Cf::VL rows (A, C point at its first row): NV independent vector accumulators,
// so consecutive fused multiply-adds do not wait for one another.
template <class T, class Cf, int NV>
__attribute__((always_inline)) inline void gemv_tile_body(int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs,
                                                          const T* B, int64_t b_s, T beta, T* C, int64_t c_s) {
  using V = typename Cf::V;
  constexpr int VL = Cf::VL, R = NV * VL;
#if MINIMA_REG_TRANSPOSE
  static const TransposeMasks<Cf> masks;
#endif
  for (int64_t pc = 0; pc < K; pc += Cf::KC) {
    const int64_t end = pc + std::min<int64_t>(Cf::KC, K - pc);
    V acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = V{};
    int64_t k = pc;   // the vector loops below cover [pc, k)
    if (a_rs == 1) {  // column-major: a column of the tile is NV whole vectors
      for (; k < end; ++k) {
        const T b = B[k * b_s];
        const T* col = A + k * a_cs;
        for (int v = 0; v < NV; ++v) {
          V a;
          std::memcpy(&a, col + v * VL, sizeof(V));
          acc[v] += a * b;
        }
      }
    }
#if MINIMA_REG_TRANSPOSE
    else if (a_cs == 1) {  // row-major: VL x VL blocks, transposed so that m[j] is column k + j
      k = pc + (end - pc) / VL * VL;
      for (int v = 0; v < NV; ++v)  // VL rows at a time: VL memory streams, not NV * VL
        for (int64_t k0 = pc; k0 < k; k0 += VL) {
          V m[VL];
#pragma GCC unroll 16
          for (int r = 0; r < VL; ++r) std::memcpy(&m[r], A + (v * VL + r) * a_rs + k0, sizeof(V));
          transpose_tile<Cf>(m, masks);
#pragma GCC unroll 16
          for (int j = 0; j < VL; ++j) acc[v] += m[j] * B[(k0 + j) * b_s];
        }
    }
#endif
    alignas(64) T lane[R];
    std::memcpy(lane, acc, sizeof(acc));
    // What the vector loops left (every k for layouts with neither stride 1), and the stores.
    gemv_finish<T>(R, lane, k, end, alpha, A, a_rs, a_cs, B, b_s, pc == 0 ? beta : T(1), C, c_s);
  }
}

// The tile functions of each instruction set, as for the micro-kernels.
template <class T, int NV>
void gemv_tile_avx2(int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B, int64_t b_s, T beta, T* C,
                    int64_t c_s) {
  gemv_tile_body<T, Avx2<T>, NV>(K, alpha, A, a_rs, a_cs, B, b_s, beta, C, c_s);
}
#if MINIMA_GEMM_AVX512
template <class T, int NV>
__attribute__((target("avx512f,avx512vl,fma,avx2"))) void gemv_tile_avx512(int64_t K, T alpha, const T* A, int64_t a_rs,
                                                                           int64_t a_cs, const T* B, int64_t b_s,
                                                                           T beta, T* C, int64_t c_s) {
  gemv_tile_body<T, Avx512<T>, NV>(K, alpha, A, a_rs, a_cs, B, b_s, beta, C, c_s);
}
#endif

// Rows in tiles of kGemvVecs vectors (in parallel), then of one vector, then one at a time.
constexpr int kGemvVecs = 8;
template <class T>
using GemvTile = void (*)(int64_t, T, const T*, int64_t, int64_t, const T*, int64_t, T, T*, int64_t);
template <class T, class Cf, GemvTile<T> Wide, GemvTile<T> Narrow>
void gemv(int64_t M, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B, int64_t b_s, T beta, T* C,
          int64_t c_s, bool parallel) {
  constexpr int64_t VL = Cf::VL, WR = kGemvVecs * VL;
  const int64_t wide = M / WR;
#pragma omp parallel for schedule(static) if (parallel && wide > 1)
  for (int64_t t = 0; t < wide; ++t) Wide(K, alpha, A + t * WR * a_rs, a_rs, a_cs, B, b_s, beta, C + t * WR * c_s, c_s);
  int64_t i = wide * WR;
  for (; i + VL <= M; i += VL) Narrow(K, alpha, A + i * a_rs, a_rs, a_cs, B, b_s, beta, C + i * c_s, c_s);
  gemv_rows<T, Cf::KC>(M - i, K, alpha, A + i * a_rs, a_rs, a_cs, B, b_s, beta, C + i * c_s, c_s);
}
#endif

GemmIsa detect_isa() {
#if MINIMA_GEMM_AVX512
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return GemmIsa::avx512;
#endif
  return GemmIsa::avx2;
}

GemmIsa initial_isa() {
  GemmIsa best = detect_isa();
  const char* e = std::getenv("MINIMA_CPU_GEMM");
  if (!e || !*e || std::strcmp(e, "auto") == 0) return best;
  if (std::strcmp(e, "avx2") == 0) return GemmIsa::avx2;
  if (std::strcmp(e, "avx512") == 0 && best == GemmIsa::avx512) return GemmIsa::avx512;
  std::fprintf(stderr, "warning: MINIMA_CPU_GEMM=%s is not one of auto, avx2%s; using %s\n", e,
               best == GemmIsa::avx512 ? ", avx512" : "", gemm_isa_name(best));
  return best;
}

std::atomic<GemmIsa>& isa_in_use() {
  static std::atomic<GemmIsa> isa{initial_isa()};
  return isa;
}

}  // namespace

const char* gemm_isa_name(GemmIsa isa) { return isa == GemmIsa::avx512 ? "avx512" : "avx2"; }
bool gemm_isa_supported(GemmIsa isa) { return isa == GemmIsa::avx2 || detect_isa() == GemmIsa::avx512; }
GemmIsa gemm_isa() { return isa_in_use().load(std::memory_order_relaxed); }
void set_gemm_isa(GemmIsa isa) {
  MINIMA_CHECK(gemm_isa_supported(isa), "gemm: this CPU does not support ", gemm_isa_name(isa));
  isa_in_use().store(isa, std::memory_order_relaxed);
}

namespace {

// With no product to add (K = 0 or alpha = 0), C = beta * C, B never read: returns true.
template <class T>
bool scaled_only(int64_t M, int64_t N, int64_t K, T alpha, T beta, T* C, int64_t c_rs, int64_t c_cs) {
  if (K != 0 && alpha != T(0)) return false;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T& c = C[i * c_rs + j * c_cs];
      c = beta == T(0) ? T(0) : beta * c;
    }
  return true;
}

// Below ~64^3 multiply-adds a parallel region costs more than it saves (and on a busy machine a
// descheduled thread stalls every barrier), so small products run on the calling thread.
bool worth_parallel(int64_t M, int64_t N, int64_t K) { return double(M) * double(N) * double(K) >= 262144.0; }

// f(Cf{}, micro) for the instruction set in use: Cf its blocking, micro::value its micro-kernel.
template <class T, class F>
void with_isa(F&& f) {
#if MINIMA_GEMM_AVX512
  if (gemm_isa() == GemmIsa::avx512) {
    f(Avx512<T>{}, std::integral_constant<MicroKernel<T>, micro_kernel_avx512<T>>{});
    return;
  }
#endif
  f(Avx2<T>{}, std::integral_constant<MicroKernel<T>, micro_kernel_avx2<T>>{});
}

}  // namespace

template <class T>
void gemm_strided(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
                  int64_t b_rs, int64_t b_cs, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel) {
  if (M == 0 || N == 0 || scaled_only(M, N, K, alpha, beta, C, c_rs, c_cs)) return;
  parallel = parallel && worth_parallel(M, N, K);
#if defined(__FMA__)
  // One column (or one row: C^T = B^T A^T, and a fused multiply-add does not care which factor
  // comes first) is a matrix-vector product. KC is the same for every instruction set.
  if (N == 1 || M == 1) {
    auto run = [&](auto mv) {
      if (N == 1)
        mv(M, K, alpha, A, a_rs, a_cs, B, b_rs, beta, C, c_rs, parallel);
      else
        mv(N, K, alpha, B, b_cs, b_rs, A, a_cs, beta, C, c_cs, parallel);
    };
#if MINIMA_GEMM_AVX512
    if (gemm_isa() == GemmIsa::avx512) {
      run(gemv<T, Avx512<T>, gemv_tile_avx512<T, kGemvVecs>, gemv_tile_avx512<T, 1>>);
      return;
    }
#endif
    run(gemv<T, Avx2<T>, gemv_tile_avx2<T, kGemvVecs>, gemv_tile_avx2<T, 1>>);
    return;
  }
#endif
  with_isa<T>([&](auto cf, auto micro) {
    gemm_blocked_strided<T, decltype(cf), decltype(micro)::value>(M, N, K, alpha, A, a_rs, a_cs, B, b_rs, b_cs, beta, C,
                                                                  c_rs, c_cs, parallel);
  });
}

template <class T>
void gemm_packed_b(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs,
                   const StripPacker<T>& B, T beta, T* C, int64_t c_rs, int64_t c_cs, bool parallel) {
  if (M == 0 || N == 0 || scaled_only(M, N, K, alpha, beta, C, c_rs, c_cs)) return;
  parallel = parallel && worth_parallel(M, N, K);
  with_isa<T>([&](auto cf, auto micro) {
    using Cf = decltype(cf);
    auto pack_b = [&](int64_t j0, int64_t n, int64_t pc, int64_t kc, T* out) { B(j0, n, pc, kc, Cf::NR, out); };
    gemm_blocked<T, Cf, decltype(micro)::value>(M, N, K, alpha, StridedA<T>{A, a_rs, a_cs}, pack_b, beta, C, c_rs, c_cs,
                                                parallel);
  });
}

namespace {

// Packs all of A [M, K] in WholeA's layout for the instruction set in use, on the threads when it
// is worth it: fill_for(cf) is pack_whole_a's fill for that set's blocking.
template <class T, class MakeFill>
void pack_a_with(PackedA<T>& a, int64_t M, int64_t K, bool parallel, const MakeFill& fill_for) {
  with_isa<T>([&](auto cf, auto) {
    using Cf = decltype(cf);
    a.data.resize(size_t((M + Cf::MR - 1) / Cf::MR * Cf::MR * K));
    a.rows = M, a.depth = K, a.mr = Cf::MR;
    T* const out = a.data.data();
    const auto fill = fill_for(cf);
    // Packing moves memory: worth a second thread from a few hundred thousand values.
#pragma omp parallel if (parallel && M * K >= (int64_t(1) << 16))
    pack_whole_a<T, Cf>(M, K, fill, out);
  });
}

// gemm_prepacked for B packed by pack_b_for(cf)'s packer.
template <class T, class MakePackB>
void gemm_prepacked_with(int64_t N, T alpha, const PackedA<T>& A, T beta, T* C, int64_t c_rs, int64_t c_cs,
                         bool parallel, const MakePackB& pack_b_for) {
  const int64_t M = A.rows, K = A.depth;
  if (M == 0 || N == 0 || scaled_only(M, N, K, alpha, beta, C, c_rs, c_cs)) return;
  parallel = parallel && worth_parallel(M, N, K);
  with_isa<T>([&](auto cf, auto micro) {
    using Cf = decltype(cf);
    MINIMA_CHECK(A.mr == Cf::MR, "gemm: A was packed in strips of ", A.mr, " rows, but the ", gemm_isa_name(gemm_isa()),
                 " micro-kernel takes ", Cf::MR, " (the instruction set changed since pack_a)");
    gemm_blocked<T, Cf, decltype(micro)::value>(M, N, K, alpha, WholeA<T>{A.data.data()}, pack_b_for(cf), beta, C, c_rs,
                                                c_cs, parallel);
  });
}

}  // namespace

template <class T>
void pack_a(PackedA<T>& a, int64_t M, int64_t K, const StripPacker<T>& A, bool parallel) {
  pack_a_with(a, M, K, parallel, [&](auto cf) {
    return [&](int64_t i0, int64_t n, int64_t pc, int64_t kc, T* out) { A(i0, n, pc, kc, decltype(cf)::MR, out); };
  });
}

template <class T>
void pack_a(PackedA<T>& a, int64_t M, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, bool parallel) {
  pack_a_with(a, M, K, parallel, [&](auto cf) {
    return [&, A](int64_t i0, int64_t n, int64_t pc, int64_t kc, T* out) {
      pack_strip<T, decltype(cf)::MR>(n, kc, A + i0 * a_rs + pc * a_cs, a_rs, a_cs, out);
    };
  });
}

template <class T>
void gemm_prepacked(int64_t N, T alpha, const PackedA<T>& A, const StripPacker<T>& B, T beta, T* C, int64_t c_rs,
                    int64_t c_cs, bool parallel) {
  gemm_prepacked_with(N, alpha, A, beta, C, c_rs, c_cs, parallel, [&](auto cf) {
    return [&](int64_t j0, int64_t n, int64_t pc, int64_t kc, T* out) { B(j0, n, pc, kc, decltype(cf)::NR, out); };
  });
}

template <class T>
void gemm_prepacked(int64_t N, T alpha, const PackedA<T>& A, const T* B, int64_t b_rs, int64_t b_cs, T beta, T* C,
                    int64_t c_rs, int64_t c_cs, bool parallel) {
  gemm_prepacked_with(N, alpha, A, beta, C, c_rs, c_cs, parallel, [&](auto cf) {
    return [&, B](int64_t j0, int64_t n, int64_t pc, int64_t kc, T* out) {
      pack_strip<T, decltype(cf)::NR>(n, kc, B + pc * b_rs + j0 * b_cs, b_cs, b_rs, out);
    };
  });
}

namespace {

// The most runs of `run` columns that a vector of vl columns, starting at a multiple of vl, meets.
// Its first column sits at a multiple of g = gcd(vl, run) within a run, at most run - g: from
// there the run ends after g lanes and each later one after run more.
int64_t pieces_per_vector(int64_t run, int64_t vl) {
  const int64_t g = std::gcd(vl, run);
  return g >= vl ? 1 : 2 + (vl - 1 - g) / run;
}

}  // namespace

template <class T>
int64_t gemm_in_place_pieces(int64_t run) {
  int64_t vl = 0;
  with_isa<T>([&](auto cf, auto) { vl = decltype(cf)::VL; });
  return run >= 1 ? pieces_per_vector(run, vl) : 0;
}

// Reading a vector in P pieces costs P - 1 blends per row of the strip, for each strip of A, where
// packing the strip costs a few moves per row once. Single-thread timings of stride-1 3x3 layers
// (batch 128, old and new builds alternating) put the break-even near eight strips' blends:
// in two pieces, 14x14 32->64 took 0.86x the packed time for the forward (6 strips of A) and
// 0.72x for the input gradient (3 strips), but 8x8 256->256 (22 strips) 1.1x; in three pieces,
// 10x10 64->64 (12 blends) about the same as packed.
constexpr int64_t kBlendsPerPack = 8;

template <class T>
bool gemm_in_place_pays(int64_t M, int64_t run) {
  bool pays = false;
  with_isa<T>([&](auto cf, auto) {
    using Cf = decltype(cf);
    const int64_t pieces = run >= 1 ? pieces_per_vector(run, Cf::VL) : 0, strips = (M + Cf::MR - 1) / Cf::MR;
    pays = pieces == 1 || (pieces >= 2 && pieces <= kInPlaceMaxPieces && strips * (pieces - 1) <= kBlendsPerPack);
  });
  return pays;
}

// No B strip is packed: each micro-kernel call reads its vectors from B's rows where they lie,
// each vector in as many pieces as runs it meets (see StripInPlace; a strip's kernel takes the
// most that any of its vectors needs). With all of A small enough to stay in L2 (as in
// gemm_short_m), each thread runs its strips one at a time through every K block; otherwise the
// K blocks are the outer loop, so that one block of A stays there while every strip passes it.
// Either way each element of C is summed over the same K blocks in the same order with the same
// epilogues as in gemm_blocked, and each vector holds the values a packed strip would: bitwise
// gemm_prepacked's result.
template <class T>
void gemm_in_place(int64_t N, T alpha, const PackedA<T>& A, const InPlaceB<T>& B, T beta, T* C, int64_t c_rs,
                   int64_t c_cs, bool parallel) {
  const int64_t M = A.rows, K = A.depth;
  if (M == 0 || N == 0 || scaled_only(M, N, K, alpha, beta, C, c_rs, c_cs)) return;
  parallel = parallel && worth_parallel(M, N, K);
  with_isa<T>([&](auto cf, auto) {
    using Cf = decltype(cf);
    constexpr int MR = Cf::MR, NR = Cf::NR, VL = Cf::VL, NV = NR / VL;
    MINIMA_CHECK(A.mr == MR, "gemm_in_place: A was packed for another instruction set than ",
                 gemm_isa_name(gemm_isa()));
    MINIMA_CHECK(B.run >= 1 && B.runs >= 1 && pieces_per_vector(B.run, VL) <= kInPlaceMaxPieces,
                 "gemm_in_place: runs of ", B.run, " columns take more than ", kInPlaceMaxPieces,
                 " pieces a vector of ", VL);
    const int64_t m_strips = (M + MR - 1) / MR, n_strips = (N + NR - 1) / NR;
    const bool a_stays = double(m_strips * MR) * double(K) * sizeof(T) <= double(kShortMBytes);
    const int64_t group = B.run * B.runs;
    auto place = [&](int64_t j) {
      return B.src + j / group * B.group_step + j % group / B.run * B.run_step + j % B.run;
    };
    // Strip s's vectors: each one's pieces, the same for every K block.
    auto prepare = [&](int64_t s, InPlaceVectors<T, Cf>& d) {
      const int64_t j0 = s * NR, nr = std::min<int64_t>(NR, N - j0);
      d.pieces = 1;
      for (int v = 0; v < NV; ++v) {
        int n = 0;
        if (v * VL < nr) {
          // A piece from each column that starts a run, or the vector; lanes past N read on past
          // the last run's end and are never stored.
          for (int64_t lane = 0; lane < VL && j0 + v * VL + lane < N; ++n) {
            const int64_t j = j0 + v * VL + lane;
            d.first[v][n] = place(j) - lane;
            for (int i = 0; i < VL; ++i) d.take[v][n][i] = i >= lane ? -1 : 0;
            lane += B.run - j % B.run;
          }
        } else {  // past nr: vector 0's first piece, never stored
          d.first[v][n++] = d.first[0][0];
        }
        d.pieces = std::max(d.pieces, n);
        for (; n < kInPlaceMaxPieces; ++n) d.first[v][n] = d.first[v][0], d.take[v][n] = typename Cf::I{};
      }
    };
    // Strip s times K block pc of every strip of A.
    auto multiply = [&](const InPlaceVectors<T, Cf>& d, int64_t s, int64_t pc) {
      const int64_t j0 = s * NR, nr = std::min<int64_t>(NR, N - j0), kc = std::min<int64_t>(Cf::KC, K - pc);
      auto run = [&](auto p) {
        const StripInPlace<T, Cf, decltype(p)::value> b{&d, B.rows + pc};
        for (int64_t r = 0; r < m_strips; ++r)
          in_place_kernel<T, Cf>(kc, A.data.data() + (r * K + pc) * MR, b, alpha, pc == 0 ? beta : T(1),
                                 C + r * MR * c_rs + j0 * c_cs, c_rs, c_cs, std::min<int64_t>(MR, M - r * MR), nr);
      };
      if (d.pieces == 1)
        run(std::integral_constant<int, 1>{});
      else if (d.pieces == 2)
        run(std::integral_constant<int, 2>{});
      else
        run(std::integral_constant<int, 3>{});
    };
#pragma omp parallel if (parallel)
    {
      InPlaceVectors<T, Cf> d;
      if (a_stays) {
#pragma omp for schedule(static)
        for (int64_t s = 0; s < n_strips; ++s) {
          prepare(s, d);
          for (int64_t pc = 0; pc < K; pc += Cf::KC) multiply(d, s, pc);
        }
      } else {
        // A static schedule gives each thread the same strips in every round: no barrier needed.
        // (A's blocks are deep here, so preparing a strip again per block costs little.)
        for (int64_t pc = 0; pc < K; pc += Cf::KC) {
#pragma omp for schedule(static) nowait
          for (int64_t s = 0; s < n_strips; ++s) {
            prepare(s, d);
            multiply(d, s, pc);
          }
        }
      }
    }
  });
}

template <class T>
void pack_b(PackedB<T>& b, int64_t K, int64_t N, const StripPacker<T>& B, bool parallel) {
  with_isa<T>([&](auto cf, auto) {
    constexpr int NR = decltype(cf)::NR;
    const int64_t strips = (N + NR - 1) / NR;
    b.data.resize(size_t(strips * K * NR));
    b.depth = K, b.cols = N, b.nr = NR;
    T* const out = b.data.data();
#pragma omp parallel for schedule(static) if (parallel && strips > 1 && K * N >= (int64_t(1) << 16))
    for (int64_t s = 0; s < strips; ++s) B(s * NR, std::min<int64_t>(NR, N - s * NR), 0, K, NR, out + s * K * NR);
  });
}

// The runs are cut where K blocks of gemm_blocked (KC columns of A) begin, so that each block's
// sum is started afresh and added to C as there. Each (shift, B strip) pair writes its own
// columns of C, so the pairs are shared out between the threads; each runs every K block over
// every A strip.
template <class T>
void gemm_row_runs(const PackedA<T>& A, const PackedB<T>& B, const RowRun* runs, int64_t n_runs, int64_t step,
                   const int64_t* shifts, int64_t n_shifts, T* C, int64_t c_rs, int64_t c_shift, bool parallel) {
  const int64_t M = A.rows, K = A.depth, N = B.cols;
  if (M == 0 || N == 0 || K == 0 || n_shifts == 0) return;
  MINIMA_CHECK(step >= 1, "gemm_row_runs: step ", step, " must be at least 1");
  MINIMA_CHECK(n_shifts == 1 || c_shift >= N, "gemm_row_runs: the shifts' columns of C overlap");
  int64_t lo = 0, hi = 0;  // the lowest and highest shift
  for (int64_t s = 0; s < n_shifts; ++s) lo = std::min(lo, shifts[s]), hi = std::max(hi, shifts[s]);
  int64_t covered = 0;
  for (int64_t r = 0; r < n_runs; ++r) {
    const RowRun& run = runs[r];
    MINIMA_CHECK(run.k == covered && run.len >= 1, "gemm_row_runs: run ", r, " covers A's columns [", run.k, ", ",
                 run.k + run.len, "), but the runs so far end at ", covered);
    MINIMA_CHECK(run.row + lo >= 0 && run.row + (run.len - 1) * step + hi < B.depth, "gemm_row_runs: run ", r,
                 " reads rows outside B's ", B.depth);
    covered += run.len;
  }
  MINIMA_CHECK(covered == K, "gemm_row_runs: the runs cover ", covered, " of A's ", K, " columns");
  parallel = parallel && worth_parallel(M, N * n_shifts, K);
  with_isa<T>([&](auto cf, auto) {
    using Cf = decltype(cf);
    constexpr int MR = Cf::MR, NR = Cf::NR;
    MINIMA_CHECK(A.mr == MR && B.nr == NR, "gemm_row_runs: operands packed for another instruction set than ",
                 gemm_isa_name(gemm_isa()));
    // The runs of each K block, cut at its edges: block b's are cut[first[b]] .. cut[first[b + 1]].
    std::vector<RowRun> cut;
    std::vector<int64_t> first;
    for (int64_t r = 0; r < n_runs; ++r)
      for (int64_t t = 0; t < runs[r].len;) {
        const int64_t k = runs[r].k + t, len = std::min(runs[r].len - t, Cf::KC - k % Cf::KC);
        if (k % Cf::KC == 0) first.push_back(int64_t(cut.size()));
        cut.push_back(RowRun{k, len, runs[r].row + t * step});
        t += len;
      }
    first.push_back(int64_t(cut.size()));
    const int64_t m_strips = (M + MR - 1) / MR, n_strips = (N + NR - 1) / NR, blocks = int64_t(first.size()) - 1;
    const T* const Ap = A.data.data();
    const T* const Bp = B.data.data();
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t it = 0; it < n_shifts * n_strips; ++it) {
      const int64_t s = it / n_strips, j0 = it % n_strips * NR, nr = std::min<int64_t>(NR, N - j0);
      const T* strip = Bp + (j0 / NR * B.depth + shifts[s]) * NR;
      T* c = C + s * c_shift + j0;
      for (int64_t b = 0; b < blocks; ++b) {
        const RowRun* block = cut.data() + first[size_t(b)];
        const int64_t n = first[size_t(b) + 1] - first[size_t(b)], pc = b * Cf::KC;
        for (int64_t r = 0; r < m_strips; ++r)
          runs_kernel<T, Cf>(block, n, step, Ap + (r * K + pc) * MR, strip, c + r * MR * c_rs, c_rs,
                             std::min<int64_t>(MR, M - r * MR), nr);
      }
    }
  });
}

template <class T>
void transpose_lines(int64_t rows, int64_t cols, const T* src, int64_t src_ls, T* dst, int64_t dst_ls) {
  transpose_into(rows, cols, src, src_ls, dst, dst_ls);
}

template void gemm_strided<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                                  int64_t, int64_t, float, float*, int64_t, int64_t, bool);
template void gemm_strided<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t, const double*,
                                   int64_t, int64_t, double, double*, int64_t, int64_t, bool);
template void gemm_packed_b<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                                   const StripPacker<float>&, float, float*, int64_t, int64_t, bool);
template void gemm_packed_b<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                                    const StripPacker<double>&, double, double*, int64_t, int64_t, bool);
template void pack_a<float>(PackedA<float>&, int64_t, int64_t, const StripPacker<float>&, bool);
template void pack_a<double>(PackedA<double>&, int64_t, int64_t, const StripPacker<double>&, bool);
template void pack_a<float>(PackedA<float>&, int64_t, int64_t, const float*, int64_t, int64_t, bool);
template void pack_a<double>(PackedA<double>&, int64_t, int64_t, const double*, int64_t, int64_t, bool);
template void gemm_prepacked<float>(int64_t, float, const PackedA<float>&, const StripPacker<float>&, float, float*,
                                    int64_t, int64_t, bool);
template void gemm_prepacked<double>(int64_t, double, const PackedA<double>&, const StripPacker<double>&, double,
                                     double*, int64_t, int64_t, bool);
template void gemm_prepacked<float>(int64_t, float, const PackedA<float>&, const float*, int64_t, int64_t, float,
                                    float*, int64_t, int64_t, bool);
template void gemm_prepacked<double>(int64_t, double, const PackedA<double>&, const double*, int64_t, int64_t, double,
                                     double*, int64_t, int64_t, bool);
template int64_t gemm_in_place_pieces<float>(int64_t);
template int64_t gemm_in_place_pieces<double>(int64_t);
template bool gemm_in_place_pays<float>(int64_t, int64_t);
template bool gemm_in_place_pays<double>(int64_t, int64_t);
template void gemm_in_place<float>(int64_t, float, const PackedA<float>&, const InPlaceB<float>&, float, float*,
                                   int64_t, int64_t, bool);
template void gemm_in_place<double>(int64_t, double, const PackedA<double>&, const InPlaceB<double>&, double, double*,
                                    int64_t, int64_t, bool);
template void pack_b<float>(PackedB<float>&, int64_t, int64_t, const StripPacker<float>&, bool);
template void pack_b<double>(PackedB<double>&, int64_t, int64_t, const StripPacker<double>&, bool);
template void gemm_row_runs<float>(const PackedA<float>&, const PackedB<float>&, const RowRun*, int64_t, int64_t,
                                   const int64_t*, int64_t, float*, int64_t, int64_t, bool);
template void gemm_row_runs<double>(const PackedA<double>&, const PackedB<double>&, const RowRun*, int64_t, int64_t,
                                    const int64_t*, int64_t, double*, int64_t, int64_t, bool);
template void transpose_lines<float>(int64_t, int64_t, const float*, int64_t, float*, int64_t);
template void transpose_lines<double>(int64_t, int64_t, const double*, int64_t, double*, int64_t);

void CpuBackend::gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) {
  MINIMA_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "gemm: expected rank-3 operands");
  if (c.dtype() == DType::bf16) {
    // bf16 storage: compute in f32, round once on the way out.
    Tensor cf = c.to(DType::f32);
    gemm(cf, a.to(DType::f32), b.to(DType::f32), alpha, beta);
    copy(c, cf);
    return;
  }
  int64_t Bn = c.size(0), M = c.size(1), N = c.size(2), K = a.size(2);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* cp = c.data<T>();
    // Many small products: one per thread. Otherwise: one at a time, parallel inside.
    bool batch_parallel = Bn >= omp_get_max_threads() && M * N * K < (1 << 21);
    auto one = [&](int64_t i, bool par) {
      gemm_strided<T>(M, N, K, T(alpha), ap + i * a.stride(0), a.stride(1), a.stride(2), bp + i * b.stride(0),
                      b.stride(1), b.stride(2), T(beta), cp + i * c.stride(0), c.stride(1), c.stride(2), par);
    };
    if (batch_parallel) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < Bn; ++i) one(i, false);
    } else {
      for (int64_t i = 0; i < Bn; ++i) one(i, true);
    }
  };
  MINIMA_CHECK(c.dtype() == DType::f32 || c.dtype() == DType::f64, "gemm: unsupported dtype ", c.dtype());
  if (c.dtype() == DType::f32)
    run(float{});
  else
    run(double{});
}

}  // namespace minima::cpu
