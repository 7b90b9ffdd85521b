// kernels/cpu/pool.cpp: max/avg pooling and adaptive average pooling (NCHW, contiguous), one
// (image, channel) plane per OpenMP work item. Max pooling records the flat h*W+w index of each
// winner (PyTorch's convention), which is all its backward needs.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

void CpuBackend::max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) {
  int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    int64_t* ip = indices.data<int64_t>();
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      for (int64_t pl = b; pl < e; ++pl) {
        const T* xs = xp + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
            Acc<T> best = -std::numeric_limits<Acc<T>>::infinity();
            int64_t bi = -1;
            for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kh, H); ++h)
              for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kw, W); ++w) {
                Acc<T> v = Acc<T>(xs[h * W + w]);
                if (v > best || std::isnan(v) || bi < 0) {
                  best = v;
                  bi = h * W + w;
                  if (std::isnan(v)) goto done;
                }
              }
          done:
            yp[(pl * OH + oh) * OW + ow] = T(best);
            ip[(pl * OH + oh) * OW + ow] = bi;
          }
      }
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
