// kernels/cpu/optim.cpp: fused optimizer updates, one pass over a contiguous parameter, its
// gradient and its state; the arithmetic follows torch.optim.SGD and torch.optim.Adam exactly.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

void CpuBackend::sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum,
                            double dampening, double weight_decay, bool nesterov, bool first_step) {
  MINIMA_DISPATCH_FLOAT(p.dtype(), "sgd_update", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    T* pp = p.data<T>();
    const T* gp = g.data<T>();
    T* bp = momentum != 0.0 ? buf.data<T>() : nullptr;
    A lr_ = A(lr), mom = A(momentum), damp = A(1.0 - dampening), wd = A(weight_decay);
    parallel_for(p.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        A d = A(gp[i]);
        if (weight_decay != 0.0) d += wd * A(pp[i]);
        if (bp) {
          A m = first_step ? d : mom * A(bp[i]) + damp * d;
          bp[i] = T(m);
          d = nesterov ? d + mom * m : m;
        }
        pp[i] = T(A(pp[i]) - lr_ * d);
      }
    });
  });
}

void CpuBackend::adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                             double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  double bc1 = 1.0 - std::pow(beta1, double(step)), bc2 = 1.0 - std::pow(beta2, double(step));
  double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  MINIMA_DISPATCH_FLOAT(p.dtype(), "adam_update", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    T* pp = p.data<T>();
    const T* gp = g.data<T>();
    T* mp = m.data<T>();
    T* vp = v.data<T>();
    parallel_for(p.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        A d = A(gp[i]);
        if (weight_decay != 0.0) d += A(weight_decay) * A(pp[i]);
        A mi = A(beta1) * A(mp[i]) + A(1.0 - beta1) * d;
        A vi = A(beta2) * A(vp[i]) + A(1.0 - beta2) * d * d;
        mp[i] = T(mi);
        vp[i] = T(vi);
        A denom = std::sqrt(vi) / A(bc2_sqrt) + A(eps);
        pp[i] = T(A(pp[i]) - A(step_size) * mi / denom);
      }
    });
  });
}

}  // namespace minima::cpu
