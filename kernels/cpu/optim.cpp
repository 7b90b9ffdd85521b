// kernels/cpu/optim.cpp: fused optimizer updates, one pass over a contiguous parameter, its
// gradient and its state; the arithmetic follows torch.optim.SGD and torch.optim.Adam exactly.
#include <cmath>
#include <type_traits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace minima::cpu {

template <class T>
using Acc = typename acc_type<T>::type;

namespace {
// Calls f(std::true_type) or f(std::false_type): a run-time flag as a compile-time one.
template <class F>
void with_flag(bool v, F&& f) {
  if (v)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// SGD's update over [b, e) for one combination of its options, fixed at compile time so that
// the loop has no branches and vectorizes (the loop that tested them per element did not: it
// ran at a tenth of the memory bandwidth). The arithmetic is the same, element by element.
template <bool WD, bool MOM, bool NESTEROV, bool FIRST, class T, class A = Acc<T>>
void sgd_range(T* __restrict pp, const T* __restrict gp, T* __restrict bp, int64_t b, int64_t e, A lr, A mom, A damp,
               A wd) {
  for (int64_t i = b; i < e; ++i) {
    A d = A(gp[i]);
    if constexpr (WD) d += wd * A(pp[i]);
    if constexpr (MOM) {
      const A m = FIRST ? d : mom * A(bp[i]) + damp * d;
      bp[i] = T(m);
      d = NESTEROV ? d + mom * m : m;
    }
    pp[i] = T(A(pp[i]) - lr * d);
  }
}
}  // namespace

void CpuBackend::sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum,
                            double dampening, double weight_decay, bool nesterov, bool first_step) {
  MINIMA_DISPATCH_FLOAT(p.dtype(), "sgd_update", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    T* pp = p.data<T>();
    const T* gp = g.data<T>();
    T* bp = momentum != 0.0 ? buf.data<T>() : nullptr;
    const A lr_ = A(lr), mom = A(momentum), damp = A(1.0 - dampening), wd = A(weight_decay);
    with_flag(weight_decay != 0.0, [&](auto has_wd) {
      with_flag(bp != nullptr, [&](auto has_mom) {
        with_flag(has_mom && nesterov, [&](auto nest) {
          with_flag(has_mom && first_step, [&](auto first) {
            parallel_for(p.numel(), 1 << 14, [&](int64_t b, int64_t e) {
              sgd_range<has_wd, has_mom, nest, first>(pp, gp, bp, b, e, lr_, mom, damp, wd);
            });
          });
        });
      });
    });
  });
}

namespace {
// Adam's update over [b, e), weight decay fixed at compile time (as sgd_range, so it vectorizes).
template <bool WD, class T, class A = Acc<T>>
void adam_range(T* __restrict pp, const T* __restrict gp, T* __restrict mp, T* __restrict vp, int64_t b, int64_t e,
                A wd, A beta1, A beta2, A one_minus_beta1, A one_minus_beta2, A bc2_sqrt, A eps, A step_size) {
  for (int64_t i = b; i < e; ++i) {
    A d = A(gp[i]);
    if constexpr (WD) d += wd * A(pp[i]);
    const A mi = beta1 * A(mp[i]) + one_minus_beta1 * d;
    const A vi = beta2 * A(vp[i]) + one_minus_beta2 * d * d;
    mp[i] = T(mi);
    vp[i] = T(vi);
    const A denom = std::sqrt(vi) / bc2_sqrt + eps;
    pp[i] = T(A(pp[i]) - step_size * mi / denom);
  }
}
}  // namespace

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
    with_flag(weight_decay != 0.0, [&](auto has_wd) {
      parallel_for(p.numel(), 1 << 14, [&](int64_t b, int64_t e) {
        adam_range<has_wd>(pp, gp, mp, vp, b, e, A(weight_decay), A(beta1), A(beta2), A(1.0 - beta1), A(1.0 - beta2),
                           A(bc2_sqrt), A(eps), A(step_size));
      });
    });
  });
}

}  // namespace minima::cpu
