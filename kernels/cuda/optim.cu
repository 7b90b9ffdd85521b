// kernels/cuda/optim.cu: fused optimizer updates, one pass over a contiguous parameter, its
// gradient and its state, with the arithmetic of kernels/cpu/optim.cpp (torch.optim.SGD and
// torch.optim.Adam). Step-dependent constants (Adam's bias corrections) are computed once on the
// host in double, as the CPU does.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace minima::cuda {

namespace {

// Both updates run on the elementwise loop (several loads in flight per thread).
template <class T>
struct SgdF {
  using A = Acc<T>;
  T* p;
  const T* g;
  T* buf;  // null: no momentum
  A lr, mom, damp, wd;
  bool decay, nesterov, first_step;
  struct In {
    T p, g, b;
  };
  __device__ In load(const int64_t* off) const { return {p[off[0]], g[off[1]], buf ? buf[off[2]] : T()}; }
  __device__ void store(const int64_t* off, const In& v) const {
    A d = A(v.g);
    if (decay) d += wd * A(v.p);
    if (buf) {
      A m = first_step ? d : mom * A(v.b) + damp * d;
      buf[off[2]] = to_storage<T>(m);
      d = nesterov ? d + mom * m : m;
    }
    p[off[0]] = to_storage<T>(A(v.p) - lr * d);
  }
};

template <class T>
struct AdamF {
  using A = Acc<T>;
  T* p;
  const T* g;
  T* m;
  T* v;
  A beta1, one_minus_beta1, beta2, one_minus_beta2, eps, wd, step_size, bc2_sqrt;
  bool decay;
  struct In {
    T p, g, m, v;
  };
  __device__ In load(const int64_t* off) const { return {p[off[0]], g[off[1]], m[off[2]], v[off[3]]}; }
  __device__ void store(const int64_t* off, const In& x) const {
    A d = A(x.g);
    if (decay) d += wd * A(x.p);
    A mi = beta1 * A(x.m) + one_minus_beta1 * d;
    A vi = beta2 * A(x.v) + one_minus_beta2 * d * d;
    m[off[2]] = to_storage<T>(mi);
    v[off[3]] = to_storage<T>(vi);
    A denom = d_sqrt(vi) / bc2_sqrt + eps;
    p[off[0]] = to_storage<T>(A(x.p) - step_size * mi / denom);
  }
};

// A 1-D view of a contiguous tensor (the operands may differ in shape, not in size).
Tensor flat(const Tensor& t) {
  NoGradGuard ng;
  return t.reshape({t.numel()});
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
  if (use_buf)
    check_dense("sgd_update", {&p, &g, &buf});
  else
    check_dense("sgd_update", {&p, &g});
  const int64_t n = p.numel();
  MINIMA_DISPATCH_FLOAT(p.dtype(), "sgd_update", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    SgdF<T> f{static_cast<T*>(p.data_ptr()),
              static_cast<const T*>(g.data_ptr()),
              use_buf ? static_cast<T*>(buf.data_ptr()) : nullptr,
              A(lr),
              A(momentum),
              A(1.0 - dampening),
              A(weight_decay),
              weight_decay != 0.0,
              nesterov,
              first_step};
    launch_elementwise<3>(ctx, {n}, {flat(p), flat(g), flat(use_buf ? buf : p)}, f);
  });
}

void CudaBackend::adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                              double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  Ctx ctx(p);
  check_dense("adam_update", {&p, &g, &m, &v});
  const int64_t n = p.numel();
  double bc1 = 1.0 - std::pow(beta1, double(step)), bc2 = 1.0 - std::pow(beta2, double(step));
  double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  MINIMA_DISPATCH_FLOAT(p.dtype(), "adam_update", [&] {
    using T = scalar_t;
    using A = Acc<T>;
    AdamF<T> f{static_cast<T*>(p.data_ptr()),
               static_cast<const T*>(g.data_ptr()),
               static_cast<T*>(m.data_ptr()),
               static_cast<T*>(v.data_ptr()),
               A(beta1),
               A(1.0 - beta1),
               A(beta2),
               A(1.0 - beta2),
               A(eps),
               A(weight_decay),
               A(step_size),
               A(bc2_sqrt),
               weight_decay != 0.0};
    launch_elementwise<4>(ctx, {n}, {flat(p), flat(g), flat(m), flat(v)}, f);
  });
}

}  // namespace minima::cuda
