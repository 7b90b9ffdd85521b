// kernels/cpu/reduce.cpp: sum/max/min/argmax/argmin along any set of dims. Each output element
// walks its reduced sub-block; float sums are lane sums in double (kernels/cpu/lane_sum.h) of the
// block's values in row-major order, so they are accurate, vectorize, and do not depend on strides.
// Two loop orders give those sums:
//  * output by output (the general case), each block walked in runs along its innermost dim;
//  * a row of outputs at a time (sum_columns), when x's innermost kept dim is contiguous, as in a
//    sum over the batch of [N, F] (a linear layer's bias gradient): there the terms of adjacent
//    outputs lie side by side, so each term of the block is one contiguous load for up to
//    kColumns outputs, where the first order would load every value with a stride of F.
// Both deal the same terms in the same order to the same lanes, so they agree bitwise (tested).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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
    } else if (x.shape()[d] != 1) {  // a kept dim of size 1 moves no offset
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

// Calls f(pointer-offset-of-first, inner_len, inner_stride, offset of the next run or -1) for each
// inner run of the reduced block.
template <class F>
void for_each_run(const Split& s, F&& f) {
  if (s.red_size.empty()) {
    f(int64_t(0), int64_t(1), int64_t(1), int64_t(-1));
    return;
  }
  int64_t inner = s.red_size.back(), inner_st = s.red_stride.back();
  int64_t runs = s.n_red / std::max<int64_t>(inner, 1);
  std::vector<int64_t> osz(s.red_size.begin(), s.red_size.end() - 1), ost(s.red_stride.begin(), s.red_stride.end() - 1);
  int64_t off = offset_of(0, osz, ost);
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t next = r + 1 < runs ? offset_of(r + 1, osz, ost) : -1;
    f(off, inner, inner_st, next);
    off = next;
  }
}

// A contiguous run's terms go to the lane sum kPrefetchChunk at a time, and as each chunk is added, the
// lines min(n, kAhead) values on are asked for: further on in this run, or in `next`, the run of
// the same length that follows it (in this block or the next output's; none: nullptr).
constexpr int64_t kAhead = 2048;
template <class T>
void add_run(LaneSum& acc, const T* p, int64_t n, const T* next) {
  using Acc = typename acc_type<T>::type;
  const int64_t d = std::min(n, kAhead);
  for (int64_t i0 = 0; i0 < n; i0 += kPrefetchChunk) {
    const int64_t len = std::min(kPrefetchChunk, n - i0), ahead = i0 + d;
    if (ahead < n)
      prefetch_bytes(p + ahead, std::min(len, n - ahead) * int64_t(sizeof(T)));
    else if (next)
      prefetch_bytes(next + (ahead - n), std::min(len, 2 * n - ahead) * int64_t(sizeof(T)));
    acc.add(len, [&](int64_t i) { return double(static_cast<Acc>(p[i0 + i])); });
  }
}

constexpr int64_t kColumns = 256;  // outputs per row of sum_columns: 16 lanes of them are 32 KB of doubles

// Sums with x's innermost kept dim contiguous (s.out_stride.back() == 1): the outputs are rows of
// `cols` adjacent columns; a task is up to kColumns columns of one row. Term m of the block (in the
// same row-major order as the general loop) is a contiguous run of the task's columns, added into
// lane m mod kLanes of each column.
template <class T>
void sum_columns(const Split& s, const T* xp, T* op) {
  using Acc = typename acc_type<T>::type;
  const int64_t cols = s.out_size.back(), rows = s.n_out / cols;
  const std::vector<int64_t> row_size(s.out_size.begin(), s.out_size.end() - 1),
      row_stride(s.out_stride.begin(), s.out_stride.end() - 1);
  const int64_t col_tasks = (cols + kColumns - 1) / kColumns;
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(s.n_red * kColumns, 1));
  parallel_for(rows * col_tasks, grain, [&](int64_t b, int64_t e) {
    std::vector<double> lanes(size_t(kLanes * kColumns));
    for (int64_t task = b; task < e; ++task) {
      const int64_t row = task / col_tasks, c0 = task % col_tasks * kColumns, n = std::min(kColumns, cols - c0);
      const T* base = xp + offset_of(row, row_size, row_stride) + c0;
      std::fill(lanes.begin(), lanes.begin() + kLanes * n, 0.0);
      int64_t m = 0;  // terms so far
      for_each_run(s, [&](int64_t off, int64_t len, int64_t st, int64_t) {
        for (int64_t i = 0; i < len; ++i, ++m) {
          const T* p = base + off + i * st;
          if (i + 2 < len) prefetch_bytes(p + 2 * st, n * int64_t(sizeof(T)));
          double* l = lanes.data() + (m % kLanes) * n;
          for (int64_t c = 0; c < n; ++c) l[c] += double(static_cast<Acc>(p[c]));
        }
      });
      T* o = op + row * cols + c0;
      for (int64_t c = 0; c < n; ++c) o[c] = T(static_cast<Acc>(combine_lanes(lanes.data() + c, n)));
    }
  });
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) {
  Split s = split_dims(x, dims);
  if (s.n_out == 0) return;  // no output to write (the front-end answers empty tensors itself)
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
  if constexpr (std::is_floating_point_v<typename acc_type<T>::type>) {
    if (op == ReduceOp::Sum && !s.out_size.empty() && s.out_stride.back() == 1 && !s.red_size.empty()) {
      sum_columns(s, xp, op_);
      return;
    }
  }
  parallel_for(s.n_out, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* base = xp + offset_of(o, s.out_size, s.out_stride);
      if (op == ReduceOp::Sum) {
        using Acc = typename acc_type<T>::type;
        if constexpr (std::is_floating_point_v<Acc>) {
          LaneSum acc;  // the block's values in row-major order, whatever their strides
          for_each_run(s, [&](int64_t off, int64_t n, int64_t st, int64_t next) {
            const T* p = base + off;
            if (st == 1)  // after the block's last run comes the next output's first
              add_run(acc, p, n,
                      next >= 0   ? base + next
                      : o + 1 < e ? xp + offset_of(o + 1, s.out_size, s.out_stride)
                                  : nullptr);
            else
              acc.add(n, [&](int64_t i) { return double(static_cast<Acc>(p[i * st])); });
          });
          op_[o] = T(static_cast<Acc>(acc.total()));
        } else {
          int64_t acc = 0;  // integers: exact (modulo 2^64) in any order
          for_each_run(s, [&](int64_t off, int64_t n, int64_t st, int64_t) {
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
        for_each_run(s, [&](int64_t off, int64_t n, int64_t st, int64_t) {
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
