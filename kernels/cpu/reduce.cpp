// kernels/cpu/reduce.cpp: sum/max/min/argmax/argmin along any set of dims. Each output element
// walks its reduced sub-block; float sums are lane sums in double (kernels/cpu/lane_sum.h) of the
// block's values in row-major order, so they are accurate, vectorize, and do not depend on strides.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

namespace {
struct Split {
  std::vector<int64_t> out_size, out_stride, red_size, red_stride;  // x strides in elements
  int64_t n_out = 1, n_red = 1;
};

Split split_dims(const Tensor& x, const std::vector<int64_t>& dims) {
  Split s;
  std::vector<bool> red(static_cast<size_t>(x.dim()), false);
  for (int64_t d : dims) red[size_t(d)] = true;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (red[size_t(d)]) {
      if (x.shape()[d] == 1) continue;  // adds nothing to the block, and would split its runs into ones
      s.red_size.push_back(x.shape()[d]);
      s.red_stride.push_back(x.strides()[d]);
      s.n_red *= x.shape()[d];
    } else {
      s.out_size.push_back(x.shape()[d]);
      s.out_stride.push_back(x.strides()[d]);
      s.n_out *= x.shape()[d];
    }
  }
  // Merge adjacent reduced dims that are contiguous with each other (fewer, longer inner loops).
  for (int64_t i = int64_t(s.red_size.size()) - 1; i > 0; --i) {
    if (s.red_stride[i - 1] == s.red_stride[i] * s.red_size[i]) {
      s.red_size[i - 1] *= s.red_size[i];
      s.red_stride[i - 1] = s.red_stride[i];
      s.red_size.erase(s.red_size.begin() + i);
      s.red_stride.erase(s.red_stride.begin() + i);
    }
  }
  return s;
}

int64_t offset_of(int64_t linear, const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  int64_t off = 0;
  for (int64_t d = int64_t(size.size()) - 1; d >= 0; --d) {
    off += (linear % size[d]) * stride[d];
    linear /= size[d];
  }
  return off;
}

// Calls f(pointer-offset-of-first, inner_len, inner_stride) for each inner run of the reduced block.
template <class F>
void for_each_run(const Split& s, F&& f) {
  if (s.red_size.empty()) {
    f(int64_t(0), int64_t(1), int64_t(1));
    return;
  }
  int64_t inner = s.red_size.back(), inner_st = s.red_stride.back();
  int64_t runs = s.n_red / std::max<int64_t>(inner, 1);
  std::vector<int64_t> osz(s.red_size.begin(), s.red_size.end() - 1), ost(s.red_stride.begin(), s.red_stride.end() - 1);
  for (int64_t r = 0; r < runs; ++r) f(offset_of(r, osz, ost), inner, inner_st);
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) {
  Split s = split_dims(x, dims);
  const T* xp = x.data<T>();
  int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(s.n_red, 1));
  if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) {
    bool is_max = op == ReduceOp::ArgMax;
    int64_t* op_ = out.data<int64_t>();
    int64_t n = s.n_red, st = s.red_stride.empty() ? 1 : s.red_stride[0];
    parallel_for(s.n_out, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* base = xp + offset_of(o, s.out_size, s.out_stride);
        double best = double(static_cast<typename acc_type<T>::type>(base[0]));
        int64_t bi = 0;
        for (int64_t i = 1; i < n; ++i) {
          double v = double(static_cast<typename acc_type<T>::type>(base[i * st]));
          if (std::isnan(best)) break;
          if (std::isnan(v) || (is_max ? v > best : v < best)) {
            best = v;
            bi = i;
          }
        }
        op_[o] = bi;
      }
    });
    return;
  }
  T* op_ = out.data<T>();
  parallel_for(s.n_out, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* base = xp + offset_of(o, s.out_size, s.out_stride);
      if (op == ReduceOp::Sum) {
        using Acc = typename acc_type<T>::type;
        if constexpr (std::is_floating_point_v<Acc>) {
          LaneSum acc;  // the block's values in row-major order, whatever their strides
          for_each_run(s, [&](int64_t off, int64_t n, int64_t st) {
            const T* p = base + off;
            if (st == 1)
              acc.add(n, [&](int64_t i) { return double(static_cast<Acc>(p[i])); });
            else
              acc.add(n, [&](int64_t i) { return double(static_cast<Acc>(p[i * st])); });
          });
          op_[o] = T(static_cast<Acc>(acc.total()));
        } else {
          int64_t acc = 0;  // integers: exact (modulo 2^64) in any order
          for_each_run(s, [&](int64_t off, int64_t n, int64_t st) {
            const T* p = base + off;
            for (int64_t i = 0; i < n; ++i) acc = wrap_add(acc, int64_t(static_cast<Acc>(p[i * st])));
          });
          op_[o] = T(static_cast<Acc>(acc));
        }
      } else {
        bool is_max = op == ReduceOp::Max;
        using A = typename acc_type<T>::type;
        A best = A(base[0]);
        bool nan = false;
        for_each_run(s, [&](int64_t off, int64_t n, int64_t st) {
          const T* p = base + off;
          for (int64_t i = 0; i < n; ++i) {
            A v = A(p[i * st]);
            if constexpr (std::is_floating_point_v<A>) nan |= std::isnan(v);
            best = is_max ? (v > best ? v : best) : (v < best ? v : best);
          }
        });
        if constexpr (std::is_floating_point_v<A>)
          if (nan) best = std::numeric_limits<A>::quiet_NaN();
        op_[o] = T(best);
      }
    }
  });
}
}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) {
  MINIMA_CHECK(out.is_contiguous(), "reduce: output must be contiguous");
  if (x.dim() == 0) {
    // A 0-d tensor reduces to itself (or index 0).
    if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin)
      out.data<int64_t>()[0] = 0;
    else
      copy(out, x);
    return;
  }
  MINIMA_DISPATCH_ALL(x.dtype(), "reduce", [&] { reduce_typed<scalar_t>(op, out, x, dims); });
}

}  // namespace minima::cpu
