// kernels/cpu/pool.cpp: max/avg pooling and adaptive average pooling (NCHW, contiguous), one
// (image, channel) plane per OpenMP work item. Max pooling records the flat h*W+w index of each
// winner (PyTorch's convention), which is all its backward needs.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

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

template <int KH, int KW, class T>
inline MaxPick<Acc<T>> max_window(const T* xs, int64_t W, int64_t h0, int64_t w0, int64_t kh, int64_t kw) {
  const int64_t nh = KH ? KH : kh, nw = KW ? KW : kw;
  MaxPick<Acc<T>> m;
  for (int64_t h = h0; h < h0 + nh; ++h)
    for (int64_t w = w0; w < w0 + nw; ++w) m.offer(Acc<T>(xs[h * W + w]), h * W + w);
  return m;
}

// A row of outputs [ow0, ow1) of the common 2x2, stride 2, unpadded pooling, whose windows are
// rows h0, h0 + 1 and columns 2 ow, 2 ow + 1: the four candidates reduced as a tree (pairs, then
// the pair winners), in a loop without branches, which the compiler vectorizes.
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

template <int KH, int KW, class T>
void max_pool_plane(const T* xs, T* ys, int64_t* is, int64_t H, int64_t W, int64_t OH, int64_t OW,
                    const Pool2dParams& p) {
  // Outputs [ow_lo, ow_hi) have windows inside the plane's columns (the rest are clipped).
  const int64_t ow_lo = std::min(OW, (p.pad_w + p.stride_w - 1) / p.stride_w);
  const int64_t ow_hi = std::max(ow_lo, std::min(OW, (W - p.kw + p.pad_w) / p.stride_w + 1));
  const bool plain_2x2 = KH == 2 && KW == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t h0 = oh * p.stride_h - p.pad_h;
    const bool rows_inside = h0 >= 0 && h0 + p.kh <= H;
    if (plain_2x2 && rows_inside) {  // every window of the row lies inside (ow_hi = OW)
      max_pool_row_2x2(xs, ys + oh * OW, is + oh * OW, W, h0, 0, OW);
      continue;
    }
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t w0 = ow * p.stride_w - p.pad_w;
      MaxPick<Acc<T>> m;
      if (rows_inside && ow >= ow_lo && ow < ow_hi) {
        m = max_window<KH, KW>(xs, W, h0, w0, p.kh, p.kw);
      } else {
        for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kh, H); ++h)
          for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kw, W); ++w)
            m.offer(Acc<T>(xs[h * W + w]), h * W + w);
      }
      ys[oh * OW + ow] = T(m.best);
      is[oh * OW + ow] = m.at;
    }
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
      for (int64_t pl = b; pl < e; ++pl) plane(xp + pl * H * W, yp + pl * OH * OW, ip + pl * OH * OW, H, W, OH, OW, p);
    });
  });
}

void CpuBackend::max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) {
  int64_t NC = gx.size(0) * gx.size(1), HW = gx.size(2) * gx.size(3), OHW = gy.size(2) * gy.size(3);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), "max_pool2d_backward", [&] {
    using T = scalar_t;
    const T* g = gy.data<T>();
    const int64_t* ip = indices.data<int64_t>();
    T* out = gx.data<T>();
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      std::vector<Acc<T>> acc(static_cast<size_t>(HW));
      for (int64_t pl = b; pl < e; ++pl) {
        std::fill(acc.begin(), acc.end(), Acc<T>(0));
        for (int64_t i = 0; i < OHW; ++i) acc[size_t(ip[pl * OHW + i])] += Acc<T>(g[pl * OHW + i]);
        for (int64_t i = 0; i < HW; ++i) out[pl * HW + i] = T(acc[size_t(i)]);
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

// y = the mean of x over each output's window(oh, ow), one plane per work item.
template <class WindowFn>
void avg_pool_forward(const Tensor& y, const Tensor& x, const char* name, WindowFn window) {
  int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  MINIMA_DISPATCH_FLOAT(x.dtype(), name, [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      for (int64_t pl = b; pl < e; ++pl)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            Window wd = window(oh, ow);
            Acc<T> s = 0;
            for (int64_t h = wd.h0; h < wd.h1; ++h)
              for (int64_t w = wd.w0; w < wd.w1; ++w) s += Acc<T>(xp[(pl * H + h) * W + w]);
            yp[(pl * OH + oh) * OW + ow] = T(s / Acc<T>(wd.div));
          }
    });
  });
}

// gx = each output's gradient spread evenly over its window (summed where windows overlap).
template <class WindowFn>
void avg_pool_backward(const Tensor& gx, const Tensor& gy, const char* name, WindowFn window) {
  int64_t NC = gx.size(0) * gx.size(1), H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  MINIMA_DISPATCH_FLOAT(gx.dtype(), name, [&] {
    using T = scalar_t;
    const T* g = gy.data<T>();
    T* out = gx.data<T>();
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      std::vector<Acc<T>> acc(static_cast<size_t>(H * W));
      for (int64_t pl = b; pl < e; ++pl) {
        std::fill(acc.begin(), acc.end(), Acc<T>(0));
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            Window wd = window(oh, ow);
            Acc<T> v = Acc<T>(g[(pl * OH + oh) * OW + ow]) / Acc<T>(wd.div);
            for (int64_t h = wd.h0; h < wd.h1; ++h)
              for (int64_t w = wd.w0; w < wd.w1; ++w) acc[size_t(h * W + w)] += v;
          }
        for (int64_t i = 0; i < H * W; ++i) out[pl * H * W + i] = T(acc[size_t(i)]);
      }
    });
  });
}
}  // namespace

void CpuBackend::avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) {
  const int64_t H = x.size(2), W = x.size(3);
  avg_pool_forward(y, x, "avg_pool2d", [&](int64_t oh, int64_t ow) { return avg_window(oh, ow, H, W, p); });
}

void CpuBackend::avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) {
  const int64_t H = gx.size(2), W = gx.size(3);
  avg_pool_backward(gx, gy, "avg_pool2d_backward", [&](int64_t oh, int64_t ow) { return avg_window(oh, ow, H, W, p); });
}

void CpuBackend::adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) {
  const int64_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  avg_pool_forward(y, x, "adaptive_avg_pool2d",
                   [&](int64_t oh, int64_t ow) { return adaptive_window(oh, ow, H, W, OH, OW); });
}

void CpuBackend::adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) {
  const int64_t H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  avg_pool_backward(gx, gy, "adaptive_avg_pool2d_backward",
                    [&](int64_t oh, int64_t ow) { return adaptive_window(oh, ow, H, W, OH, OW); });
}

}  // namespace minima::cpu
