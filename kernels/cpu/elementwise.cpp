// kernels/cpu/elementwise.cpp: fill, copy (with dtype conversion), unary ops and their
// derivatives, binary ops with broadcasting (inputs arrive expanded, stride 0), where, and the
// Philox random fills. All run on the strided row loop of loops.h.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/random.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/exp.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

template <class T, class A>
static inline T store(A v) {
  return T(v);
}

void CpuBackend::fill(const Tensor& out, double v) {
  MINIMA_DISPATCH_ALL(out.dtype(), "fill", [&] {
    scalar_t val = scalar_t(static_cast<Acc<scalar_t>>(v));
    map_elements<scalar_t>(out, {out}, [val]() { return val; });
  });
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  MINIMA_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "cpu copy: both tensors must be on the cpu");
  MINIMA_DISPATCH_ALL(dst.dtype(), "copy", [&] {
    using D = scalar_t;
    MINIMA_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using S = scalar_t;
      if constexpr (std::is_same_v<D, S>) {
        map_elements<D, S>(dst, {dst, src}, [](S s) { return s; });
      } else {
        map_elements<D, S>(dst, {dst, src}, [](S s) {
          // Through double: exact for every pair of these types except i64 beyond 2^53.
          double v = double(static_cast<Acc<S>>(s));
          if constexpr (std::is_same_v<D, bf16>)
            return bf16(float(v));
          else if constexpr (std::is_integral_v<D>)
            return static_cast<D>(double_to_int64(v));
          else
            return static_cast<D>(v);
        });
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Unary
// ---------------------------------------------------------------------------------------------
namespace {

template <class A>
inline A sigmoid_f(A x) {
  return x >= A(0) ? A(1) / (A(1) + std::exp(-x)) : std::exp(x) / (A(1) + std::exp(x));
}
template <class A>
inline A softplus_f(A x) {
  return std::max(x, A(0)) + std::log1p(std::exp(-std::abs(x)));
}

// exp of a float32 or bf16 tensor through exp_f32's vector loop: float32 rows contiguous in both
// tensors directly, other rows gathered into a buffer in chunks (the same bits either way).
template <class T>
void exp_float(const Tensor& out, const Tensor& x) {
  auto row = [](const std::array<char*, 2>& ptr, int64_t n, const std::array<int64_t, 2>& st) {
    if (std::is_same_v<T, float> && st[0] == int64_t(sizeof(T)) && st[1] == int64_t(sizeof(T))) {
      exp_f32(reinterpret_cast<const float*>(ptr[1]), 0.0f, reinterpret_cast<float*>(ptr[0]), n);
      return;
    }
    constexpr int64_t kChunk = 256;
    float buf[kChunk];
    for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
      const int64_t m = std::min(kChunk, n - i0);
      for (int64_t i = 0; i < m; ++i) buf[i] = float(*reinterpret_cast<const T*>(ptr[1] + (i0 + i) * st[1]));
      exp_f32(buf, 0.0f, buf, m);
      for (int64_t i = 0; i < m; ++i) *reinterpret_cast<T*>(ptr[0] + (i0 + i) * st[0]) = T(buf[i]);
    }
  };
  for_each_row<2>(out.shape(), {out, x}, row);
}

template <class T>
void unary_float(UnaryOp op, const Tensor& out, const Tensor& x, double p0d, double p1d) {
  using A = Acc<T>;
  A p0 = A(p0d), p1 = A(p1d);
#define MINIMA_U(expr)                          \
  map_elements<T, T>(out, {out, x}, [=](T xi) { \
    A v = A(xi);                                \
    (void)v;                                    \
    return T(expr);                             \
  });                                           \
  break;
  switch (op) {
    case UnaryOp::Neg: MINIMA_U(-v)
    case UnaryOp::Exp:
      if constexpr (std::is_same_v<A, float>) {  // float32, and bf16 (the float exp, rounded)
        exp_float<T>(out, x);
        break;
      } else {
        MINIMA_U(std::exp(v))
      }
    case UnaryOp::Log: MINIMA_U(std::log(v))
    case UnaryOp::Sqrt: MINIMA_U(std::sqrt(v))
    case UnaryOp::Abs: MINIMA_U(std::abs(v))
    case UnaryOp::Relu: MINIMA_U(!(v <= A(0)) ? v : A(0))  // NaN stays NaN, as in PyTorch
    case UnaryOp::Sigmoid: MINIMA_U(sigmoid_f(v))
    case UnaryOp::Tanh: MINIMA_U(std::tanh(v))
    case UnaryOp::Softplus: MINIMA_U(softplus_f(v))
    case UnaryOp::Pow:
      if (p0d == 2.0) {
        MINIMA_U(v * v)
      } else {
        MINIMA_U(std::pow(v, p0))
      }
    case UnaryOp::Clamp: MINIMA_U(std::isnan(v) ? v : std::min(std::max(v, p0), p1))
    case UnaryOp::Square: MINIMA_U(v * v)
    case UnaryOp::Sign: MINIMA_U(v > A(0) ? A(1) : (v < A(0) ? A(-1) : A(0)))
    case UnaryOp::Reciprocal: MINIMA_U(A(1) / v)
    case UnaryOp::Log1p: MINIMA_U(std::log1p(v))
    case UnaryOp::AddScalar: MINIMA_U(v + p0)
    case UnaryOp::MulScalar: MINIMA_U(v * p0)
    case UnaryOp::Affine: MINIMA_U(v * p0 + p1)
  }
}

template <class T>
void unary_int(UnaryOp op, const Tensor& out, const Tensor& x, double p0d, double p1d) {
  using A = int64_t;
  A p0 = A(p0d), p1 = A(p1d);
  switch (op) {
    case UnaryOp::Neg: MINIMA_U(wrap_neg(v))
    case UnaryOp::Abs: MINIMA_U(v < 0 ? wrap_neg(v) : v)
    case UnaryOp::Relu: MINIMA_U(v > 0 ? v : 0)
    case UnaryOp::Square: MINIMA_U(wrap_mul(v, v))
    case UnaryOp::Sign: MINIMA_U(v > 0 ? 1 : (v < 0 ? -1 : 0))
    case UnaryOp::Clamp: MINIMA_U(std::min(std::max(v, p0), p1))
    case UnaryOp::AddScalar: MINIMA_U(wrap_add(v, p0))
    case UnaryOp::MulScalar: MINIMA_U(wrap_mul(v, p0))
    default: throw Error(str("unary op ", int(op), " is not defined for ", x.dtype()));
  }
#undef MINIMA_U
}

template <class T>
void unary_backward_float(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y, double p0d,
                          double p1d) {
  using A = Acc<T>;
  A p0 = A(p0d), p1 = A(p1d);
  // Each gradient reads gy and at most one of x and y (unary_backward_reads), and only that one is
  // loaded: it is both v and o below (gy itself, already in cache, for the ops that need neither).
  // Relu's backward used to stream x and y both, four tensors where three do.
  const UnaryReads reads = unary_backward_reads(op);
  const Tensor& s = reads == UnaryReads::input ? x : reads == UnaryReads::output ? y : gy;
#define MINIMA_UB(expr)                                    \
  map_elements<T, T, T>(gx, {gx, gy, s}, [=](T gi, T si) { \
    A g = A(gi), v = A(si), o = v;                         \
    (void)v;                                               \
    (void)o;                                               \
    return T(expr);                                        \
  });                                                      \
  break;
  switch (op) {
    case UnaryOp::Neg: MINIMA_UB(-g)
    case UnaryOp::Exp: MINIMA_UB(g * o)
    case UnaryOp::Log: MINIMA_UB(g / v)
    case UnaryOp::Sqrt: MINIMA_UB(g / (A(2) * o))
    case UnaryOp::Abs: MINIMA_UB(v > A(0) ? g : (v < A(0) ? -g : A(0)))
    case UnaryOp::Relu: MINIMA_UB(v > A(0) ? g : A(0))
    case UnaryOp::Sigmoid: MINIMA_UB(g * o * (A(1) - o))
    case UnaryOp::Tanh: MINIMA_UB(g * (A(1) - o * o))
    case UnaryOp::Softplus: MINIMA_UB(g * sigmoid_f(v))
    case UnaryOp::Pow: MINIMA_UB(p0 == A(0) ? A(0) : g * p0 * std::pow(v, p0 - A(1)))
    case UnaryOp::Clamp: MINIMA_UB((v >= p0 && v <= p1) ? g : A(0))
    case UnaryOp::Square: MINIMA_UB(g * A(2) * v)
    case UnaryOp::Sign: MINIMA_UB(A(0) * g)
    case UnaryOp::Reciprocal: MINIMA_UB(-g * o * o)
    case UnaryOp::Log1p: MINIMA_UB(g / (A(1) + v))
    case UnaryOp::AddScalar: MINIMA_UB(g)
    case UnaryOp::MulScalar: MINIMA_UB(g * p0)
    case UnaryOp::Affine: MINIMA_UB(g * p0)
  }
#undef MINIMA_UB
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) {
  switch (x.dtype()) {
    case DType::f32: unary_float<float>(op, out, x, p0, p1); break;
    case DType::f64: unary_float<double>(op, out, x, p0, p1); break;
    case DType::bf16: unary_float<bf16>(op, out, x, p0, p1); break;
    case DType::i64: unary_int<int64_t>(op, out, x, p0, p1); break;
    case DType::u8: unary_int<uint8_t>(op, out, x, p0, p1); break;
  }
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y,
                                double p0, double p1) {
  MINIMA_DISPATCH_FLOAT(x.dtype(), "unary_backward", [&] { unary_backward_float<scalar_t>(op, gx, gy, x, y, p0, p1); });
}

// ---------------------------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------------------------
namespace {
template <class T>
void binary_typed(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using A = Acc<T>;
#define MINIMA_B(expr)                                     \
  map_elements<T, T, T>(out, {out, a, b}, [](T ai, T bi) { \
    A x = A(ai), y = A(bi);                                \
    return T(expr);                                        \
  });                                                      \
  break;
#define MINIMA_C(expr)                                           \
  map_elements<uint8_t, T, T>(out, {out, a, b}, [](T ai, T bi) { \
    A x = A(ai), y = A(bi);                                      \
    return uint8_t((expr) ? 1 : 0);                              \
  });                                                            \
  break;
  switch (op) {  // integers (A = int64_t) wrap and never trap: core/dtype.h
    case BinaryOp::Add: MINIMA_B(arith_add(x, y))
    case BinaryOp::Sub: MINIMA_B(arith_sub(x, y))
    case BinaryOp::Mul: MINIMA_B(arith_mul(x, y))
    case BinaryOp::Div: MINIMA_B(arith_div(x, y))
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<A>) {
        MINIMA_B(A(int_pow(int64_t(x), int64_t(y))))
      } else {
        MINIMA_B(A(std::pow(double(x), double(y))))
      }
    case BinaryOp::Maximum:
      if constexpr (std::is_floating_point_v<A>) {
        MINIMA_B((std::isnan(x) || x > y) ? x : y)
      } else {
        MINIMA_B(x > y ? x : y)
      }
    case BinaryOp::Minimum:
      if constexpr (std::is_floating_point_v<A>) {
        MINIMA_B((std::isnan(x) || x < y) ? x : y)
      } else {
        MINIMA_B(x < y ? x : y)
      }
    case BinaryOp::Eq: MINIMA_C(x == y)
    case BinaryOp::Ne: MINIMA_C(x != y)
    case BinaryOp::Lt: MINIMA_C(x < y)
    case BinaryOp::Le: MINIMA_C(x <= y)
    case BinaryOp::Gt: MINIMA_C(x > y)
    case BinaryOp::Ge: MINIMA_C(x >= y)
  }
#undef MINIMA_B
#undef MINIMA_C
}
}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  MINIMA_DISPATCH_ALL(a.dtype(), "binary", [&] { binary_typed<scalar_t>(op, out, a, b); });
}

void CpuBackend::where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  MINIMA_DISPATCH_ALL(out.dtype(), "where", [&] {
    using T = scalar_t;
    map_elements<T, uint8_t, T, T>(out, {out, cond, a, b}, [](uint8_t c, T x, T y) { return c ? x : y; });
  });
}

// ---------------------------------------------------------------------------------------------
// Random fills: element i of the logical (row-major) order, independent of threads.
// ---------------------------------------------------------------------------------------------
namespace {
// Writes value_of(i) converted to the storage type. A value that the conversion rounds up to
// `hi` or beyond (possible for f32/bf16 near the top of a uniform range) is replaced by `lo`, so
// uniform draws stay in [lo, hi) on the storage type's grid.
template <class F>
void fill_indexed(const Tensor& out, F&& value_of, double lo = 0.0,
                  double hi = std::numeric_limits<double>::infinity()) {
  MINIMA_CHECK(out.is_contiguous(), "random fill: the output must be contiguous");
  MINIMA_DISPATCH_FLOAT(out.dtype(), "random fill", [&] {
    using A = Acc<scalar_t>;
    scalar_t* p = out.data<scalar_t>();
    const scalar_t lo_t = scalar_t(static_cast<A>(lo));
    parallel_for(out.numel(), 4096, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        scalar_t v = scalar_t(static_cast<A>(value_of(uint64_t(i))));
        p[i] = double(static_cast<A>(v)) >= hi ? lo_t : v;
      }
    });
  });
}
}  // namespace

// The scale and shift are one explicit fused multiply-add, on the CPU and in the CUDA kernels, so
// the two give bitwise-equal draws whatever the compilers' contraction settings.
void CpuBackend::random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) {
  fill_indexed(
      out, [=](uint64_t i) { return std::fma(hi - lo, Philox::uniform(seed, offset, i), lo); }, lo, hi);
}

void CpuBackend::random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  fill_indexed(out, [=](uint64_t i) { return std::fma(std, Philox::normal(seed, offset, i), mean); });
}

}  // namespace minima::cpu
