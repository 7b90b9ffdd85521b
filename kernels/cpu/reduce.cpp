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
// A block of more than kSumPiece (2^20) terms is summed in pieces of that many terms, whose totals
// are lane-summed in turn: a split by the block's size alone, so the threads can share one long
// sum and the result still does not depend on their number. Max and min take the same loop orders
// and pieces (extremum_outputs, extremum_columns), comparing order keys in vector lanes; being
// exact, they give the same value in any order, with -0 below +0 (see Keys).
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

// Calls f(pointer-offset-of-first, length, inner_stride, offset of the next run or -1) for each
// inner run of terms t0, ..., t1 - 1 of the reduced block (in row-major order; the first and last
// runs may be parts of runs).
template <class F>
void for_each_run(const Split& s, int64_t t0, int64_t t1, F&& f) {
  if (t0 >= t1) return;  // no terms (an empty reduced dim)
  if (s.red_size.empty()) {
    f(int64_t(0), int64_t(1), int64_t(1), int64_t(-1));
    return;
  }
  const int64_t inner = s.red_size.back(), inner_st = s.red_stride.back();
  const std::vector<int64_t> osz(s.red_size.begin(), s.red_size.end() - 1),
      ost(s.red_stride.begin(), s.red_stride.end() - 1);
  int64_t r = t0 / inner, off = offset_of(t0, s.red_size, s.red_stride);
  for (int64_t t = t0; t < t1; ++r) {
    const int64_t len = std::min(inner - t % inner, t1 - t);
    const int64_t next = t + len < t1 ? offset_of(r + 1, osz, ost) : -1;
    f(off, len, inner_st, next);
    t += len;
    off = next;
  }
}
template <class F>
void for_each_run(const Split& s, F&& f) {
  for_each_run(s, 0, s.n_red, std::forward<F>(f));
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

// The rows of adjacent outputs that sum_columns and extremum_columns walk: x's innermost kept dim
// (contiguous) is `cols` wide, and a task takes up to kColumns columns of one row.
struct ColumnRows {
  int64_t cols, rows, col_tasks;
  std::vector<int64_t> row_size, row_stride;  // the other kept dims
  explicit ColumnRows(const Split& s)
      : cols(s.out_size.back()),
        rows(s.n_out / cols),
        col_tasks((cols + kColumns - 1) / kColumns),
        row_size(s.out_size.begin(), s.out_size.end() - 1),
        row_stride(s.out_stride.begin(), s.out_stride.end() - 1) {}
  int64_t row_offset(int64_t row) const { return offset_of(row, row_size, row_stride); }
};

// A block of more than kSumPiece terms is summed in pieces of kSumPiece terms (the last may be
// shorter): each piece is a lane sum of its terms, and the pieces' totals are lane-summed in order.
// A block of up to kSumPiece terms (4 MB of floats; every sum in the README's experiments) is one
// piece, its plain lane sum. The pieces depend on the block's size alone, never on the thread
// count, and they let the threads share a long sum (a sum of all values would otherwise run on
// one thread, since a lane's adds form one chain).
constexpr int64_t kSumPiece = int64_t(1) << 20;

int64_t sum_pieces(int64_t n_red) { return n_red > kSumPiece ? (n_red + kSumPiece - 1) / kSumPiece : 1; }

// Where a sum task's total goes: with one piece per block, straight into the output; otherwise
// into part[output * pieces + piece], and finish() lane-sums each output's pieces.
template <class T>
struct SumOut {
  using Acc = typename acc_type<T>::type;
  T* op;
  int64_t pieces;
  std::vector<double> part;
  SumOut(T* o, int64_t n_out, int64_t p) : op(o), pieces(p), part(p > 1 ? size_t(n_out * p) : 0) {}
  void put(int64_t o, int64_t piece, double total) {
    if (pieces == 1)
      op[o] = T(static_cast<Acc>(total));
    else
      part[size_t(o * pieces + piece)] = total;
  }
  void finish(int64_t n_out) {
    if (pieces == 1) return;
    for (int64_t o = 0; o < n_out; ++o)
      op[o] = T(static_cast<Acc>(lane_sum(pieces, [&](int64_t k) { return part[size_t(o * pieces + k)]; })));
  }
};

// Float sums output by output: a task is one piece of one output's block, walked in runs.
template <class T>
void sum_outputs(const Split& s, const T* xp, T* op) {
  using Acc = typename acc_type<T>::type;
  SumOut<T> out(op, s.n_out, sum_pieces(s.n_red));
  const int64_t pieces = out.pieces;
  auto piece_start = [&](int64_t task) {  // the pointer to a task's first term
    return xp + offset_of(task / pieces, s.out_size, s.out_stride) +
           offset_of(task % pieces * kSumPiece, s.red_size, s.red_stride);
  };
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(std::min(s.n_red, kSumPiece), 1));
  parallel_for(s.n_out * pieces, grain, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t o = task / pieces, piece = task % pieces, t0 = piece * kSumPiece;
      const T* base = xp + offset_of(o, s.out_size, s.out_stride);
      LaneSum acc;  // the piece's values in row-major order, whatever their strides
      for_each_run(s, t0, std::min(s.n_red, t0 + kSumPiece), [&](int64_t off, int64_t n, int64_t st, int64_t next) {
        const T* p = base + off;
        if (st == 1)  // after the piece's last run comes the next task's first
          add_run(acc, p, n, next >= 0 ? base + next : task + 1 < e ? piece_start(task + 1) : nullptr);
        else
          acc.add(n, [&](int64_t i) { return double(static_cast<Acc>(p[i * st])); });
      });
      out.put(o, piece, acc.total());
    }
  });
  out.finish(s.n_out);
}

// Float sums with x's innermost kept dim contiguous (s.out_stride.back() == 1): the outputs are
// rows of `cols` adjacent columns; a task is one piece of up to kColumns columns of one row. Term
// m of the piece (in the same row-major order as sum_outputs) is a contiguous run of the task's
// columns, added into lane m mod kLanes of each column.
template <class T>
void sum_columns(const Split& s, const T* xp, T* op) {
  using Acc = typename acc_type<T>::type;
  const ColumnRows cr(s);
  const int64_t cols = cr.cols, col_tasks = cr.col_tasks;
  SumOut<T> out(op, s.n_out, sum_pieces(s.n_red));
  const int64_t pieces = out.pieces;
  const int64_t grain =
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(std::min(s.n_red, kSumPiece) * kColumns, 1));
  parallel_for(cr.rows * col_tasks * pieces, grain, [&](int64_t b, int64_t e) {
    std::vector<double> lanes(size_t(kLanes * kColumns));
    for (int64_t task = b; task < e; ++task) {
      const int64_t piece = task % pieces, row = task / pieces / col_tasks;
      const int64_t c0 = task / pieces % col_tasks * kColumns, n = std::min(kColumns, cols - c0);
      const T* base = xp + cr.row_offset(row) + c0;
      std::fill(lanes.begin(), lanes.begin() + kLanes * n, 0.0);
      int64_t m = 0;  // terms of the piece so far
      const int64_t t0 = piece * kSumPiece;
      for_each_run(s, t0, std::min(s.n_red, t0 + kSumPiece), [&](int64_t off, int64_t len, int64_t st, int64_t) {
        for (int64_t i = 0; i < len; ++i, ++m) {
          const T* p = base + off + i * st;
          if (i + 2 < len) prefetch_bytes(p + 2 * st, n * int64_t(sizeof(T)));
          double* l = lanes.data() + (m % kLanes) * n;
          for (int64_t c = 0; c < n; ++c) l[c] += double(static_cast<Acc>(p[c]));
        }
      });
      for (int64_t c = 0; c < n; ++c) out.put(row * cols + c0 + c, piece, combine_lanes(lanes.data() + c, n));
    }
  });
  out.finish(s.n_out);
}

// Max and min are exact, so neither the order of the terms nor how threads split them changes
// the value. The one choice left is between -0 and +0, which compare equal; here -0 < +0, so a
// max is +0 and a min -0 when the block holds that zero, whatever the order. The loops compare
// order keys (Keys) instead of values: a float's bits as a signed integer with the magnitude bits
// of negative values flipped order floats as numbers, with -0 below +0, and a max of integers
// vectorizes where a float compare-and-select does not. Any NaN in a block makes its output NaN.
template <class T>
struct Keys {  // integers: the value is its own key
  using K = int64_t;
  static K key(T v) { return K(v); }
  static T value(K k) { return T(k); }
  static bool nan(T) { return false; }
};
// A float's key: its bits as a signed integer of the same width, with the magnitude bits of a
// negative value flipped (so a larger magnitude gives a smaller key); value() undoes it.
template <class F, class Key>
struct FloatKeys {
  using K = Key;
  static constexpr K kMagnitude = std::numeric_limits<K>::max();  // every bit but the sign
  static constexpr int kSignShift = int(sizeof(K)) * 8 - 1;
  static K key(F v) {
    const K b = __builtin_bit_cast(K, v);
    return b ^ ((b >> kSignShift) & kMagnitude);
  }
  static F value(K k) { return __builtin_bit_cast(F, K(k ^ ((k >> kSignShift) & kMagnitude))); }
  static bool nan(F v) { return v != v; }
};
template <>
struct Keys<float> : FloatKeys<float, int32_t> {};
template <>
struct Keys<double> : FloatKeys<double, int64_t> {};
template <>
struct Keys<bf16> {  // through float, exactly
  using K = int32_t;
  static K key(bf16 v) { return Keys<float>::key(float(v)); }
  static bf16 value(K k) { return bf16(Keys<float>::value(k)); }
  static bool nan(bf16 v) { return Keys<float>::nan(float(v)); }
};

// The running max (kMax) or min of a block's keys, and whether it held a NaN.
template <bool kMax, class T>
struct Extremum {
  using K = typename Keys<T>::K;
  K best = kMax ? std::numeric_limits<K>::min() : std::numeric_limits<K>::max();
  bool nan = false;

  static K pick(K a, K b) { return kMax ? std::max(a, b) : std::min(a, b); }
  // Folds in p[0], p[st], ..., p[(n - 1) * st]; a contiguous run in 16 independent lanes.
  void add(const T* p, int64_t n, int64_t st) {
    constexpr int64_t kW = 16;
    K lane[kW];
    int32_t bad[kW] = {};
    for (K& l : lane) l = best;
    int64_t i = 0;
    if (st == 1)
      for (; i + kW <= n; i += kW)
#pragma omp simd
        for (int64_t j = 0; j < kW; ++j) {
          lane[j] = pick(lane[j], Keys<T>::key(p[i + j]));
          bad[j] |= int32_t(Keys<T>::nan(p[i + j]));
        }
    for (; i < n; ++i) {
      lane[0] = pick(lane[0], Keys<T>::key(p[i * st]));
      bad[0] |= int32_t(Keys<T>::nan(p[i * st]));
    }
    for (int64_t j = 0; j < kW; ++j) {
      best = pick(best, lane[j]);
      nan |= bad[j] != 0;
    }
  }
  void add(const Extremum& o) {
    best = pick(best, o.best);
    nan |= o.nan;
  }
  T result() const {
    return nan ? T(std::numeric_limits<typename acc_type<T>::type>::quiet_NaN()) : Keys<T>::value(best);
  }
};

// Where an extremum task's result goes: as SumOut, but the pieces only split the work.
template <bool kMax, class T>
struct ExtremumOut {
  T* op;
  int64_t pieces;
  std::vector<Extremum<kMax, T>> part;
  ExtremumOut(T* o, int64_t n_out, int64_t p) : op(o), pieces(p), part(p > 1 ? size_t(n_out * p) : 0) {}
  void put(int64_t o, int64_t piece, const Extremum<kMax, T>& e) {
    if (pieces == 1)
      op[o] = e.result();
    else
      part[size_t(o * pieces + piece)] = e;
  }
  void finish(int64_t n_out) {
    if (pieces == 1) return;
    for (int64_t o = 0; o < n_out; ++o) {
      Extremum<kMax, T> e;
      for (int64_t k = 0; k < pieces; ++k) e.add(part[size_t(o * pieces + k)]);
      op[o] = e.result();
    }
  }
};

// Max or min output by output, in the same tasks as sum_outputs.
template <bool kMax, class T>
void extremum_outputs(const Split& s, const T* xp, T* op) {
  ExtremumOut<kMax, T> out(op, s.n_out, sum_pieces(s.n_red));
  const int64_t pieces = out.pieces;
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(std::min(s.n_red, kSumPiece), 1));
  parallel_for(s.n_out * pieces, grain, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t o = task / pieces, piece = task % pieces, t0 = piece * kSumPiece;
      const T* base = xp + offset_of(o, s.out_size, s.out_stride);
      Extremum<kMax, T> ex;
      for_each_run(s, t0, std::min(s.n_red, t0 + kSumPiece),
                   [&](int64_t off, int64_t n, int64_t st, int64_t) { ex.add(base + off, n, st); });
      out.put(o, piece, ex);
    }
  });
  out.finish(s.n_out);
}

// Max or min with x's innermost kept dim contiguous, in the same tasks as sum_columns: each term
// of a task is a contiguous run of its columns, folded into each column's key side by side.
template <bool kMax, class T>
void extremum_columns(const Split& s, const T* xp, T* op) {
  using K = typename Keys<T>::K;
  const ColumnRows cr(s);
  const int64_t cols = cr.cols, col_tasks = cr.col_tasks;
  ExtremumOut<kMax, T> out(op, s.n_out, sum_pieces(s.n_red));
  const int64_t pieces = out.pieces;
  const int64_t grain =
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(std::min(s.n_red, kSumPiece) * kColumns, 1));
  parallel_for(cr.rows * col_tasks * pieces, grain, [&](int64_t b, int64_t e) {
    K best[kColumns];
    int32_t bad[kColumns];
    for (int64_t task = b; task < e; ++task) {
      const int64_t piece = task % pieces, row = task / pieces / col_tasks;
      const int64_t c0 = task / pieces % col_tasks * kColumns, n = std::min(kColumns, cols - c0);
      const T* base = xp + cr.row_offset(row) + c0;
      std::fill(best, best + n, Extremum<kMax, T>().best);
      std::fill(bad, bad + n, 0);
      const int64_t t0 = piece * kSumPiece;
      for_each_run(s, t0, std::min(s.n_red, t0 + kSumPiece), [&](int64_t off, int64_t len, int64_t st, int64_t) {
        for (int64_t i = 0; i < len; ++i) {
          const T* p = base + off + i * st;
          if (i + 2 < len) prefetch_bytes(p + 2 * st, n * int64_t(sizeof(T)));
#pragma omp simd
          for (int64_t c = 0; c < n; ++c) {
            best[c] = Extremum<kMax, T>::pick(best[c], Keys<T>::key(p[c]));
            bad[c] |= int32_t(Keys<T>::nan(p[c]));
          }
        }
      });
      for (int64_t c = 0; c < n; ++c) {
        Extremum<kMax, T> ex;
        ex.best = best[c];
        ex.nan = bad[c] != 0;
        out.put(row * cols + c0 + c, piece, ex);
      }
    }
  });
  out.finish(s.n_out);
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
  if (op == ReduceOp::Max || op == ReduceOp::Min) {
    const bool columns = !s.out_size.empty() && s.out_stride.back() == 1 && !s.red_size.empty();
    if (op == ReduceOp::Max)
      columns ? extremum_columns<true>(s, xp, op_) : extremum_outputs<true>(s, xp, op_);
    else
      columns ? extremum_columns<false>(s, xp, op_) : extremum_outputs<false>(s, xp, op_);
    return;
  }
  if constexpr (std::is_floating_point_v<typename acc_type<T>::type>) {
    if (op == ReduceOp::Sum) {
      if (!s.out_size.empty() && s.out_stride.back() == 1 && !s.red_size.empty())
        sum_columns(s, xp, op_);
      else
        sum_outputs(s, xp, op_);
      return;
    }
  }
  if constexpr (!std::is_floating_point_v<typename acc_type<T>::type>) {  // integer sums
    using Acc = typename acc_type<T>::type;
    parallel_for(s.n_out, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* base = xp + offset_of(o, s.out_size, s.out_stride);
        int64_t acc = 0;  // exact (modulo 2^64) in any order
        for_each_run(s, [&](int64_t off, int64_t n, int64_t st, int64_t) {
          const T* p = base + off;
          for (int64_t i = 0; i < n; ++i) acc = wrap_add(acc, int64_t(static_cast<Acc>(p[i * st])));
        });
        op_[o] = T(static_cast<Acc>(acc));
      }
    });
  }
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
