// kernels/cuda/optim.cu: fused optimizer updates, one pass over a contiguous parameter, its
// gradient and its state, with the arithmetic of kernels/cpu/optim.cpp (torch.optim.SGD and
// torch.optim.Adam). Step-dependent constants (Adam's bias corrections) are computed once on the
// host in double, as the CPU does.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, double lr, double momentum, double dampening,
                           double weight_decay, bool nesterov, bool first_step) {
  using A = Acc<T>;
  const A lr_ = A(lr), mom = A(momentum), damp = A(1.0 - dampening), wd = A(weight_decay);
  MINIMA_GRID_STRIDE(i, n) {
    A d = A(g[i]);
    if (weight_decay != 0.0) d += wd * A(p[i]);
    if (buf) {
      A m = first_step ? d : mom * A(buf[i]) + damp * d;
      buf[i] = to_storage<T>(m);
      d = nesterov ? d + mom * m : m;
    }
    p[i] = to_storage<T>(A(p[i]) - lr_ * d);
  }
}

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, double beta1, double beta2, double eps,
                            double weight_decay, double step_size, double bc2_sqrt) {
  using A = Acc<T>;
  MINIMA_GRID_STRIDE(i, n) {
    A d = A(g[i]);
    if (weight_decay != 0.0) d += A(weight_decay) * A(p[i]);
    A mi = A(beta1) * A(m[i]) + A(1.0 - beta1) * d;
    A vi = A(beta2) * A(v[i]) + A(1.0 - beta2) * d * d;
    m[i] = to_storage<T>(mi);
    v[i] = to_storage<T>(vi);
    A denom = d_sqrt(vi) / A(bc2_sqrt) + A(eps);
    p[i] = to_storage<T>(A(p[i]) - A(step_size) * mi / denom);
  }
}

void check_dense(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined())
      MINIMA_CHECK(t->is_contiguous() && t->numel() == (*ts.begin())->numel() && t->dtype() == (*ts.begin())->dtype(),
                   op, ": expected contiguous tensors of one shape and dtype, got ", t->str());
}

}  // namespace

void CudaBackend::sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum,
                             double dampening, double weight_decay, bool nesterov, bool first_step) {
  Ctx ctx(p);
  bool use_buf = momentum != 0.0;
  if (use_buf) check_dense("sgd_update", {&p, &g, &buf});
  else check_dense("sgd_update", {&p, &g});
  MINIMA_DISPATCH_FLOAT(p.dtype(), "sgd_update", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(sgd_kernel<T>, dim3(grid_1d(p.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(p.data_ptr()), static_cast<const T*>(g.data_ptr()),
                  use_buf ? static_cast<T*>(buf.data_ptr()) : nullptr, p.numel(), lr, momentum, dampening,
                  weight_decay, nesterov, first_step);
  });
}

void CudaBackend::adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                              double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  Ctx ctx(p);
  check_dense("adam_update", {&p, &g, &m, &v});
  double bc1 = 1.0 - std::pow(beta1, double(step)), bc2 = 1.0 - std::pow(beta2, double(step));
  double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  MINIMA_DISPATCH_FLOAT(p.dtype(), "adam_update", [&] {
    using T = scalar_t;
    MINIMA_LAUNCH(adam_kernel<T>, dim3(grid_1d(p.numel(), ctx.dev)), dim3(kThreads), 0, ctx.stream,
                  static_cast<T*>(p.data_ptr()), static_cast<const T*>(g.data_ptr()), static_cast<T*>(m.data_ptr()),
                  static_cast<T*>(v.data_ptr()), p.numel(), beta1, beta2, eps, weight_decay, step_size, bc2_sqrt);
  });
}

}  // namespace minima::cuda
