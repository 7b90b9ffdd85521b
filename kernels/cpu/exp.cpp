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

constexpr float kClampLo = -104.0f;  // exp(-104) = 6.8e-46, under half the least float: rounds to 0
constexpr float kClampHi = 89.0f;    // exp(89) = 4.5e38, above the largest float: rounds to inf

constexpr double kSixteenOverLn2 = 0x1.71547652b82fep+4;     // 16 / ln(2) rounded to double
constexpr double kLn2OverSixteenHi = 0x1.62e42fefa39efp-5;   // ln(2) / 16 rounded to double
constexpr double kLn2OverSixteenLo = 0x1.abc9e3b39803fp-60;  // ln(2) / 16 - kLn2OverSixteenHi
// Adding 1.5 * 2^52 to a double of magnitude below 2^51 leaves its integer part, rounded to the
// nearest (ties to even), in the low bits of the sum: the sum's unit in the last place is 1.
constexpr double kShifter = 0x1.8p52;

// 2^(j/16) for j = 0..15, each rounded to the nearest double (worked out in 113-bit arithmetic).
alignas(64) constexpr double kExp2Sixteenths[16] = {
    0x1p+0,
    0x1.0b5586cf9890fp+0,
    0x1.172b83c7d517bp+0,
    0x1.2387a6e756238p+0,
    0x1.306fe0a31b715p+0,
    0x1.3dea64c123422p+0,
    0x1.4bfdad5362a27p+0,
    0x1.5ab07dd485429p+0,
    0x1.6a09e667f3bcdp+0,
    0x1.7a11473eb0187p+0,
    0x1.8ace5422aa0dbp+0,
    0x1.9c49182a3f09p+0,
    0x1.ae89f995ad3adp+0,
    0x1.c199bdd85529cp+0,
    0x1.d5818dcfba487p+0,
    0x1.ea4afa2a490dap+0,
};

// exp(r) = 1 + r * h(r) on |r| <= ln(2)/32, h(r) = 1 + r/2 + r^2/6 + ...: the degree-5 polynomial
// below with kPoly[0] = 1 exactly, the rest the interpolant of (h(r) - 1) / r at the 5 Chebyshev
// nodes of the interval, worked out in 113-bit arithmetic and rounded to double. 1 + r * h(r)
// from these coefficients is within 2.8e-17 of exp(r) there, relatively.
constexpr double kPoly[6] = {
    1.0, 0x1p-1, 0x1.55555554dd44dp-3, 0x1.55555555194d2p-5, 0x1.11120af701debp-7, 0x1.6c17bb51f236dp-10,
};

// The method, once for every width, in two halves around the table lookup (which each width does
// with its own instruction): V is a double or a GCC vector of them, U the unsigned integers of
// the same width. Ops gives fma(acc, a, b), acc = a * b + acc rounded once. Nothing else rounds
// differently between widths, so the scalar and the vector forms agree bit for bit. Vectors go
// by reference: a function that takes or returns a 64-byte vector by value, compiled without
// AVX-512, would pass it in another way than its AVX-512 caller expects. (V{} + c, c in every
// lane, folds to a constant once the loops unroll.)
//
// exp_reduce: t (a float widened, clamped to [kClampLo, kClampHi]) = k * ln(2)/16 + r with k the
// integer nearest t * 16/ln(2) and |r| <= ln(2)/32 (to within rounding); `bits` holds k in its
// low bits, two's complement.
template <class V, class U, class Ops>
__attribute__((always_inline)) inline void exp_reduce(const V& t, V& r, U& bits, const Ops& ops) {
  const V shifted = t * (V{} + kSixteenOverLn2) + kShifter;
  const V k = shifted - kShifter;
  r = t;
  ops.fma(r, k, V{} - kLn2OverSixteenHi);  // t - k * hi, rounded once: |r| is small, so its error is
  ops.fma(r, k, V{} - kLn2OverSixteenLo);  // tiny beside it; then the rest of k * ln(2)/16
  std::memcpy(&bits, &shifted, sizeof bits);
}

// exp_finish: with table = 2^(j/16) for j = k mod 16 (the low four bits of `bits`), t becomes
// exp(t) = 2^m * 2^(j/16) * exp(r), m = floor(k / 16).
template <class V, class U, class Ops>
__attribute__((always_inline)) inline void exp_finish(V& t, const V& r, const U& bits, const V& table, const Ops& ops) {
  V h = V{} + kPoly[5];
#pragma GCC unroll 5
  for (int i = 4; i >= 0; --i) {
    V q = V{} + kPoly[i];
    ops.fma(q, h, r);
    h = q;
  }
  const V expm1_r = h * r;  // exp(r) - 1, at most 0.022 in size
  // 2^m * 2^(j/16): m added into the table value's exponent field. `bits` is the shifter's bit
  // pattern plus k, and the shifter's low 16 bits are zero, so bits >> 4 is that pattern / 16 plus
  // m (the shift rounds k down, as floor does), and its low 12 bits are m's alone. The shift left
  // by 52 keeps just those, and the 64-bit sum carries them into the exponent field: m in
  // [-151, 128] keeps the exponent inside double's normal range.
  U table_bits;
  std::memcpy(&table_bits, &table, sizeof table_bits);
  const U scale_bits = table_bits + ((bits >> 4) << 52);
  V scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  t = scale;
  ops.fma(t, scale, expm1_r);  // scale + scale * (exp(r) - 1), rounded once
}

template <class T>
__attribute__((always_inline)) inline T clamp_by_compares(T t, T lo, T hi) {
  t = lo > t ? lo : t;  // as x86's max and min do: a > b ? a : b gives b when either is NaN
  return hi < t ? hi : t;
}

struct ScalarOps {
  void fma(double& acc, double a, double b) const { acc = std::fma(a, b, acc); }
};

}  // namespace

float exp_f32_portable(float x) {
  const double t = clamp_by_compares(x, kClampLo, kClampHi);
  double r;
  uint64_t bits;
  exp_reduce(t, r, bits, ScalarOps{});
  double y;
  exp_finish(y, r, bits, kExp2Sixteenths[bits & 15], ScalarOps{});
  return float(y);
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
struct LaneOps {
  template <class V>
  __attribute__((always_inline)) void fma(V& acc, const V& a, const V& b) const {
    for (int i = 0; i < int(sizeof(V) / sizeof(double)); ++i) acc[i] = std::fma(a[i], b[i], acc[i]);
  }
};

// exp of four doubles, each a float widened and clamped; the table lookup is a gather.
inline __m256d exp_pd(__m256d x) {
  const V4 t = V4(x);
  V4 r;
  U4 bits;
  exp_reduce(t, r, bits, LaneOps{});
  const __m256i j = _mm256_and_si256(__m256i(bits), _mm256_set1_epi64x(15));
  const V4 table = V4(_mm256_i64gather_pd(kExp2Sixteenths, j, sizeof(double)));
  V4 y;
  exp_finish(y, r, bits, table, LaneOps{});
  return __m256d(y);
}

// exp of eight floats.
inline __m256 exp_ps(__m256 t) {
  t = _mm256_min_ps(_mm256_set1_ps(kClampHi), _mm256_max_ps(_mm256_set1_ps(kClampLo), t));
  const __m128 low = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(t))));
  const __m128 high = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(t, 1))));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(low), high, 1);
}

#define MINIMA_AVX512 __attribute__((target("avx512f,avx512vl,fma,avx2")))

// The same with eight doubles a vector, for CPUs with AVX-512 (twice the values an instruction);
// the whole table fits in two registers, and one two-source permute looks up eight values.
MINIMA_AVX512 inline __m512d exp_pd512(__m512d x) {
  const V8 t = V8(x);
  V8 r;
  U8 bits;
  exp_reduce(t, r, bits, LaneOps{});
  // The permute reads the low four bits of each index: k mod 16.
  const V8 table =
      V8(_mm512_permutex2var_pd(_mm512_load_pd(kExp2Sixteenths), __m512i(bits), _mm512_load_pd(kExp2Sixteenths + 8)));
  V8 y;
  exp_finish(y, r, bits, table, LaneOps{});
  return __m512d(y);
}

MINIMA_AVX512 inline __m512 exp_ps512(__m512 t) {
  t = _mm512_min_ps(_mm512_set1_ps(kClampHi), _mm512_max_ps(_mm512_set1_ps(kClampLo), t));
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
