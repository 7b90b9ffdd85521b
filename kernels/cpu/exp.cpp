// kernels/cpu/exp.cpp: exp of float32 values (kernels/cpu/exp.h has the method). Built with
// -ffp-contract=off: every FMA here is written out, so the vector and the portable code do the
// same roundings and agree bitwise (a contracted z + kShifter would round k differently).
#include "kernels/cpu/exp.h"

#include <cmath>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
// GCC 12's AVX-512 conversions fill their unused pass-through operand from a variable it then
// reports as maybe uninitialized: a known false alarm in its own header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/cpu/cpu_backend.h"  // gemm_isa(): AVX-512 or AVX2, chosen once for every kernel
#endif

namespace minima::cpu {

namespace {

constexpr double kLog2e = 0x1.71547652b82fep+0;     // log2(e) rounded to double
constexpr double kLog2eLo = 0x1.777d0ffda0d24p-56;  // log2(e) - kLog2e
// Adding 1.5 * 2^52 to a double of magnitude below 2^51 leaves its integer part, rounded to the
// nearest (ties to even), in the low bits of the sum: the sum's unit in the last place is 1.
constexpr double kShifter = 0x1.8p52;
constexpr double kClampLo = -104.0;  // exp(-104) = 6.8e-46, under half the least float: rounds to 0
constexpr double kClampHi = 89.0;    // exp(89) = 4.5e38, above the largest float: rounds to inf

// 2^r on [-1/2, 1/2]: the polynomial through 2^r at the 11 Chebyshev nodes of that interval,
// worked out in 40-digit arithmetic and rounded to double. Its largest relative error there is
// 3.1e-16, and c[0] is exactly 1.
constexpr double kPoly[11] = {
    0x1.0000000000000p+0,  0x1.62e42fefa3a19p-1,  0x1.ebfbdff82c598p-3,  0x1.c6b08d703ce49p-5,
    0x1.3b2ab6fba1ddap-7,  0x1.5d87fe9d7a584p-10, 0x1.430913096fd9fp-13, 0x1.ffcb54062e698p-17,
    0x1.62bfd47773353p-20, 0x1.b675bca4eeebbp-24, 0x1.e6063f7217bc6p-28,
};

// The whole method, once for every width: V is a double or a GCC vector of them, U the unsigned
// integers of the same width, t the value(s), replaced by their exponentials. Ops gives
// fma(acc, a, b), acc = a * b + acc rounded once, and clamp(t), t held to [kClampLo, kClampHi]
// with NaN passed through. Nothing else rounds differently between widths, so the scalar and
// the vector forms agree bit for bit. Vectors go by reference: a function that takes or returns a
// 64-byte vector by value, compiled without AVX-512, would pass it in another way than its
// AVX-512 caller expects. (V{} + c, c in every lane, folds to a constant once the loops unroll.)
template <class V, class U, class Ops>
__attribute__((always_inline)) inline void exp_body(V& t, const Ops& ops) {
  ops.clamp(t);
  const V z = t * (V{} + kLog2e);
  V lo = -z;
  ops.fma(lo, t, V{} + kLog2e);    // t * kLog2e - z: the rounding error of z
  ops.fma(lo, t, V{} + kLog2eLo);  // the rest of t * log2(e)
  const V shifted = z + kShifter;
  const V k = shifted - kShifter;
  const V r = (z - k) + lo;  // z - k is exact
  V p = V{} + kPoly[10];
#pragma GCC unroll 10
  for (int i = 9; i >= 0; --i) {
    V q = V{} + kPoly[i];
    ops.fma(q, p, r);
    p = q;
  }
  U bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  // The low bits of `shifted` are k in two's complement; k + 1023 (in 872..1152) is 2^k's
  // biased exponent, and the shift drops everything above it.
  const U scale_bits = (bits + 1023) << 52;
  V scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  t = p * scale;
}

// t held to [kClampLo, kClampHi] as x86's max and min do: a > b ? a : b gives b when either is NaN.
template <class V>
__attribute__((always_inline)) inline void clamp_by_compares(V& t) {
  const V lo = V{} + kClampLo, hi = V{} + kClampHi;
  t = lo > t ? lo : t;
  t = hi < t ? hi : t;
}

struct ScalarOps {
  void fma(double& acc, double a, double b) const { acc = std::fma(a, b, acc); }
  void clamp(double& t) const { clamp_by_compares(t); }
};

}  // namespace

float exp_f32_portable(float x) {
  double t = x;
  exp_body<double, uint64_t>(t, ScalarOps{});
  return float(t);
}

#if defined(__AVX2__) && defined(__FMA__)

namespace {

typedef double V4 __attribute__((vector_size(32)));
typedef uint64_t U4 __attribute__((vector_size(32)));
typedef double V8 __attribute__((vector_size(64)));
typedef uint64_t U8 __attribute__((vector_size(64)));

// fma lane by lane: each lane is one exact fused multiply-add, so the result is the same however
// the compiler emits it, and inlined into the AVX2 or AVX-512 functions below it becomes one
// vector FMA instruction. (An AVX-512 intrinsic would not do: code compiled for AVX-512 cannot be
// inlined into this generic code.)
template <class V>
__attribute__((always_inline)) inline void lane_fma(V& acc, const V& a, const V& b) {
  for (int i = 0; i < int(sizeof(V) / sizeof(double)); ++i) acc[i] = std::fma(a[i], b[i], acc[i]);
}

struct Avx2Ops {
  __attribute__((always_inline)) void fma(V4& acc, const V4& a, const V4& b) const { lane_fma(acc, a, b); }
  // max and min themselves, one instruction each (the compares would become compare-and-blend).
  __attribute__((always_inline)) void clamp(V4& t) const {
    t = V4(_mm256_min_pd(_mm256_set1_pd(kClampHi), _mm256_max_pd(_mm256_set1_pd(kClampLo), __m256d(t))));
  }
};

// (An AVX-512 max would be an intrinsic compiled for AVX-512 too; the compares become a compare
// into a mask and a masked move, one instruction more.)
struct Avx512Ops {
  __attribute__((always_inline)) void fma(V8& acc, const V8& a, const V8& b) const { lane_fma(acc, a, b); }
  __attribute__((always_inline)) void clamp(V8& t) const { clamp_by_compares(t); }
};

// exp of four doubles, each a float widened.
inline __m256d exp_pd(__m256d t) {
  V4 v = V4(t);
  exp_body<V4, U4>(v, Avx2Ops{});
  return __m256d(v);
}

// exp of eight floats.
inline __m256 exp_ps(__m256 t) {
  const __m128 low = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(t))));
  const __m128 high = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(t, 1))));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(low), high, 1);
}

#define MINIMA_AVX512 __attribute__((target("avx512f,avx512vl,fma,avx2")))

// The same with eight doubles a vector, for CPUs with AVX-512 (twice the values an instruction).
MINIMA_AVX512 inline __m512d exp_pd512(__m512d t) {
  V8 v = V8(t);
  exp_body<V8, U8>(v, Avx512Ops{});
  return __m512d(v);
}

MINIMA_AVX512 inline __m512 exp_ps512(__m512 t) {
  const __m512d halves = _mm512_castps_pd(t);  // (AVX-512F moves 256-bit halves as doubles)
  const __m256 low = _mm512_cvtpd_ps(exp_pd512(_mm512_cvtps_pd(_mm512_castps512_ps256(t))));
  const __m256 high = _mm512_cvtpd_ps(exp_pd512(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(halves, 1)))));
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(low)), _mm256_castps_pd(high), 1));
}

MINIMA_AVX512 void exp_f32_avx512(const float* x, float shift, float* y, int64_t n) {
  const __m512 s = _mm512_set1_ps(shift);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp_ps512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)));
  if (i < n) {
    const __mmask16 mask = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask, exp_ps512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), s)));
  }
}

}  // namespace

void exp_f32(const float* x, float shift, float* y, int64_t n) {
  if (gemm_isa() == GemmIsa::avx512) {
    exp_f32_avx512(x, shift, y, n);
    return;
  }
  const __m256 s = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
  if (i < n) {  // the last 1-7 values, through masked loads and stores that touch nothing beyond n
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(y + i, mask, exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), s)));
  }
}

#else

void exp_f32(const float* x, float shift, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f32_portable(x[i] - shift);
}

#endif

}  // namespace minima::cpu
