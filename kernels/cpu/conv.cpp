// kernels/cpu/conv.cpp: conv2d forward and both backward passes as im2col + GEMM. For each image
// and group, the receptive fields are unrolled into a [C/g*KH*KW, OH*OW] matrix ("col"), so
// forward is W @ col, the input gradient is col2im(W^T @ gy) and the weight gradient is
// gy @ col^T summed over the batch. 1x1/stride-1/unpadded convs skip the unrolling. Images are
// spread over threads (each with its own col buffer); with fewer images than threads the GEMM
// itself runs in parallel instead.
#include <omp.h>

#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

namespace {

struct Geom {
  int64_t N, C, H, W, O, KH, KW, OH, OW, G, Cg, Og, ck, ohw;
};

Geom geom(const Tensor& x_or_gx, const Tensor& w, const Tensor& y_or_gy, const Conv2dParams& p) {
  Geom g;
  g.N = x_or_gx.size(0); g.C = x_or_gx.size(1); g.H = x_or_gx.size(2); g.W = x_or_gx.size(3);
  g.O = w.size(0); g.KH = w.size(2); g.KW = w.size(3);
  g.OH = y_or_gy.size(2); g.OW = y_or_gy.size(3);
  g.G = p.groups; g.Cg = g.C / g.G; g.Og = g.O / g.G;
  g.ck = g.Cg * g.KH * g.KW; g.ohw = g.OH * g.OW;
  return g;
}

bool is_pointwise(const Geom& g, const Conv2dParams& p) {
  return g.KH == 1 && g.KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// x: one image's group slice [Cg, H, W] -> col [Cg*KH*KW, OH*OW]
template <class T>
void im2col(const T* x, const Geom& g, const Conv2dParams& p, T* col) {
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * g.ohw;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          T* r = row + oh * g.OW;
          if (ih < 0 || ih >= g.H) {
            for (int64_t ow = 0; ow < g.OW; ++ow) r[ow] = T(0);
            continue;
          }
          const T* xr = x + (c * g.H + ih) * g.W;
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
            r[ow] = (iw >= 0 && iw < g.W) ? xr[iw] : T(0);
          }
        }
      }
}

// Accumulates col [Cg*KH*KW, OH*OW] back into gx [Cg, H, W] (which the caller zeroed).
template <class T>
void col2im(const T* col, const Geom& g, const Conv2dParams& p, T* gx) {
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * g.ohw;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
          if (ih < 0 || ih >= g.H) continue;
          T* xr = gx + (c * g.H + ih) * g.W;
          const T* r = row + oh * g.OW;
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
            if (iw >= 0 && iw < g.W) xr[iw] += r[ow];
          }
        }
      }
}

// Runs body(n, col_buffer, gemm_parallel) for every image, spreading images over threads when
// there are enough of them.
template <class T, class F>
void for_each_image(const Geom& g, bool need_col, F&& body) {
  int nt = omp_get_max_threads();
  size_t col_size = need_col ? size_t(g.ck * g.ohw) : 0;
  if (g.N >= nt && nt > 1) {
#pragma omp parallel
    {
      std::vector<T> col(col_size);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < g.N; ++n) body(n, col.data(), false);
    }
  } else {
    std::vector<T> col(col_size);
    for (int64_t n = 0; n < g.N; ++n) body(n, col.data(), true);
  }
}

template <class T>
void conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  Geom g = geom(x, w, y, p);
  const T* xp = x.data<T>();
  const T* wp = w.data<T>();
  const T* bp = bias.defined() ? bias.data<T>() : nullptr;
  T* yp = y.data<T>();
  bool pw = is_pointwise(g, p);
  for_each_image<T>(g, !pw, [&](int64_t n, T* col, bool par) {
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* xg = xp + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* src = xg;
      if (!pw) {
        im2col(xg, g, p, col);
        src = col;
      }
      T* yg = yp + (n * g.O + gi * g.Og) * g.ohw;
      gemm_strided<T>(g.Og, g.ohw, g.ck, T(1), wp + gi * g.Og * g.ck, g.ck, 1, src, g.ohw, 1, T(0), yg, g.ohw, 1,
                      par);
      if (bp)
        for (int64_t o = 0; o < g.Og; ++o) {
          T b = bp[gi * g.Og + o];
          T* r = yg + o * g.ohw;
          for (int64_t i = 0; i < g.ohw; ++i) r[i] += b;
        }
    }
  });
}

template <class T>
void conv_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) {
  Geom g = geom(gx, w, gy, p);
  const T* gyp = gy.data<T>();
  const T* wp = w.data<T>();
  T* gxp = gx.data<T>();
  bool pw = is_pointwise(g, p);
  for_each_image<T>(g, !pw, [&](int64_t n, T* col, bool par) {
    for (int64_t gi = 0; gi < g.G; ++gi) {
      T* gxg = gxp + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* gyg = gyp + (n * g.O + gi * g.Og) * g.ohw;
      // col = W_g^T [ck, Og] @ gy_g [Og, ohw]
      T* dst = pw ? gxg : col;
      gemm_strided<T>(g.ck, g.ohw, g.Og, T(1), wp + gi * g.Og * g.ck, 1, g.ck, gyg, g.ohw, 1, T(0), dst, g.ohw, 1,
                      par);
      if (!pw) {
        std::fill(gxg, gxg + g.Cg * g.H * g.W, T(0));
        col2im(col, g, p, gxg);
      }
    }
  });
}

template <class T>
void conv_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) {
  Geom g = geom(x, gw, gy, p);
  const T* gyp = gy.data<T>();
  const T* xp = x.data<T>();
  T* gwp = gw.data<T>();
  bool pw = is_pointwise(g, p);
  int64_t wsize = g.O * g.ck;
  int nt = omp_get_max_threads();
  bool by_image = g.N >= nt && nt > 1;
  // Per-thread partial sums when images run in parallel; summed in a fixed order afterwards so
  // the result does not depend on scheduling.
  std::vector<std::vector<T>> partial(by_image ? size_t(nt) : 1, std::vector<T>(size_t(wsize), T(0)));
  for_each_image<T>(g, !pw, [&](int64_t n, T* col, bool par) {
    T* acc = partial[by_image ? size_t(omp_get_thread_num()) : 0].data();
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* xg = xp + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* src = xg;
      if (!pw) {
        im2col(xg, g, p, col);
        src = col;
      }
      const T* gyg = gyp + (n * g.O + gi * g.Og) * g.ohw;
      // gw_g [Og, ck] += gy_g [Og, ohw] @ col^T [ohw, ck]
      gemm_strided<T>(g.Og, g.ck, g.ohw, T(1), gyg, g.ohw, 1, src, 1, g.ohw, T(1), acc + gi * g.Og * g.ck, g.ck, 1,
                      par);
    }
  });
  for (int64_t i = 0; i < wsize; ++i) {
    T s = T(0);
    for (auto& part : partial) s += part[size_t(i)];
    gwp[i] = s;
  }
}

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                                const Conv2dParams& p) {
  if (x.dtype() == DType::bf16) {
    Tensor yf = empty(y.shape(), DType::f32);
    conv2d_forward(yf, x.to(DType::f32), w.to(DType::f32), bias.defined() ? bias.to(DType::f32) : Tensor(), p);
    copy(y, yf);
    return;
  }
  if (x.dtype() == DType::f32) conv_forward<float>(y, x, w, bias, p);
  else conv_forward<double>(y, x, w, bias, p);
}

void CpuBackend::conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) {
  if (gy.dtype() == DType::bf16) {
    Tensor gf = empty(gx.shape(), DType::f32);
    conv2d_backward_input(gf, gy.to(DType::f32), w.to(DType::f32), p);
    copy(gx, gf);
    return;
  }
  if (gy.dtype() == DType::f32) conv_backward_input<float>(gx, gy, w, p);
  else conv_backward_input<double>(gx, gy, w, p);
}

void CpuBackend::conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) {
  if (gy.dtype() == DType::bf16) {
    Tensor gf = empty(gw.shape(), DType::f32);
    conv2d_backward_weight(gf, gy.to(DType::f32), x.to(DType::f32), p);
    copy(gw, gf);
    return;
  }
  if (gy.dtype() == DType::f32) conv_backward_weight<float>(gw, gy, x, p);
  else conv_backward_weight<double>(gw, gy, x, p);
}

}  // namespace minima::cpu
