// tests/core/test_util.h: small helpers shared by the core test files: seeded random inputs
// (including inputs kept away from kinks and ties), strided element access for naive reference
// loops, closeness checks that report the worst element, and a check that an expression throws
// a minima::Error whose message names given pieces (shapes, dtypes).
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"

namespace minima::testing {

inline TensorOptions f64() { return TensorOptions(DType::f64); }
inline TensorOptions f32() { return TensorOptions(DType::f32); }

// Uniform values in [lo, hi).
inline Tensor urand(const Shape& s, Generator& g, double lo = -1.0, double hi = 1.0, DType t = DType::f64) {
  return uniform(s, lo, hi, g, TensorOptions(t));
}

// Values with |v| in [lo, hi) and a random sign: never near 0 (the kink of relu/abs).
inline Tensor away_from_zero(const Shape& s, Generator& g, double lo = 0.2, double hi = 1.0, DType t = DType::f64) {
  NoGradGuard ng;
  Tensor mag = uniform(s, lo, hi, g, TensorOptions(DType::f64));
  Tensor sgn = sign(uniform(s, -1.0, 1.0, g, TensorOptions(DType::f64)));
  return mul(mag, where(eq(sgn, zeros({}, f64())), ones({}, f64()), sgn)).to(t);
}

// A random permutation of evenly spaced values in [-1, 1): all distinct, at least 2/n apart,
// so max/min and pooling have no ties that a finite-difference step could flip.
inline Tensor distinct(const Shape& s, Generator& g, DType t = DType::f64) {
  NoGradGuard ng;
  int64_t n = numel_of(s);
  Tensor p = randperm(n, g).to(DType::f64);
  return add(mul(p, 2.0 / double(std::max<int64_t>(n, 1))), -1.0).reshape(s).contiguous().to(t);
}

// Element at a multi-index of a (possibly strided) tensor, read as double.
inline double at(const Tensor& t, const std::vector<int64_t>& idx) {
  REQUIRE(int64_t(idx.size()) == t.dim());
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
  double v = 0;
  MINIMA_DISPATCH_ALL(t.dtype(), "at", [&] {
    using A = typename acc_type<scalar_t>::type;
    v = double(static_cast<A>(static_cast<const scalar_t*>(t.data_ptr())[off]));
  });
  return v;
}

// Row-major multi-index of linear position `i` in `shape`.
inline std::vector<int64_t> unravel(int64_t i, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    idx[size_t(d)] = i % shape[size_t(d)];
    i /= shape[size_t(d)];
  }
  return idx;
}

inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Worst |a - b| against atol + rtol * |b| over two equally long value lists.
struct CloseReport {
  bool ok = true;
  std::string message;
};
inline CloseReport compare(const std::vector<double>& a, const std::vector<double>& b, double atol, double rtol) {
  CloseReport r;
  if (a.size() != b.size()) {
    r.ok = false;
    r.message = str("sizes differ: ", a.size(), " vs ", b.size());
    return r;
  }
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::abs(a[i] - b[i]);
    double excess = err - (atol + rtol * std::abs(b[i]));
    bool bad = !(excess <= 0) || std::isnan(a[i]) != std::isnan(b[i]);
    if (std::isnan(a[i]) && std::isnan(b[i])) bad = false;
    if (bad && (r.ok || excess > worst)) {
      r.ok = false;
      worst = excess;
      wi = i;
    }
  }
  if (!r.ok)
    r.message = str("element ", wi, " of ", a.size(), ": got ", a[wi], ", expected ", b[wi], " (atol ", atol, ", rtol ",
                    rtol, ")");
  return r;
}

#define MINIMA_CHECK_CLOSE(got, want, atol, rtol)                                    \
  do {                                                                               \
    auto minima_report_ = ::minima::testing::compare((got), (want), (atol), (rtol)); \
    CHECK_MESSAGE(minima_report_.ok, minima_report_.message);                        \
  } while (0)

// Runs `f` and returns the message of the minima::Error it throws ("" plus a failed check if
// it throws nothing or something else).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("expected minima::Error, got another exception: " << e.what());
    return "";
  }
  FAIL_CHECK("expected minima::Error, nothing was thrown");
  return "";
}

// Checks that `f` throws a minima::Error whose message contains every string in `parts`.
inline void check_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string msg = error_of(f);
  for (const auto& p : parts)
    CHECK_MESSAGE(msg.find(p) != std::string::npos, "message '" << msg << "' lacks '" << p << "'");
}

}  // namespace minima::testing
