// kernels/cpu/cpu_backend.h: the CPU reference backend. Plain loops, OpenMP across rows or
// channels, and a cache-blocked GEMM that conv2d also runs on (im2col). Each family is one .cpp.
#pragma once
#include "core/backend.h"

namespace minima::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void fill(const Tensor& out, double v) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) override;
  void unary_backward(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y,
                      double p0, double p1) override;
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;
  void reduce(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) override;
  void gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) override;
  void conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Conv2dParams& p) override;
  void conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) override;
  void conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) override;
  void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) override;
  void max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) override;
  void avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) override;
  void avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) override;
  void adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) override;
  void adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) override;
  void batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                                const Tensor& x, const Tensor& weight, const Tensor& bias,
                                const Tensor& running_mean, const Tensor& running_var, double momentum,
                                double eps) override;
  void batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const Tensor& running_mean, const Tensor& running_var, double eps) override;
  void batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,
                           const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                           const Tensor& save_invstd) override;
  void log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) override;
  void log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) override;
  void nll_forward(const Tensor& loss, const Tensor& logp, const Tensor& target) override;
  void nll_backward(const Tensor& glogp, const Tensor& gloss, const Tensor& target) override;
  void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) override;
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;
  void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) override;
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;
  void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) override;
  void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) override;
  void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum,
                  double dampening, double weight_decay, bool nesterov, bool first_step) override;
  void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                   double beta1, double beta2, double eps, double weight_decay, int64_t step) override;
};

// Single-matrix GEMM on contiguous-or-strided row/col layouts:
// C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C, element (i,j) of X at X[i*rs + j*cs].
template <class T>
void gemm_strided(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs, int64_t a_cs,
                  const T* B, int64_t b_rs, int64_t b_cs, T beta, T* C, int64_t c_rs, int64_t c_cs,
                  bool parallel = true);

}  // namespace minima::cpu
