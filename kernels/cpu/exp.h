// kernels/cpu/exp.h: the CPU's exponential of float32 values, vectorized. Each value's
// exponential is worked out in double, to a relative error under 2.5e-16, and rounded once to float:
// for every one of the 2^32 floats the result equals the C library's double exp rounded to float
// (the skipped test "exp of every float32" checks all of them). The C library's expf, called
// value by value, ran at a quarter of PyTorch's (vectorized) speed, and differs from that
// rounding on 170,648 floats.
//
// The method, for t = x - shift (rounded to float first, as a float subtraction would be):
//   t is clamped to [-104, 89]: exp(89) overflows float and exp(-104) rounds to 0, so the clamp
//   changes no result and keeps what follows inside double's range. NaN passes through.
//   k = t * 16/ln(2) rounded to the nearest integer, and r = t - k * ln(2)/16 with ln(2)/16
//   carried in two doubles (two FMAs), so |r| <= ln(2)/32 and exp(t) = 2^(k/16) * exp(r);
//   2^(k/16) = 2^m * 2^(j/16) for k = 16m + j: a table of the 16 values 2^(j/16) (one permute of
//   two registers looks up eight of them with AVX-512), with m added into the exponent field;
//   exp(r) - 1 = r * h(r), h a degree-5 polynomial fitted at Chebyshev nodes (1 + r h(r) is
//   within 2.8e-17 of exp(r)); the result is 2^(k/16) + 2^(k/16) * (exp(r) - 1), one FMA.
#pragma once
#include <cstdint>

namespace minima::cpu {

// y[i] = exp(x[i] - shift) for i < n. x and y may be the same array.
void exp_f32(const float* x, float shift, float* y, int64_t n);

// The same arithmetic written with std::fma instead of vector instructions: what a build without
// AVX2 and FMA runs, and what the tests check the vector code against, bit for bit.
float exp_f32_portable(float x);

}  // namespace minima::cpu
