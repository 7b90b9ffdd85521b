// kernels/cpu/batchnorm.cpp: batch norm over (N, H, W) per channel. Training: two passes for the
// statistics (the mean, then the sum of squared deviations from it, both in double), a third for
// normalize+affine fused, running stats updated with PyTorch's convention
// (running = (1 - momentum) * running + momentum * batch, unbiased batch variance).
// Backward is the fused closed form:
//   gx = w * invstd / M * (M * gy - sum(gy) - xhat * sum(gy * xhat)).
//
// Every per-channel sum is a lane sum (kernels/cpu/lane_sum.h) of the channel's M = N*H*W terms,
// taken in (n, h*w) order.
//
// Two loop orders: a [N, C, H, W] input runs channel by channel over its rows of H*W; a [N, C]
// input (H*W = 1, as BatchNorm1d gives) runs row by row with the channels as the inner, vectorized
// loop and kLanes accumulators per channel (lane n mod kLanes), because channel by channel it would
// load with a stride of C. Both give bitwise the same results (tested): the terms, lanes and tree
// are the same, and this file is compiled with -ffp-contract=off, so the arithmetic is exactly as
// written (no product is fused into an add by the compiler's choice, which differs by loop shape):
//  * y = fma(x, scale, shift) with scale = w * invstd and shift = fma(-mean, scale, b);
//  * gx = k * fma(-xhat, sum(gy * xhat), fma(M, gy, -sum(gy))) with k = w * invstd / M.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/lane_sum.h"
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

// A per-channel parameter or statistic: a 1-D tensor of any stride (e.g. a slice of a flat
// parameter buffer) and any float dtype, or undefined (reads give the default, writes do
// nothing). Its pointer, stride and dtype are resolved once per call; each value then costs a
// switch on the dtype. (Resolving them through the tensor
// for every value, six times per channel, took a third of a [128, 512] forward.) Values go
// through the dtype's accumulation type both ways: double(Acc(v)) and T(Acc(v)).
class ChannelParam {
 public:
  explicit ChannelParam(const Tensor& t) : defined_(t.defined()) {
    if (!defined_) return;
    MINIMA_CHECK(is_floating(t.dtype()), "batch_norm: expected a floating dtype, got ", t.dtype());
    dtype_ = t.dtype();
    p_ = t.data_ptr();
    stride_ = t.strides()[0];
  }
  double get(int64_t c, double dflt) const {
    if (!defined_) return dflt;
    switch (dtype_) {
      case DType::f64: return static_cast<const double*>(p_)[c * stride_];
      case DType::bf16: return double(float(static_cast<const bf16*>(p_)[c * stride_]));
      default: return double(static_cast<const float*>(p_)[c * stride_]);
    }
  }
  void set(int64_t c, double v) const {
    if (!defined_) return;
    switch (dtype_) {
      case DType::f64: static_cast<double*>(p_)[c * stride_] = v; break;
      case DType::bf16: static_cast<bf16*>(p_)[c * stride_] = bf16(float(v)); break;
      default: static_cast<float*>(p_)[c * stride_] = float(v);
    }
  }

 private:
  bool defined_;
  DType dtype_ = DType::f32;
  void* p_ = nullptr;
  int64_t stride_ = 0;
};

// [N, C] inputs run their channels in blocks of at most this many, shared by the threads: a
// block's kLanes rows of lane sums (16 x 64 doubles, 8 KB) stay in L1 while its rows of x go by.
// A thread's whole share at once (256 channels of a [128, 512] input: 32 KB of lane sums beside
// the rows of x) left L1, and every add went to L2 and back.
constexpr int64_t kChannelBlock = 64;
template <class F>
void for_channel_blocks(int64_t C, const F& f) {
  parallel_for(C, 16, [&](int64_t cb, int64_t ce) {
    for (int64_t b = cb; b < ce; b += kChannelBlock) f(b, std::min(ce, b + kChannelBlock));
  });
}

template <class T>
inline T normalize(T x, double scale, double shift) {
  return T(Acc<T>(std::fma(ld(x), scale, shift)));
}
template <class T>
inline T input_grad(T x, T gy, double mean, double invstd, double k, double M, double sg, double sgx) {
  const double xhat = (ld(x) - mean) * invstd;
  return T(Acc<T>(k * std::fma(-xhat, sgx, std::fma(M, ld(gy), -sg))));
}
}  // namespace

void CpuBackend::batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                                          const Tensor& x, const Tensor& weight, const Tensor& bias,
                                          const Tensor& running_mean, const Tensor& running_var, double momentum,
                                          double eps) {
  BnGeom g = bn_geom(x);
  double M = double(g.N * g.S);
  const ChannelParam w(weight), b(bias), rmean(running_mean), rvar(running_var), smean(save_mean), sinvstd(save_invstd);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    // Channel c's statistics from its mean and sum of squared deviations: saves them, updates the
    // running stats and returns the folded affine y = x * scale + shift.
    auto finish = [&](int64_t c, double mean, double ss, double& scale, double& shift) {
      double var = ss / M, invstd = 1.0 / std::sqrt(var + eps);
      scale = w.get(c, 1.0) * invstd;
      shift = std::fma(-mean, scale, b.get(c, 0.0));
      smean.set(c, mean);
      sinvstd.set(c, invstd);
      rmean.set(c, (1.0 - momentum) * rmean.get(c, 0.0) + momentum * mean);
      const double unbiased = M > 1 ? ss / (M - 1) : var;
      rvar.set(c, (1.0 - momentum) * rvar.get(c, 1.0) + momentum * unbiased);
    };
    if (g.S == 1) {  // [N, C]: row by row, channels [cb, ce) in the inner loop
      for_channel_blocks(g.C, [&](int64_t cb, int64_t ce) {
        const int64_t nc = ce - cb;
        // lanes[(n mod kLanes) * nc + c] is channel cb + c's lane n mod kLanes.
        std::vector<double> lanes(size_t(kLanes * nc), 0.0), mean(size_t(nc), 0.0), ss(size_t(nc), 0.0);
        std::vector<double> scale(size_t(nc), 0.0), shift(size_t(nc), 0.0);
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + n * g.C + cb;
          double* l = lanes.data() + (n % kLanes) * nc;
          for (int64_t c = 0; c < nc; ++c) l[c] += ld(r[c]);
        }
        for (int64_t c = 0; c < nc; ++c) mean[c] = combine_lanes(lanes.data() + c, nc) / M;
        std::fill(lanes.begin(), lanes.end(), 0.0);
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + n * g.C + cb;
          double* l = lanes.data() + (n % kLanes) * nc;
          for (int64_t c = 0; c < nc; ++c) {
            const double d = ld(r[c]) - mean[c];
            l[c] += d * d;
          }
        }
        for (int64_t c = 0; c < nc; ++c) {
          ss[c] = combine_lanes(lanes.data() + c, nc);
          finish(cb + c, mean[c], ss[c], scale[c], shift[c]);
        }
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + n * g.C + cb;
          T* o = yp + n * g.C + cb;
          for (int64_t c = 0; c < nc; ++c) o[c] = normalize(r[c], scale[c], shift[c]);
        }
      });
      return;
    }
    parallel_for(g.C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        auto row = [&](int64_t n) { return xp + (n * g.C + c) * g.S; };
        LaneSum sum;  // the pass that reads x from memory: the next row's lines are asked for
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = row(n);
          for (int64_t i0 = 0; i0 < g.S; i0 += kPrefetchChunk) {
            const int64_t len = std::min(kPrefetchChunk, g.S - i0);
            if (n + 1 < g.N) prefetch_bytes(row(n + 1) + i0, len * int64_t(sizeof(T)));
            sum.add_values(r + i0, len);  // ld(r[i]) for each: the value as a double
          }
        }
        const double mean = sum.total() / M;
        LaneSum sq;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = row(n);
          sq.add(g.S, [&](int64_t i) {
            const double d = ld(r[i]) - mean;
            return d * d;
          });
        }
        double scale, shift;
        finish(c, mean, sq.total(), scale, shift);
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = row(n);
          T* o = yp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) o[i] = normalize(r[i], scale, shift);
        }
      }
    });
  });
}

void CpuBackend::batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Tensor& running_mean, const Tensor& running_var, double eps) {
  BnGeom g = bn_geom(x);
  const ChannelParam w(weight), b(bias), rmean(running_mean), rvar(running_var);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    // y = x * scale[c] + shift[c], folded once per channel.
    std::vector<double> scale(size_t(g.C), 0.0), shift(size_t(g.C), 0.0);
    for (int64_t c = 0; c < g.C; ++c) {
      const double invstd = 1.0 / std::sqrt(rvar.get(c, 1.0) + eps);
      scale[c] = w.get(c, 1.0) * invstd;
      shift[c] = std::fma(-rmean.get(c, 0.0), scale[c], b.get(c, 0.0));
    }
    if (g.S == 1) {  // [N, C]: row by row
      parallel_for(g.N, 16, [&](int64_t nb, int64_t ne) {
        for (int64_t n = nb; n < ne; ++n) {
          const T* r = xp + n * g.C;
          T* o = yp + n * g.C;
          for (int64_t c = 0; c < g.C; ++c) o[c] = normalize(r[c], scale[c], shift[c]);
        }
      });
      return;
    }
    parallel_for(g.N * g.C, 1, [&](int64_t b0, int64_t e0) {
      for (int64_t nc = b0; nc < e0; ++nc) {
        const double sc = scale[nc % g.C], sh = shift[nc % g.C];
        const T* r = xp + nc * g.S;
        T* o = yp + nc * g.S;
        for (int64_t i = 0; i < g.S; ++i) o[i] = normalize(r[i], sc, sh);
      }
    });
  });
}

void CpuBackend::batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,
                                     const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                                     const Tensor& save_invstd) {
  BnGeom g = bn_geom(x);
  double M = double(g.N * g.S);
  const ChannelParam w(weight), smean(save_mean), sinvstd(save_invstd), gw(gweight), gb(gbias);
  MINIMA_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    const T* gp = gy.data<T>();
    T* gxp = gx.data<T>();
    if (g.S == 1) {  // [N, C]: row by row, channels [cb, ce) in the inner loop
      for_channel_blocks(g.C, [&](int64_t cb, int64_t ce) {
        const int64_t nc = ce - cb;
        std::vector<double> mean(size_t(nc), 0.0), invstd(size_t(nc), 0.0), k(size_t(nc), 0.0);
        std::vector<double> sg(size_t(nc), 0.0), sgx(size_t(nc), 0.0);
        // lanes_*[(n mod kLanes) * nc + c] is channel cb + c's lane n mod kLanes.
        std::vector<double> lanes_g(size_t(kLanes * nc), 0.0), lanes_gx(size_t(kLanes * nc), 0.0);
        for (int64_t c = 0; c < nc; ++c) {
          mean[c] = smean.get(cb + c, 0.0);
          invstd[c] = sinvstd.get(cb + c, 1.0);
        }
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + n * g.C + cb;
          const T* gr = gp + n * g.C + cb;
          double* lg = lanes_g.data() + (n % kLanes) * nc;
          double* lgx = lanes_gx.data() + (n % kLanes) * nc;
          for (int64_t c = 0; c < nc; ++c) {
            const double gv = ld(gr[c]);
            lg[c] += gv;
            lgx[c] += gv * (ld(r[c]) - mean[c]) * invstd[c];
          }
        }
        for (int64_t c = 0; c < nc; ++c) {
          sg[c] = combine_lanes(lanes_g.data() + c, nc);
          sgx[c] = combine_lanes(lanes_gx.data() + c, nc);
          k[c] = w.get(cb + c, 1.0) * invstd[c] / M;
          gw.set(cb + c, sgx[c]);
          gb.set(cb + c, sg[c]);
        }
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + n * g.C + cb;
          const T* gr = gp + n * g.C + cb;
          T* o = gxp + n * g.C + cb;
          for (int64_t c = 0; c < nc; ++c) o[c] = input_grad(r[c], gr[c], mean[c], invstd[c], k[c], M, sg[c], sgx[c]);
        }
      });
      return;
    }
    parallel_for(g.C, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        const double mean = smean.get(c, 0.0), invstd = sinvstd.get(c, 1.0);
        LaneSum lanes_g, lanes_gx;  // the pass that reads x and gy from memory, a row ahead
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          const T* gr = gp + (n * g.C + c) * g.S;
          for (int64_t i0 = 0; i0 < g.S; i0 += kPrefetchChunk) {
            const int64_t len = std::min(kPrefetchChunk, g.S - i0), bytes = len * int64_t(sizeof(T));
            if (n + 1 < g.N) {
              prefetch_bytes(r + g.C * g.S + i0, bytes);
              prefetch_bytes(gr + g.C * g.S + i0, bytes);
            }
            const T *rc = r + i0, *gc = gr + i0;
            lanes_g.add_values(gc, len);
            lanes_gx.add(len, [&](int64_t i) { return ld(gc[i]) * (ld(rc[i]) - mean) * invstd; });
          }
        }
        const double sg = lanes_g.total(), sgx = lanes_gx.total();
        const double k = w.get(c, 1.0) * invstd / M;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = xp + (n * g.C + c) * g.S;
          const T* gr = gp + (n * g.C + c) * g.S;
          T* o = gxp + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) o[i] = input_grad(r[i], gr[i], mean, invstd, k, M, sg, sgx);
        }
        gw.set(c, sgx);
        gb.set(c, sg);
      }
    });
  });
}

}  // namespace minima::cpu
