// kernels/cpu/exp.h: the CPU's exponential of float32 values, vectorized. Each value's
// exponential is worked out in double, to a relative error near 1e-16, and rounded once to float:
// for every one of the 2^32 floats the result equals the C library's double exp rounded to float
// (checked over all of them; docs/internals.md). The C library's expf, called value by value, ran
// at a quarter of PyTorch's (vectorized) speed, and differs from that rounding on 170,648 floats.
//
// The method, for t = x - shift (rounded to float first, as a float subtraction would be):
//   z = t * log2(e), carried in two doubles (the product and its rounding error, by an FMA);
//   k = z rounded to the nearest integer, r = z - k, so |r| <= 1/2 and exp(t) = 2^k * 2^r;
//   2^r by a degree-10 polynomial (a Chebyshev fit on [-1/2, 1/2], relative error 3e-16);
//   2^k by writing k + 1023 into a double's exponent field; one multiply puts them together.
// t is clamped to [-104, 89] first: exp(89) overflows float and exp(-104) rounds to 0, so the
// clamp changes no result and keeps k inside double's exponent range. NaN passes through.
#pragma once
#include <cstdint>

namespace minima::cpu {

// y[i] = exp(x[i] - shift) for i < n. x and y may be the same array.
void exp_f32(const float* x, float shift, float* y, int64_t n);

// The same arithmetic written with std::fma instead of vector instructions: what a build without
// AVX2 and FMA runs, and what the tests check the vector code against, bit for bit.
float exp_f32_portable(float x);

}  // namespace minima::cpu
