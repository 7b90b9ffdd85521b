// kernels/cpu/reduce.cpp: sum/max/min/argmax/argmin along any set of dims. Each output element
// walks its reduced sub-block; float sums are lane sums in double (kernels/cpu/lane_sum.h) of the
// block's values in row-major order, so they are accurate, vectorize, and do not depend on strides.
// Two loop orders give those sums:
//  * output by output (reduce_by_outputs, the general case), each block walked in runs along its
//    innermost dim;
//  * a row of outputs at a time (reduce_by_columns), when x's innermost kept dim is contiguous, as
//    in a sum over the batch of [N, F] (a linear layer's bias gradient): there the terms of
//    adjacent outputs lie side by side, so each term of the block is one contiguous load for up
//    to kColumns outputs, where the first order would load every value with a stride of F.
// Both deal the same terms in the same order to the same lanes, so they agree bitwise (tested).
// A block of more than kSumPiece (2^20) terms is summed in pieces of that many terms, whose totals
// are lane-summed in turn: a split by the block's size alone, so the threads can share one long
// sum and the result still does not depend on their number. Max and min (extremum) take the same
// loop orders and pieces, comparing order keys in vector lanes; being exact, they give the same
// value in any order, with -0 below +0 (see Keys).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
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

// The offset of element `linear` (row-major) of the first `dims` dims of size/stride.
int64_t offset_of(int64_t linear, const int64_t* size, const int64_t* stride, int64_t dims) {
  int64_t off = 0;
  for (int64_t d = dims - 1; d >= 0; --d) {
    off += (linear % size[d]) * stride[d];
    linear /= size[d];
  }
  return off;
}
int64_t offset_of(int64_t linear, const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  return offset_of(linear, size.data(), stride.data(), int64_t(size.size()));
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
  const int64_t outer_dims = int64_t(s.red_size.size()) - 1;  // the dims above the inner runs
  if (outer_dims == 0) {  // one run (a block along one dim, or dims merged into one)
    f(t0 * inner_st, t1 - t0, inner_st, int64_t(-1));
    return;
  }
  int64_t r = t0 / inner, off = offset_of(t0, s.red_size, s.red_stride);
  for (int64_t t = t0; t < t1; ++r) {
    const int64_t len = std::min(inner - t % inner, t1 - t);
    const int64_t next = t + len < t1 ? offset_of(r + 1, s.red_size.data(), s.red_stride.data(), outer_dims) : -1;
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
    if constexpr (std::is_same_v<T, float>)
      acc.add_floats(p + i0, len);
    else
      acc.add(len, [&](int64_t i) { return double(static_cast<Acc>(p[i0 + i])); });
  }
}

// A block of more than kSumPiece terms is summed in pieces of kSumPiece terms (the last may be
// shorter): each piece is a lane sum of its terms, and the pieces' totals are lane-summed in order.
// A block of up to kSumPiece terms (4 MB of floats; every sum in the README's experiments) is one
// piece, its plain lane sum. The pieces depend on the block's size alone, never on the thread
// count, and they let the threads share a long sum (a sum of all values would otherwise run on
// one thread, since a lane's adds form one chain). Max and min take the same pieces, where they
// only split the work.
constexpr int64_t kSumPiece = int64_t(1) << 20;

int64_t block_pieces(int64_t n_red) { return n_red > kSumPiece ? (n_red + kSumPiece - 1) / kSumPiece : 1; }

// Max and min are exact, so neither the order of the terms nor how threads split them changes
// the value. The one choice left is between -0 and +0, which compare equal; here -0 < +0, so a
// max is +0 and a min -0 when the block holds that zero, whatever the order. The loops compare
// order keys (Keys) instead of values, and a max of integers vectorizes where a float
// compare-and-select does not. Any NaN in a block makes its output NaN.
template <class T>
struct Keys {  // integers: the value is its own key
  using K = int64_t;
  static K key(T v) { return K(v); }
  static T value(K k) { return T(k); }
  static bool nan(T) { return false; }
};
// A float's key: its bits as a signed integer of the same width, with the magnitude bits of a
// negative value flipped (so a larger magnitude gives a smaller key, and -0 sits just below +0);
// value() undoes it.
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
  T result() const {
    return nan ? T(std::numeric_limits<typename acc_type<T>::type>::quiet_NaN()) : Keys<T>::value(best);
  }
};

// What a task yields for its piece of a block (R), how that becomes the output's value, and how
// the pieces of a longer block merge: for a float sum a total, lane-summed in order; for max and
// min an Extremum, folded.
template <class T>
struct SumResult {
  using R = double;
  static T value(double total) { return T(static_cast<typename acc_type<T>::type>(total)); }
  static double merge(const double* part, int64_t pieces) {
    return lane_sum(pieces, [&](int64_t k) { return part[k]; });
  }
};
template <bool kMax, class T>
struct ExtremumResult {
  using R = Extremum<kMax, T>;
  static T value(const R& e) { return e.result(); }
  static R merge(const R* part, int64_t pieces) {
    R e;
    for (int64_t k = 0; k < pieces; ++k) {
      e.best = R::pick(e.best, part[k].best);
      e.nan |= part[k].nan;
    }
    return e;
  }
};

// Where the tasks' results go: with one piece per block, straight into the output; otherwise
// into part[output * pieces + piece], which finish() merges output by output.
template <class T, class Result>
struct PieceOut {
  using R = typename Result::R;
  T* op;
  int64_t pieces;
  std::vector<R> part;
  PieceOut(T* o, const Split& s)
      : op(o), pieces(block_pieces(s.n_red)), part(pieces > 1 ? size_t(s.n_out * pieces) : 0) {}
  void put(int64_t o, int64_t piece, const R& r) {
    if (pieces == 1)
      op[o] = Result::value(r);
    else
      part[size_t(o * pieces + piece)] = r;
  }
  void finish(int64_t n_out) {
    if (pieces > 1)
      for (int64_t o = 0; o < n_out; ++o) op[o] = Result::value(Result::merge(part.data() + o * pieces, pieces));
  }
};

// Output by output (the general loop order): a task is one piece, terms t0 to t1 - 1, of one
// output's block, which starts at `base`. piece_result(base, t0, t1, next_task) gives its R;
// next_task() is the pointer to the next task's first term in this thread (nullptr after the
// last), for prefetching.
template <class T, class Result, class F>
void reduce_by_outputs(const Split& s, const T* xp, T* op, F&& piece_result) {
  PieceOut<T, Result> out(op, s);
  const int64_t pieces = out.pieces;
  auto start = [&](int64_t task) {  // the pointer to a task's first term
    return xp + offset_of(task / pieces, s.out_size, s.out_stride) +
           offset_of(task % pieces * kSumPiece, s.red_size, s.red_stride);
  };
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(std::min(s.n_red, kSumPiece), 1));
  parallel_for(s.n_out * pieces, grain, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t o = task / pieces, piece = task % pieces, t0 = piece * kSumPiece;
      const T* base = xp + offset_of(o, s.out_size, s.out_stride);
      auto next_task = [&] { return task + 1 < e ? start(task + 1) : nullptr; };
      out.put(o, piece, piece_result(base, t0, std::min(s.n_red, t0 + kSumPiece), next_task));
    }
  });
  out.finish(s.n_out);
}

constexpr int64_t kColumns = 256;  // outputs per column task: 16 lanes of them are 32 KB of doubles

// A row of outputs at a time, when x's innermost kept dim is contiguous (s.out_stride.back() == 1):
// the outputs are rows of `cols` adjacent columns, and a task is one piece, terms t0 to t1 - 1,
// of up to kColumns columns of one row, whose first term starts at `base`; each term of the piece
// (in the same row-major order as by outputs) is a contiguous run of the task's columns.
// piece_results(base, n, t0, t1, r) writes the n columns' results to r.
template <class T, class Result, class F>
void reduce_by_columns(const Split& s, const T* xp, T* op, F&& piece_results) {
  PieceOut<T, Result> out(op, s);
  const int64_t pieces = out.pieces;
  const int64_t cols = s.out_size.back(), rows = s.n_out / cols, col_tasks = (cols + kColumns - 1) / kColumns;
  const std::vector<int64_t> row_size(s.out_size.begin(), s.out_size.end() - 1),
      row_stride(s.out_stride.begin(), s.out_stride.end() - 1);
  const int64_t grain =
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(std::min(s.n_red, kSumPiece) * kColumns, 1));
  parallel_for(rows * col_tasks * pieces, grain, [&](int64_t b, int64_t e) {
    std::vector<typename Result::R> r(kColumns);
    for (int64_t task = b; task < e; ++task) {
      const int64_t piece = task % pieces, row = task / pieces / col_tasks;
      const int64_t c0 = task / pieces % col_tasks * kColumns, n = std::min(kColumns, cols - c0),
                    t0 = piece * kSumPiece;
      piece_results(xp + offset_of(row, row_size, row_stride) + c0, n, t0, std::min(s.n_red, t0 + kSumPiece), r.data());
      for (int64_t c = 0; c < n; ++c) out.put(row * cols + c0 + c, piece, r[size_t(c)]);
    }
  });
  out.finish(s.n_out);
}

// Float sums: the piece's values in row-major order, whatever their strides, as one lane sum
// (kernels/cpu/lane_sum.h); by columns, term m of the piece goes into lane m mod kLanes of each
// column.
template <class T>
void sum_float(const Split& s, bool columns, const T* xp, T* op) {
  using Acc = typename acc_type<T>::type;
  if constexpr (std::is_same_v<T, float>) {
    // Blocks that are each one contiguous run of floats (a sum over the last dim, or over
    // trailing dims that merge into one), in one piece: several rows' lane sums side by side.
    if (!columns && s.red_size.size() == 1 && s.red_stride[0] == 1 && block_pieces(s.n_red) == 1) {
      const int64_t grain = std::max<int64_t>(1, kParallelGrain / s.n_red);
      parallel_for(s.n_out, grain, [&](int64_t b, int64_t e) {
        constexpr int64_t kBatch = 64;  // outputs whose row pointers are gathered at a time
        const float* rows[kBatch];
        double sums[kBatch];
        for (int64_t o0 = b; o0 < e; o0 += kBatch) {
          const int64_t m = std::min(kBatch, e - o0);
          for (int64_t i = 0; i < m; ++i) rows[i] = xp + offset_of(o0 + i, s.out_size, s.out_stride);
          row_lane_sums(rows, m, s.n_red, sums);
          for (int64_t i = 0; i < m; ++i) op[o0 + i] = SumResult<T>::value(sums[i]);
        }
      });
      return;
    }
  }
  if (!columns) {
    reduce_by_outputs<T, SumResult<T>>(s, xp, op, [&](const T* base, int64_t t0, int64_t t1, auto next_task) {
      LaneSum acc;
      for_each_run(s, t0, t1, [&](int64_t off, int64_t n, int64_t st, int64_t next) {
        const T* p = base + off;
        if (st == 1)  // after the piece's last run comes the next task's first
          add_run(acc, p, n, next >= 0 ? base + next : next_task());
        else
          acc.add(n, [&](int64_t i) { return double(static_cast<Acc>(p[i * st])); });
      });
      return acc.total();
    });
    return;
  }
  reduce_by_columns<T, SumResult<T>>(s, xp, op, [&](const T* base, int64_t n, int64_t t0, int64_t t1, double* r) {
    double lanes[kLanes * kColumns];  // 32 KB
    std::fill(lanes, lanes + kLanes * n, 0.0);
    int64_t m = 0;  // terms of the piece so far
    for_each_run(s, t0, t1, [&](int64_t off, int64_t len, int64_t st, int64_t) {
      for (int64_t i = 0; i < len; ++i, ++m) {
        const T* p = base + off + i * st;
        if (i + 2 < len) prefetch_bytes(p + 2 * st, n * int64_t(sizeof(T)));
        double* l = lanes + (m % kLanes) * n;
        for (int64_t c = 0; c < n; ++c) l[c] += double(static_cast<Acc>(p[c]));
      }
    });
    for (int64_t c = 0; c < n; ++c) r[c] = combine_lanes(lanes + c, n);
  });
}

// Max (kMax) or min: by outputs, each run folded in lanes; by columns, each term of the piece
// folded into every column's key side by side.
template <bool kMax, class T>
void extremum(const Split& s, bool columns, const T* xp, T* op) {
  using E = Extremum<kMax, T>;
  using Result = ExtremumResult<kMax, T>;
  if (!columns) {
    reduce_by_outputs<T, Result>(s, xp, op, [&](const T* base, int64_t t0, int64_t t1, auto) {
      E ex;
      for_each_run(s, t0, t1, [&](int64_t off, int64_t n, int64_t st, int64_t) { ex.add(base + off, n, st); });
      return ex;
    });
    return;
  }
  reduce_by_columns<T, Result>(s, xp, op, [&](const T* base, int64_t n, int64_t t0, int64_t t1, E* r) {
    typename E::K best[kColumns];
    int32_t bad[kColumns];
    std::fill(best, best + n, E().best);
    std::fill(bad, bad + n, 0);
    for_each_run(s, t0, t1, [&](int64_t off, int64_t len, int64_t st, int64_t) {
      for (int64_t i = 0; i < len; ++i) {
        const T* p = base + off + i * st;
        if (i + 2 < len) prefetch_bytes(p + 2 * st, n * int64_t(sizeof(T)));
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) {
          best[c] = E::pick(best[c], Keys<T>::key(p[c]));
          bad[c] |= int32_t(Keys<T>::nan(p[c]));
        }
      }
    });
    for (int64_t c = 0; c < n; ++c) {
      r[c].best = best[c];
      r[c].nan = bad[c] != 0;
    }
  });
}

// Argmax (kMax) or argmin of the block p[0], p[st], ..., p[(n - 1) * st], n >= 1: the index of its
// first NaN if it holds one, else the first index of its extremum (of -0 and +0, which compare
// equal, the first). Values compare in their accumulate type, so int64 values beyond 2^53 stay
// exact. A contiguous block of at least kArgLanes * 4 values runs in kArgLanes lanes: lane j takes
// values j, j + 16, ... and keeps its extremum and the first index holding it; the block's
// answer is the lanes' extremum at the smallest index among the lanes that hold it, then the
// tail. A NaN anywhere sends the block to the plain loop, which stops at the first one.
constexpr int64_t kArgLanes = 16;

template <bool kMax, class T>
int64_t arg_extremum(const T* p, int64_t n, int64_t st) {
  using Acc = typename acc_type<T>::type;
  auto beats = [](Acc a, Acc b) { return kMax ? a > b : a < b; };
  Acc best = static_cast<Acc>(p[0]);
  int64_t at = 0, i = 1;
  // Lane indices as wide as the values, so that each select is one vector operation.
  using Index = std::conditional_t<sizeof(Acc) == 4, int32_t, int64_t>;
  if (st == 1 && n >= 4 * kArgLanes && n <= std::numeric_limits<Index>::max()) {
    Acc lane[kArgLanes];
    Index lane_at[kArgLanes];
    int32_t bad[kArgLanes] = {};
    for (int64_t j = 0; j < kArgLanes; ++j) {
      lane[j] = static_cast<Acc>(p[j]);
      lane_at[j] = Index(j);
      bad[j] = int32_t(Keys<T>::nan(p[j]));
    }
    for (i = kArgLanes; i + kArgLanes <= n; i += kArgLanes)
#pragma omp simd
      for (int64_t j = 0; j < kArgLanes; ++j) {
        // Selects spelled as min/max and masks: GCC turns `better ? a : b` into masked stores
        // and branches, about four times slower.
        const Acc v = static_cast<Acc>(p[i + j]);
        const Index better = -Index(beats(v, lane[j]));  // all ones where v wins
        lane[j] = kMax ? std::max(lane[j], v) : std::min(lane[j], v);
        lane_at[j] = (Index(i + j) & better) | (lane_at[j] & ~better);
        bad[j] |= int32_t(Keys<T>::nan(p[i + j]));
      }
    int32_t any_nan = 0;
    for (int64_t j = 0; j < kArgLanes; ++j) any_nan |= bad[j];
    if (any_nan) {
      i = 1;  // the plain loop below finds the first NaN
    } else {
      best = lane[0];
      at = lane_at[0];
      for (int64_t j = 1; j < kArgLanes; ++j)
        if (beats(lane[j], best) || (lane[j] == best && lane_at[j] < at)) best = lane[j], at = lane_at[j];
    }
  }
  if (Keys<T>::nan(p[0])) return 0;
  for (; i < n; ++i) {
    const T x = p[i * st];
    if (Keys<T>::nan(x)) return i;
    const Acc v = static_cast<Acc>(x);
    if (beats(v, best)) best = v, at = i;
  }
  return at;
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) {
  Split s = split_dims(x, dims);
  if (s.n_out == 0) return;  // no output to write (the front-end answers empty tensors itself)
  const T* xp = x.data<T>();
  int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(s.n_red, 1));
  if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin) {
    int64_t* op_ = out.data<int64_t>();
    const int64_t n = s.n_red, st = s.red_stride.empty() ? 1 : s.red_stride[0];
    parallel_for(s.n_out, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* base = xp + offset_of(o, s.out_size, s.out_stride);
        op_[o] = op == ReduceOp::ArgMax ? arg_extremum<true>(base, n, st) : arg_extremum<false>(base, n, st);
      }
    });
    return;
  }
  T* op_ = out.data<T>();
  // The row-of-outputs loop order applies when x's innermost kept dim is contiguous.
  const bool columns = !s.out_size.empty() && s.out_stride.back() == 1 && !s.red_size.empty();
  if (op == ReduceOp::Max || op == ReduceOp::Min) {
    op == ReduceOp::Max ? extremum<true>(s, columns, xp, op_) : extremum<false>(s, columns, xp, op_);
    return;
  }
  if constexpr (std::is_floating_point_v<typename acc_type<T>::type>) {
    sum_float(s, columns, xp, op_);
    return;
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
