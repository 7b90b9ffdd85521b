// core/dtype.h: element types (f32, f64, bf16, i64, u8), bfloat16 conversions and type promotion.
// bf16 rounds to nearest even on conversion from float, as the hardware does.
#pragma once
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <type_traits>

#include "core/error.h"

#if defined(__CUDACC__)
#define MINIMA_HD __host__ __device__ __forceinline__
#else
#define MINIMA_HD inline
#endif

namespace minima {

enum class DType : uint8_t { f32, f64, bf16, i64, u8 };

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  MINIMA_HD explicit bf16(float f) : bits(from_float(f)) {}
  MINIMA_HD operator float() const { return to_float(bits); }
  MINIMA_HD static uint16_t from_float(float f) {
    uint32_t u;
#if defined(__CUDA_ARCH__)
    u = __float_as_uint(f);
#else
    std::memcpy(&u, &f, 4);
#endif
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return uint16_t(u >> 16);
  }
  MINIMA_HD static float to_float(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
  }
};

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::bf16: return "bfloat16";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
  }
  return "?";
}
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16; }
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// Result type of a binary op: floats beat integers, wider floats beat narrower ones.
inline DType promote(DType a, DType b) {
  if (a == b) return a;
  auto rank = [](DType t) {
    switch (t) {
      case DType::u8: return 0;
      case DType::i64: return 1;
      case DType::bf16: return 2;
      case DType::f32: return 3;
      case DType::f64: return 4;
    }
    return 0;
  };
  return rank(a) >= rank(b) ? a : b;
}

// A table, one line per element type:
// clang-format off
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
// clang-format on

// Arithmetic type used to compute on an element type (bf16 computes in float).
template <class T>
struct acc_type {
  using type = T;
};
template <>
struct acc_type<bf16> {
  using type = float;
};
template <>
struct acc_type<uint8_t> {
  using type = int64_t;
};

// A double as an int64, the way x86's conversion instruction (and so PyTorch on it) gives one:
// truncated toward zero, and INT64_MIN for NaN and for values outside int64's range, where a
// plain C++ conversion is undefined behaviour (and CUDA's saturates). Narrower integer types
// take the low bits of this int64, on both backends.
MINIMA_HD int64_t double_to_int64(double v) { return (v >= -0x1p63 && v < 0x1p63) ? int64_t(v) : INT64_MIN; }

// Integer arithmetic modulo 2^64, as every integer op here promises (PyTorch's integer tensors
// wrap the same way): computed in uint64_t, where overflow is defined, not in int64_t, where it
// is undefined behaviour.
MINIMA_HD int64_t wrap_add(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }
MINIMA_HD int64_t wrap_sub(int64_t a, int64_t b) { return int64_t(uint64_t(a) - uint64_t(b)); }
MINIMA_HD int64_t wrap_mul(int64_t a, int64_t b) { return int64_t(uint64_t(a) * uint64_t(b)); }
MINIMA_HD int64_t wrap_neg(int64_t a) { return int64_t(uint64_t(0) - uint64_t(a)); }
// x / y rounded toward zero; 0 for y = 0 and INT64_MIN for INT64_MIN / -1 (which wraps), where
// the CPU's division instruction would trap.
MINIMA_HD int64_t wrap_div(int64_t x, int64_t y) { return y == 0 ? 0 : y == -1 ? wrap_neg(x) : x / y; }

// One element of Add, Sub, Mul and Div as both backends compute it: on integers (A = int64_t)
// with the wrapping helpers above, on floats as IEEE arithmetic.
template <class A>
MINIMA_HD A arith_add(A x, A y) {
  if constexpr (std::is_integral_v<A>)
    return wrap_add(x, y);
  else
    return x + y;
}
template <class A>
MINIMA_HD A arith_sub(A x, A y) {
  if constexpr (std::is_integral_v<A>)
    return wrap_sub(x, y);
  else
    return x - y;
}
template <class A>
MINIMA_HD A arith_mul(A x, A y) {
  if constexpr (std::is_integral_v<A>)
    return wrap_mul(x, y);
  else
    return x * y;
}
template <class A>
MINIMA_HD A arith_div(A x, A y) {
  if constexpr (std::is_integral_v<A>)
    return wrap_div(x, y);  // never a trap: x / 0 gives 0
  else
    return x / y;
}

// base^exp on integers, as PyTorch computes pow on integer tensors: exact modulo 2^64 (products
// wrap, as every integer op here does; an integer result never goes through a double, whose
// conversion back is undefined once out of range and exact only up to 2^53), by squaring. A
// negative exponent gives the integer part of the true power: 1 for base 1, +-1 for base -1,
// else 0.
MINIMA_HD int64_t int_pow(int64_t base, int64_t exp) {
  if (exp < 0) return base == 1 ? 1 : base == -1 ? ((exp & 1) ? -1 : 1) : 0;
  uint64_t r = 1, b = uint64_t(base);
  for (uint64_t e = uint64_t(exp); e != 0; e >>= 1) {
    if (e & 1) r *= b;
    b *= b;
  }
  return int64_t(r);  // modulo 2^64, two's complement
}

}  // namespace minima

// Run `__VA_ARGS__` with `scalar_t` bound to the C++ type of `dt`.
#define MINIMA_DISPATCH_CASE(DT, T, ...) \
  case DT: {                             \
    using scalar_t = T;                  \
    __VA_ARGS__();                       \
    break;                               \
  }
#define MINIMA_DISPATCH_FLOAT(dt, name, ...)                                                        \
  [&] {                                                                                             \
    switch (dt) {                                                                                   \
      MINIMA_DISPATCH_CASE(::minima::DType::f32, float, __VA_ARGS__)                                \
      MINIMA_DISPATCH_CASE(::minima::DType::f64, double, __VA_ARGS__)                               \
      MINIMA_DISPATCH_CASE(::minima::DType::bf16, ::minima::bf16, __VA_ARGS__)                      \
      default: throw ::minima::Error(::minima::str(name, ": expected a floating dtype, got ", dt)); \
    }                                                                                               \
  }()
#define MINIMA_DISPATCH_ALL(dt, name, ...)                                             \
  [&] {                                                                                \
    switch (dt) {                                                                      \
      MINIMA_DISPATCH_CASE(::minima::DType::f32, float, __VA_ARGS__)                   \
      MINIMA_DISPATCH_CASE(::minima::DType::f64, double, __VA_ARGS__)                  \
      MINIMA_DISPATCH_CASE(::minima::DType::bf16, ::minima::bf16, __VA_ARGS__)         \
      MINIMA_DISPATCH_CASE(::minima::DType::i64, int64_t, __VA_ARGS__)                 \
      MINIMA_DISPATCH_CASE(::minima::DType::u8, uint8_t, __VA_ARGS__)                  \
      default: throw ::minima::Error(::minima::str(name, ": unsupported dtype ", dt)); \
    }                                                                                  \
  }()
