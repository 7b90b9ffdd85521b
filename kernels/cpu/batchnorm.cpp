// kernels/cpu/batchnorm.cpp: batch norm over (N, H, W) per channel. Training: one pass for the
// mean and variance (sum and sum of squared deviations in double, via a shifted two-pass over the
// channel), normalize+affine fused, running stats updated with PyTorch's convention
// (running = (1 - momentum) * running + momentum * batch, unbiased batch variance).
// Backward is the fused closed form:
//   gx = w * invstd / M * (M * gy - sum(gy) - xhat * sum(gy * xhat)).
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

namespace {
template <class T>
inline double ld(T v) {
  return static_cast<double>(static_cast<Acc<T>>(v));
}
// x viewed as [N, C, S] (S = H*W), contiguous.
struct BnGeom {
  int64_t N, C, S;
};
BnGeom bn_geom(const Tensor& x) { return {x.size(0), x.size(1), x.size(2) * x.size(3)}; }

// Per-channel parameters and statistics are 1-D tensors of any stride (e.g. slices of a flat
// parameter buffer) and any float dtype.
template <class T>
double load_param(const Tensor& t, int64_t c, double dflt) {
  if (!t.defined()) return dflt;
  double v = 0;
  MINIMA_DISPATCH_FLOAT(t.dtype(), "batch_norm",
                        [&] { v = double(Acc<scalar_t>(t.data<scalar_t>()[c * t.strides()[0]])); });
  return v;
}
void store_param(const Tensor& t, int64_t c, double v) {
  MINIMA_DISPATCH_FLOAT(t.dtype(), "batch_norm",
                        [&] { t.data<scalar_t>()[c * t.strides()[0]] = scalar_t(Acc<scalar_t>(v)); });
}
}  // namespace

void CpuBackend::batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                                          const Tensor& x, const Tensor& weight, const Tensor& bias,
                                          const Tensor& running_mean, const Tensor& running_var, double momentum,
                                          double eps) {
  BnGeom g = bn_geom(x);
  double M = double(g.N * g.S);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(g.C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        double s = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) s += ld(r[i]);
        }
        double mean = s / M, ss = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) {
            double d = ld(r[i]) - mean;
            ss += d * d;
          }
        }
        double var = ss / M, invstd = 1.0 / std::sqrt(var + eps);
        double w = load_param<T>(weight, c, 1.0), b = load_param<T>(bias, c, 0.0);
        double scale = w * invstd, shift = b - mean * scale;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          T* o = yp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) o[i] = T(Acc<T>(ld(r[i]) * scale + shift));
        }
        store_param(save_mean, c, mean);
        store_param(save_invstd, c, invstd);
        if (running_mean.defined()) {
          double rm = load_param<T>(running_mean, c, 0.0);
          store_param(running_mean, c, (1.0 - momentum) * rm + momentum * mean);
        }
        if (running_var.defined()) {
          double rv = load_param<T>(running_var, c, 1.0);
          double unbiased = M > 1 ? ss / (M - 1) : var;
          store_param(running_var, c, (1.0 - momentum) * rv + momentum * unbiased);
        }
      }
    });
  });
}

void CpuBackend::batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Tensor& running_mean, const Tensor& running_var, double eps) {
  BnGeom g = bn_geom(x);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(g.N * g.C, 1, [&](int64_t b0, int64_t e0) {
      for (int64_t nc = b0; nc < e0; ++nc) {
        int64_t c = nc % g.C;
        double invstd = 1.0 / std::sqrt(load_param<T>(running_var, c, 1.0) + eps);
        double scale = load_param<T>(weight, c, 1.0) * invstd;
        double shift = load_param<T>(bias, c, 0.0) - load_param<T>(running_mean, c, 0.0) * scale;
        const T* r = xp + nc * g.S;
        T* o = yp + nc * g.S;
        for (int64_t i = 0; i < g.S; ++i) o[i] = T(Acc<T>(ld(r[i]) * scale + shift));
      }
    });
  });
}

void CpuBackend::batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,
                                     const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                                     const Tensor& save_invstd) {
  BnGeom g = bn_geom(x);
  double M = double(g.N * g.S);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    const T* gp = gy.data<T>();
    T* gxp = gx.data<T>();
    parallel_for(g.C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        double mean = load_param<T>(save_mean, c, 0.0), invstd = load_param<T>(save_invstd, c, 1.0);
        double sg = 0, sgx = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          const T* gr = gp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) {
            double gv = ld(gr[i]);
            sg += gv;
            sgx += gv * (ld(r[i]) - mean) * invstd;
          }
        }
        double w = load_param<T>(weight, c, 1.0);
        double k = w * invstd / M;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          const T* gr = gp + (n * g.C + c) * g.S;
          T* o = gxp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) {
            double xhat = (ld(r[i]) - mean) * invstd;
            o[i] = T(Acc<T>(k * (M * ld(gr[i]) - sg - xhat * sgx)));
          }
        }
        if (gweight.defined()) store_param(gweight, c, sgx);
        if (gbias.defined()) store_param(gbias, c, sg);
      }
    });
  });
}

}  // namespace minima::cpu
