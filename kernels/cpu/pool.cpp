// kernels/cpu/pool.cpp: max/avg pooling and adaptive average pooling (NCHW, contiguous), one
// (image, channel) plane per OpenMP work item. Max pooling records the flat h*W+w index of each
// winner (PyTorch's convention), which is all its backward needs.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

namespace {
// a, or b when take_b, chosen by a mask rather than a branch: which candidate wins a max-pool
// comparison is data-dependent, so a branch is mispredicted half the time (this made max pooling
// a fifth of a small CNN's training step), and with masks the 2x2 loop below vectorizes (13x).
template <class A>
inline A pick(bool take_b, A a, A b) {
  using U = std::conditional_t<sizeof(A) == 4, uint32_t, uint64_t>;
  static_assert(sizeof(A) == sizeof(U), "pick: float or double");
  U ua, ub;
  std::memcpy(&ua, &a, sizeof a);
  std::memcpy(&ub, &b, sizeof b);
  const U m = U(0) - U(take_b);
  const U r = (ub & m) | (ua & ~m);
  A out;
  std::memcpy(&out, &r, sizeof out);
  return out;
}
inline int64_t pick(bool take_b, int64_t a, int64_t b) {
  const int64_t m = -int64_t(take_b);
  return (b & m) | (a & ~m);
}
inline int32_t pick(bool take_b, int32_t a, int32_t b) {
  const int32_t m = -int32_t(take_b);
  return (b & m) | (a & ~m);
}

// Max pooling's rule, PyTorch's: the first maximum in window order, or the first NaN, which then
// stays. For two candidates in order, b replaces a when a is not NaN and b is larger or NaN
// (!(b <= a) is b > a or either is NaN). The rule is associative, so a window may be reduced as a
// tree as well as in order.
template <class A>
inline bool later_wins(A a, A b) {
  return (a == a) & !(b <= a);
}

template <class A>
struct MaxPick {
  A best = -std::numeric_limits<A>::infinity();
  int64_t at = -1;
  void offer(A v, int64_t i) {
    const bool take = (at < 0) | later_wins(best, v);
    best = pick(take, best, v);
    at = pick(take, at, i);
  }
};

// A row of outputs [ow0, ow1) of the common 2x2, stride 2, unpadded pooling, whose windows are
// rows h0, h0 + 1 and columns 2 ow, 2 ow + 1: the four candidates reduced as a tree (pairs, then
// the pair winners), in a loop without branches, which the compiler vectorizes. It takes 0.6 of
// max_pool_row_inside's time on these windows (smallcnn's), which is why it stays beside it.
template <class T>
void max_pool_row_2x2(const T* xs, T* ys, int64_t* is, int64_t W, int64_t h0, int64_t ow0, int64_t ow1) {
  using A = Acc<T>;
  const T* r0 = xs + h0 * W;
  const T* r1 = r0 + W;
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    const A a = A(r0[2 * ow]), b = A(r0[2 * ow + 1]), c = A(r1[2 * ow]), d = A(r1[2 * ow + 1]);
    const bool tb = later_wins(a, b), td = later_wins(c, d);
    const A top = pick(tb, a, b), bottom = pick(td, c, d);
    const int64_t otop = int64_t(tb), obottom = W + int64_t(td);
    const bool t = later_wins(top, bottom);
    ys[ow] = T(pick(t, top, bottom));
    is[ow] = h0 * W + 2 * ow + pick(t, otop, obottom);
  }
}

// Scratch for max_pool_row_inside: a row's running maxima and where they are in their windows.
template <class A>
struct RowScratch {
  std::vector<A> best;
  std::vector<int32_t> at;  // kh * W + kw of the window position that holds best
  explicit RowScratch(int64_t n) : best(static_cast<size_t>(n)), at(static_cast<size_t>(n)) {}
};

// max_pool_row_inside's scan for float planes and column stride 2 (the 3x3 windows of ResNet's
// stem and of inception-small's downsampling), eight outputs at a time in vector lanes: output
// j's candidate at window offset `code` is c0[code + 2 j], so a lane vector is the even floats of
// two vector loads, where the compiler's loop over outputs took four lanes with a scalar
// remainder (15 outputs a row on a 32x32 plane: 4 + 4 + 4 in lanes, 3 one by one). Each lane runs
// later_wins and pick as the scalar loop does, so the results are the same bits. Blocks of
// outputs below `whole` load whole vectors (16 floats from any of their window positions on lie
// inside the plane; a last block of fewer than 8 outputs reads on into the next row, in lanes that
// are never stored); the others, near the plane's end, take their candidates lane by lane, the
// lanes past n repeating the last output's.
typedef float Floats8 __attribute__((vector_size(32)));
typedef int32_t Ints8 __attribute__((vector_size(32)));
void max_pool_scan_s2_float(const float* c0, int64_t n, int64_t whole, int64_t W, int64_t nh, int64_t nw, float* best,
                            int32_t* at) {
  // Outputs j .. j + r - 1 (r <= 8), their candidates loaded as whole vectors or lane by lane.
  auto block = [&](int64_t j, int64_t r, auto as_vectors) {
    auto lanes = [&](const float* c) {
      Floats8 v = {};
      if constexpr (decltype(as_vectors)::value) {
        Floats8 a, b;
        std::memcpy(&a, c + 2 * j, sizeof a);
        std::memcpy(&b, c + 2 * j + 8, sizeof b);
        v = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
      } else {
        for (int64_t l = 0; l < 8; ++l) v[l] = c[2 * (j + std::min(l, r - 1))];
      }
      return v;
    };
    Floats8 b = lanes(c0);
    Ints8 w = {};
    for (int64_t kh = 0; kh < nh; ++kh)
      for (int64_t kw = kh == 0 ? 1 : 0; kw < nw; ++kw) {
        const int32_t code = int32_t(kh * W + kw);
        const Floats8 v = lanes(c0 + code);
        const Ints8 take = (b == b) & ~(v <= b);  // later_wins, lane by lane
        b = take ? v : b;
        w = take ? Ints8{} + code : w;
      }
    std::memcpy(best + j, &b, size_t(r) * sizeof(float));
    std::memcpy(at + j, &w, size_t(r) * sizeof(int32_t));
  };
  int64_t j = 0;
  for (; j + 8 <= std::min(n, whole); j += 8) block(j, 8, std::true_type{});
  if (j < n && j + 8 <= whole) {  // a last block of fewer than 8 outputs
    block(j, n - j, std::true_type{});
    j = n;
  }
  for (; j < n; j += 8) block(j, std::min<int64_t>(8, n - j), std::false_type{});
}

// Outputs [ow0, ow1) of one output row whose windows all lie inside the plane (rows h0 .. h0 + kh - 1,
// columns ow * stride_w - pad_w + 0 .. kw - 1). Each window is reduced in window order with
// MaxPick's rule, but window position by window position across the whole row: the inner loop
// runs over outputs, whose chains are independent, so it vectorizes, where one window at a time is
// one chain of dependent compare-and-selects (a 3x3 window took about 5 cycles per candidate).
// The winner's place is kept as a 32-bit offset within its window, the width of a float lane. SW
// is the column stride when it is 1 or 2 (0: p.stride_w); the compiler vectorizes strided loads
// only when it knows the stride. The caller ensures (kh - 1) * W + kw fits in 32 bits.
template <int KH, int KW, int SW, class T>
void max_pool_row_inside(const T* xs, T* ys, int64_t* is, RowScratch<Acc<T>>& scratch, int64_t W, int64_t h0,
                         const Pool2dParams& p, int64_t ow0, int64_t ow1, int64_t plane) {
  using A = Acc<T>;
  const int64_t nh = KH ? KH : p.kh, nw = KW ? KW : p.kw, sw = SW ? SW : p.stride_w, n = ow1 - ow0;
  const int64_t first = h0 * W + ow0 * sw - p.pad_w;  // the flat index of output ow0's first candidate
  A* best = scratch.best.data();
  int32_t* at = scratch.at.data();
  if constexpr (SW == 2 && std::is_same_v<T, float>) {
    // Whole vectors while the last of the 16 floats read at the window's last position, flat
    // index first + (nh - 1) W + nw - 1 + 2 j + 15 for the block of outputs j .. j + 7, lies in
    // the plane (its `plane` values).
    const int64_t whole = std::max<int64_t>(0, (plane - first - (nh - 1) * W - nw + 1) / 2);
    max_pool_scan_s2_float(xs + first, n, whole, W, nh, nw, best, at);
  } else {
    for (int64_t j = 0; j < n; ++j) {
      best[j] = A(xs[first + j * sw]);
      at[j] = 0;
    }
    for (int64_t kh = 0; kh < nh; ++kh)
      for (int64_t kw = kh == 0 ? 1 : 0; kw < nw; ++kw) {
        const int32_t code = int32_t(kh * W + kw);
        const T* c = xs + first + code;
        for (int64_t j = 0; j < n; ++j) {
          const A v = A(c[j * sw]);
          const bool t = later_wins(best[j], v);
          best[j] = pick(t, best[j], v);
          at[j] = pick(t, at[j], code);
        }
      }
  }
  for (int64_t j = 0; j < n; ++j) {
    ys[j] = T(best[j]);
    is[j] = first + j * sw + at[j];
  }
}

// max_pool_row_inside for a column stride, with the strides 1 and 2 known to the compiler.
template <int KH, int KW, class T>
auto row_inside_kernel(int64_t stride_w) {
  return stride_w == 1   ? max_pool_row_inside<KH, KW, 1, T>
         : stride_w == 2 ? max_pool_row_inside<KH, KW, 2, T>
                         : max_pool_row_inside<KH, KW, 0, T>;
}

// Outputs [first, second) of every output row have windows inside the plane's columns (the rest
// are clipped by its left or right edge).
inline std::pair<int64_t, int64_t> inside_columns(int64_t W, int64_t OW, const Pool2dParams& p) {
  const int64_t lo = std::min(OW, (p.pad_w + p.stride_w - 1) / p.stride_w);
  return {lo, std::max(lo, std::min(OW, (W - p.kw + p.pad_w) / p.stride_w + 1))};
}

template <int KH, int KW, class T>
void max_pool_plane(const T* xs, T* ys, int64_t* is, RowScratch<Acc<T>>& scratch, int64_t H, int64_t W, int64_t OH,
                    int64_t OW, const Pool2dParams& p) {
  const auto [ow_lo, ow_hi] = inside_columns(W, OW, p);
  const bool plain_2x2 = KH == 2 && KW == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t h0 = oh * p.stride_h - p.pad_h;
    T* yr = ys + oh * OW;
    int64_t* ir = is + oh * OW;
    const bool rows_inside = h0 >= 0 && h0 + p.kh <= H;
    if (plain_2x2 && rows_inside) {  // every window of the row lies inside (ow_hi = OW)
      max_pool_row_2x2(xs, yr, ir, W, h0, 0, OW);
      continue;
    }
    // One window at a time: its candidates inside the plane, in window order. For the windows that
    // the plane's left or right edge clips, and for all of a row when a window's offsets would not
    // fit the 32 bits of max_pool_row_inside (far beyond any real plane).
    auto clipped = [&](int64_t ow) {
      const int64_t w0 = ow * p.stride_w - p.pad_w;
      MaxPick<Acc<T>> m;
      for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kh, H); ++h)
        for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kw, W); ++w)
          m.offer(Acc<T>(xs[h * W + w]), h * W + w);
      yr[ow] = T(m.best);
      ir[ow] = m.at;
    };
    if ((p.kh - 1) * W + p.kw > INT32_MAX) {
      for (int64_t ow = 0; ow < OW; ++ow) clipped(ow);
      continue;
    }
    for (int64_t ow = 0; ow < ow_lo; ++ow) clipped(ow);
    if (ow_hi > ow_lo) {
      // Where the plane's top or bottom edge clips the row's windows, their rows inside the plane,
      // in the same order, are windows of fewer rows that lie inside.
      const int64_t top = std::max<int64_t>(0, -h0);
      Pool2dParams q = p;
      q.kh = std::min(h0 + p.kh, H) - h0 - top;
      auto row = rows_inside ? row_inside_kernel<KH, KW, T>(p.stride_w) : row_inside_kernel<0, KW, T>(p.stride_w);
      row(xs, yr + ow_lo, ir + ow_lo, scratch, W, h0 + top, q, ow_lo, ow_hi, H * W);
    }
    for (int64_t ow = ow_hi; ow < OW; ++ow) clipped(ow);
  }
}
}  // namespace

void CpuBackend::max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) {
  int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    int64_t* ip = indices.data<int64_t>();
    // The common windows (2x2, 3x3) with their size known to the compiler, so it unrolls them.
    auto plane = p.kh == 2 && p.kw == 2   ? max_pool_plane<2, 2, T>
                 : p.kh == 3 && p.kw == 3 ? max_pool_plane<3, 3, T>
                                          : max_pool_plane<0, 0, T>;
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      RowScratch<Acc<T>> scratch(OW);
      for (int64_t pl = b; pl < e; ++pl)
        plane(xp + pl * H * W, yp + pl * OH * OW, ip + pl * OH * OW, scratch, H, W, OH, OW, p);
    });
  });
}

namespace {
// Where a backward sums one plane's input gradients, from zeros: in the output plane itself when
// the sum's type is the value's own (float32, float64), so that no scratch plane is zeroed, filled
// and copied out (on 2x2 windows of 128x64x32x32, max pooling's backward takes 0.8x the time it
// took with the scratch plane, average pooling's 0.7x); bf16 sums in a float plane, rounded once
// into the output at the end.
template <class A, class T>
class GradPlane {
 public:
  static constexpr bool kInPlace = std::is_same_v<A, T>;
  explicit GradPlane(int64_t HW) : HW_(HW), scratch_(kInPlace ? 0 : size_t(HW)) {}
  // The zeroed plane to sum output plane o's gradients into.
  A* start(T* o) {
    A* plane;
    if constexpr (kInPlace)
      plane = o;
    else
      plane = scratch_.data();
    std::fill(plane, plane + HW_, A(0));
    return plane;
  }
  void finish(T* o) const {
    if constexpr (!kInPlace)
      for (int64_t i = 0; i < HW_; ++i) o[i] = T(scratch_[size_t(i)]);
  }

 private:
  int64_t HW_;
  std::vector<A> scratch_;
};
}  // namespace

void CpuBackend::max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) {
  int64_t NC = gx.size(0) * gx.size(1), HW = gx.size(2) * gx.size(3), OHW = gy.size(2) * gy.size(3);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), "max_pool2d_backward", [&] {
    using T = scalar_t;
    const T* g = gy.data<T>();
    const int64_t* ip = indices.data<int64_t>();
    T* out = gx.data<T>();
    // Each input's gradient is the sum, in output order, of the gradients of the outputs it won.
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      GradPlane<Acc<T>, T> plane(HW);
      for (int64_t pl = b; pl < e; ++pl) {
        Acc<T>* acc = plane.start(out + pl * HW);
        for (int64_t i = 0; i < OHW; ++i) acc[ip[pl * OHW + i]] += Acc<T>(g[pl * OHW + i]);
        plane.finish(out + pl * HW);
      }
    });
  });
}

namespace {
// The window of output (oh, ow) clipped to the image, and its divisor.
struct Window {
  int64_t h0, h1, w0, w1, div;
};
// avg_pool2d's window (PyTorch's rules for padding and count_include_pad).
inline Window avg_window(int64_t oh, int64_t ow, int64_t H, int64_t W, const Pool2dParams& p) {
  int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  int64_t h1 = std::min(h0 + p.kh, H + p.pad_h), w1 = std::min(w0 + p.kw, W + p.pad_w);
  int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, H);
  w1 = std::min(w1, W);
  int64_t div = p.count_include_pad ? padded : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, std::max<int64_t>(div, 1)};
}
// adaptive_avg_pool2d's window: rows floor(oh*H/OH) to ceil((oh+1)*H/OH), the same for columns.
inline int64_t a_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t a_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }
inline Window adaptive_window(int64_t oh, int64_t ow, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  Window wd{a_start(oh, H, OH), a_end(oh, H, OH), a_start(ow, W, OW), a_end(ow, W, OW), 0};
  wd.div = (wd.h1 - wd.h0) * (wd.w1 - wd.w0);
  return wd;
}

// avg_pool2d's windows that lie inside the plane's columns, a whole output row at once. Each
// output is still the sum of its window in the order of one window's loop (rows, then columns,
// from a zero) and each input gradient the sum of its outputs' shares in output order, so the
// results are bitwise those of one window at a time; but the inner loops run over the outputs of
// a row, whose sums are independent, so they vectorize, where one window at a time was a short
// loop with bounds worked out per output (3 GB/s on 2x2 windows, against 24 for max pooling's row
// loop). KW and SW are the window width and column stride when known to the compiler (0: p.kw,
// p.stride_w).

// The rows [h0, h1) of output row oh's windows that lie in the plane, and the divisor of the
// windows inside its columns: PyTorch's, as avg_window works it out.
struct RowWindow {
  int64_t h0, h1, div;
};
inline RowWindow avg_row_window(int64_t oh, int64_t H, const Pool2dParams& p) {
  const int64_t h0 = oh * p.stride_h - p.pad_h, h1 = std::min(h0 + p.kh, H + p.pad_h);
  const int64_t c0 = std::max<int64_t>(h0, 0), c1 = std::min(h1, H);
  const int64_t div = p.count_include_pad ? (h1 - h0) * p.kw : (c1 - c0) * p.kw;
  return {c0, c1, std::max<int64_t>(div, 1)};
}

// Outputs ys[0, n) of one row, whose windows start at column `first` + j * stride of rows rw.
template <int KW, int SW, class T>
void avg_pool_row_inside(const T* xs, T* ys, Acc<T>* sum, int64_t W, const RowWindow& rw, int64_t first, int64_t n,
                         const Pool2dParams& p) {
  using A = Acc<T>;
  const int64_t nw = KW ? KW : p.kw, sw = SW ? SW : p.stride_w;
  const A div = A(rw.div);
  if (KW == 2 && SW == 2 && rw.h1 - rw.h0 == 2) {  // the common 2x2 windows, in one pass
    const T* r0 = xs + rw.h0 * W + first;
    const T* r1 = r0 + W;
    for (int64_t j = 0; j < n; ++j)
      ys[j] = T((((A(0) + A(r0[2 * j]) + A(r0[2 * j + 1])) + A(r1[2 * j])) + A(r1[2 * j + 1])) / div);
    return;
  }
  for (int64_t j = 0; j < n; ++j) sum[j] = A(0);
  for (int64_t h = rw.h0; h < rw.h1; ++h)
    for (int64_t kw = 0; kw < nw; ++kw) {
      const T* c = xs + h * W + first + kw;
      for (int64_t j = 0; j < n; ++j) sum[j] += A(c[j * sw]);
    }
  for (int64_t j = 0; j < n; ++j) ys[j] = T(sum[j] / div);
}

// The shares gy / div of outputs gs[0, n) of one row added into acc, the plane's input gradient.
// An input column w of the row's windows gets a share from output j through window column
// kw = w - first - j * stride; taking kw from the last to the first adds each input's shares in
// increasing j, the order of the outputs.
template <int KW, int SW, class T>
void avg_pool_row_spread(Acc<T>* acc, const T* gs, Acc<T>* share, int64_t W, const RowWindow& rw, int64_t first,
                         int64_t n, const Pool2dParams& p) {
  using A = Acc<T>;
  const int64_t nw = KW ? KW : p.kw, sw = SW ? SW : p.stride_w;
  const A div = A(rw.div);
  for (int64_t j = 0; j < n; ++j) share[j] = A(gs[j]) / div;
  if (KW == 2 && SW == 2) {  // windows side by side: each input column gets one share per row
    for (int64_t h = rw.h0; h < rw.h1; ++h) {
      A* r = acc + h * W + first;
      for (int64_t j = 0; j < n; ++j) {
        r[2 * j] += share[j];
        r[2 * j + 1] += share[j];
      }
    }
    return;
  }
  for (int64_t h = rw.h0; h < rw.h1; ++h)
    for (int64_t kw = nw - 1; kw >= 0; --kw) {
      A* r = acc + h * W + first + kw;
      for (int64_t j = 0; j < n; ++j) r[j * sw] += share[j];
    }
}

// Which row functions a plane takes: the common windows (2 or 3 wide, stride 1 or 2) unrolled.
template <class T, template <int, int, class> class Row>
auto avg_row_fn(const Pool2dParams& p) -> std::remove_const_t<decltype(Row<0, 0, T>::fn)> {
  const int kw = p.kw == 2 ? 2 : p.kw == 3 ? 3 : 0, sw = p.stride_w == 1 ? 1 : p.stride_w == 2 ? 2 : 0;
  switch (kw * 3 + sw) {
    case 2 * 3 + 1: return Row<2, 1, T>::fn;
    case 2 * 3 + 2: return Row<2, 2, T>::fn;
    case 3 * 3 + 1: return Row<3, 1, T>::fn;
    case 3 * 3 + 2: return Row<3, 2, T>::fn;
    case 2 * 3 + 0: return Row<2, 0, T>::fn;
    case 3 * 3 + 0: return Row<3, 0, T>::fn;
    case 0 * 3 + 1: return Row<0, 1, T>::fn;
    case 0 * 3 + 2: return Row<0, 2, T>::fn;
    default: return Row<0, 0, T>::fn;
  }
}
template <int KW, int SW, class T>
struct InsideRow {
  static constexpr auto fn = avg_pool_row_inside<KW, SW, T>;
};
template <int KW, int SW, class T>
struct SpreadRow {
  static constexpr auto fn = avg_pool_row_spread<KW, SW, T>;
};

// y = the mean of x over each output's window(oh, ow), one plane per work item. With `rows`
// (avg_pool2d's parameters), the windows inside the plane's columns go a row at a time.
template <class WindowFn>
void avg_pool_forward(const Tensor& y, const Tensor& x, const char* name, WindowFn window, const Pool2dParams* rows) {
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  const auto [ow_lo, ow_hi] = rows ? inside_columns(W, OW, *rows) : std::pair<int64_t, int64_t>(0, 0);
  MINIMA_DISPATCH_FLOAT(x.dtype(), name, [&] {
    using T = scalar_t;
    using A = Acc<T>;
    const auto row = rows ? avg_row_fn<T, InsideRow>(*rows) : nullptr;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      std::vector<A> sum(static_cast<size_t>(ow_hi - ow_lo));
      for (int64_t pl = b; pl < e; ++pl) {
        const T* xs = xp + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
          T* yr = yp + (pl * OH + oh) * OW;
          auto one = [&](int64_t ow) {
            const Window wd = window(oh, ow);
            A s = 0;
            for (int64_t h = wd.h0; h < wd.h1; ++h)
              for (int64_t w = wd.w0; w < wd.w1; ++w) s += A(xs[h * W + w]);
            yr[ow] = T(s / A(wd.div));
          };
          for (int64_t ow = 0; ow < ow_lo; ++ow) one(ow);
          if (ow_hi > ow_lo)
            row(xs, yr + ow_lo, sum.data(), W, avg_row_window(oh, H, *rows), ow_lo * rows->stride_w - rows->pad_w,
                ow_hi - ow_lo, *rows);
          for (int64_t ow = ow_hi; ow < OW; ++ow) one(ow);
        }
      }
    });
  });
}

// gx = each output's gradient spread evenly over its window (summed where windows overlap), the
// outputs in order. With `rows`, as avg_pool_forward.
template <class WindowFn>
void avg_pool_backward(const Tensor& gx, const Tensor& gy, const char* name, WindowFn window,
                       const Pool2dParams* rows) {
  const int64_t NC = gx.size(0) * gx.size(1), H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  const auto [ow_lo, ow_hi] = rows ? inside_columns(W, OW, *rows) : std::pair<int64_t, int64_t>(0, 0);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), name, [&] {
    using T = scalar_t;
    using A = Acc<T>;
    const auto row = rows ? avg_row_fn<T, SpreadRow>(*rows) : nullptr;
    const T* g = gy.data<T>();
    T* out = gx.data<T>();
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      GradPlane<A, T> plane(H * W);
      std::vector<A> share(static_cast<size_t>(ow_hi - ow_lo));
      for (int64_t pl = b; pl < e; ++pl) {
        A* acc = plane.start(out + pl * H * W);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const T* gr = g + (pl * OH + oh) * OW;
          auto one = [&](int64_t ow) {
            const Window wd = window(oh, ow);
            const A v = A(gr[ow]) / A(wd.div);
            for (int64_t h = wd.h0; h < wd.h1; ++h)
              for (int64_t w = wd.w0; w < wd.w1; ++w) acc[h * W + w] += v;
          };
          for (int64_t ow = 0; ow < ow_lo; ++ow) one(ow);
          if (ow_hi > ow_lo)
            row(acc, gr + ow_lo, share.data(), W, avg_row_window(oh, H, *rows), ow_lo * rows->stride_w - rows->pad_w,
                ow_hi - ow_lo, *rows);
          for (int64_t ow = ow_hi; ow < OW; ++ow) one(ow);
        }
        plane.finish(out + pl * H * W);
      }
    });
  });
}
}  // namespace

void CpuBackend::avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) {
  const int64_t H = x.size(2), W = x.size(3);
  avg_pool_forward(
      y, x, "avg_pool2d", [&](int64_t oh, int64_t ow) { return avg_window(oh, ow, H, W, p); }, &p);
}

void CpuBackend::avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) {
  const int64_t H = gx.size(2), W = gx.size(3);
  avg_pool_backward(
      gx, gy, "avg_pool2d_backward", [&](int64_t oh, int64_t ow) { return avg_window(oh, ow, H, W, p); }, &p);
}

void CpuBackend::adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) {
  const int64_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  avg_pool_forward(
      y, x, "adaptive_avg_pool2d", [&](int64_t oh, int64_t ow) { return adaptive_window(oh, ow, H, W, OH, OW); },
      nullptr);
}

void CpuBackend::adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) {
  const int64_t H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  avg_pool_backward(
      gx, gy, "adaptive_avg_pool2d_backward",
      [&](int64_t oh, int64_t ow) { return adaptive_window(oh, ow, H, W, OH, OW); }, nullptr);
}

}  // namespace minima::cpu
