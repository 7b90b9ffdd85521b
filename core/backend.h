// core/backend.h: the kernel interface. Each device type implements every entry point with the
// same signature: kernels/cpu/ (the reference) and kernels/cuda/. The op front-end (core/ops.cpp)
// does all shape checks, broadcasting, dtype promotion and autograd, then calls exactly one of
// these on tensors of one device. Conventions:
//  * outputs are allocated by the caller, with the final shape and dtype; kernels write every
//    element of them (tests poison outputs to catch misses).
//  * inputs may be arbitrary strided views (including stride 0 from broadcasting) unless the entry
//    says "contiguous"; the front-end makes those contiguous.
//  * float kernels handle f32, f64 (CPU) and bf16 storage with f32 arithmetic.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace minima {

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Abs,
  Relu,
  Sigmoid,
  Tanh,
  Softplus,
  Pow,    // x^p0
  Clamp,  // clamp(x, p0, p1)
  Square,
  Sign,
  Reciprocal,
  Log1p,
  AddScalar,  // x + p0
  MulScalar,  // x * p0
  Affine,     // x * p0 + p1
};
// What a unary op's gradient (Backend::unary_backward) reads besides gy: the op's input x, its
// output y, or neither. Autograd saves only that tensor, and a kernel may load only that one.
enum class UnaryReads { none, input, output };
inline UnaryReads unary_backward_reads(UnaryOp op) {
  switch (op) {
    case UnaryOp::Exp:
    case UnaryOp::Sqrt:
    case UnaryOp::Sigmoid:
    case UnaryOp::Tanh:
    case UnaryOp::Reciprocal: return UnaryReads::output;
    case UnaryOp::Neg:
    case UnaryOp::Sign:
    case UnaryOp::AddScalar:
    case UnaryOp::MulScalar:
    case UnaryOp::Affine: return UnaryReads::none;
    default: return UnaryReads::input;
  }
}
enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge };
enum class ReduceOp { Sum, Max, Min, ArgMax, ArgMin };

// Lower-case names ("relu", "add", "argmax"), as error messages and profiles print them.
const char* op_name(UnaryOp op);
const char* op_name(BinaryOp op);
const char* op_name(ReduceOp op);

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  // Every field in one call, as (h, w) pairs: of(2, 2, 1, 1) is stride 2 with padding 1.
  static Conv2dParams of(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh = 1, int64_t dw = 1,
                         int64_t groups = 1) {
    return Conv2dParams{sh, sw, ph, pw, dh, dw, groups};
  }
};
struct Pool2dParams {
  int64_t kh = 2, kw = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  bool count_include_pad = true;  // avg pooling: PyTorch's default
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // ---- memory and elementwise ----
  virtual void fill(const Tensor& out, double v) = 0;
  // dst and src have the same shape (src may be broadcast), possibly different dtypes.
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  virtual void unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) = 0;
  // gx = gy * d op(x)/dx; y = op(x) is passed for ops whose derivative is cheaper from it
  // (unary_backward_reads says which of x and y an op's gradient needs).
  virtual void unary_backward(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y,
                              double p0, double p1) = 0;
  // a and b are already expanded to out's shape. Comparisons write u8 0/1.
  virtual void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  virtual void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) = 0;

  // ---- reductions: out has x's rank with size 1 in every reduced dim ----
  // ArgMax/ArgMin reduce exactly one dim and write i64.
  virtual void reduce(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) = 0;

  // ---- matrix products: c[b] = alpha * a[b] @ b[b] + beta * c[b]; rank 3, any strides ----
  virtual void gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) = 0;

  // ---- convolution (NCHW; x, w contiguous) ----
  virtual void conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                              const Conv2dParams& p) = 0;
  virtual void conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) = 0;
  virtual void conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) = 0;

  // ---- pooling (NCHW, contiguous) ----
  virtual void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) = 0;
  virtual void max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) = 0;
  virtual void avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) = 0;
  virtual void avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) = 0;
  virtual void adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) = 0;
  virtual void adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) = 0;

  // ---- batch norm over (N, H, W) of NCHW or N of NC; stats in f32/f64 ----
  // Training: writes y, the batch mean and 1/sqrt(var+eps) (saved for backward) and updates the
  // running stats in place (unbiased var, PyTorch's momentum convention) when they are defined.
  virtual void batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                                        const Tensor& x, const Tensor& weight, const Tensor& bias,
                                        const Tensor& running_mean, const Tensor& running_var, double momentum,
                                        double eps) = 0;
  virtual void batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                       const Tensor& running_mean, const Tensor& running_var, double eps) = 0;
  // gweight/gbias may be undefined (affine=false).
  virtual void batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,
                                   const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                                   const Tensor& save_invstd) = 0;

  // ---- softmax family (x contiguous; softmax over `dim`) ----
  virtual void log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) = 0;
  virtual void log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) = 0;
  // Per-sample negative log-likelihood: loss[i] = -logp[i, target[i]]; logp is [N, C].
  virtual void nll_forward(const Tensor& loss, const Tensor& logp, const Tensor& target) = 0;
  // glogp (zeroed by the kernel) gets -gloss[i] at [i, target[i]].
  virtual void nll_backward(const Tensor& glogp, const Tensor& gloss, const Tensor& target) = 0;

  // ---- indexing (index is i64, contiguous) ----
  virtual void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) = 0;
  // out.index_select(dim, index) += src, summing repeated indices (out pre-filled by the caller).
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;
  virtual void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) = 0;
  virtual void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;

  // ---- random numbers (Philox4x32-10; element i uses counter (offset + i/4) and lane i%4) ----
  virtual void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) = 0;
  virtual void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) = 0;

  // ---- fused optimizer updates over one contiguous parameter/grad/state triple ----
  // torch.optim.SGD: g += wd*p; buf = first ? g : momentum*buf + (1-dampening)*g;
  // g = nesterov ? g + momentum*buf : buf; p -= lr*g.  (momentum == 0: p -= lr*g, buf untouched)
  virtual void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum,
                          double dampening, double weight_decay, bool nesterov, bool first_step) = 0;
  // torch.optim.Adam (coupled L2 weight decay), step >= 1.
  virtual void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr, double beta1,
                           double beta2, double eps, double weight_decay, int64_t step) = 0;

  virtual void synchronize() {}
};

// The declarations a concrete backend writes to override every kernel above (all but name() and
// synchronize()), kept in one place so the CPU and CUDA backends cannot drift from the interface:
//   class CpuBackend final : public Backend { public: MINIMA_BACKEND_KERNEL_OVERRIDES ... };
#define MINIMA_BACKEND_KERNEL_OVERRIDES                                                                               \
  void fill(const Tensor& out, double v) override;                                                                    \
  void copy(const Tensor& dst, const Tensor& src) override;                                                           \
  void unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) override;                          \
  void unary_backward(UnaryOp op, const Tensor& gx, const Tensor& gy, const Tensor& x, const Tensor& y, double p0,    \
                      double p1) override;                                                                            \
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;                             \
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;                       \
  void reduce(ReduceOp op, const Tensor& out, const Tensor& x, const std::vector<int64_t>& dims) override;            \
  void gemm(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) override;                   \
  void conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p)   \
      override;                                                                                                       \
  void conv2d_backward_input(const Tensor& gx, const Tensor& gy, const Tensor& w, const Conv2dParams& p) override;    \
  void conv2d_backward_weight(const Tensor& gw, const Tensor& gy, const Tensor& x, const Conv2dParams& p) override;   \
  void max_pool2d_forward(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dParams& p) override;   \
  void max_pool2d_backward(const Tensor& gx, const Tensor& gy, const Tensor& indices) override;                       \
  void avg_pool2d_forward(const Tensor& y, const Tensor& x, const Pool2dParams& p) override;                          \
  void avg_pool2d_backward(const Tensor& gx, const Tensor& gy, const Pool2dParams& p) override;                       \
  void adaptive_avg_pool2d_forward(const Tensor& y, const Tensor& x) override;                                        \
  void adaptive_avg_pool2d_backward(const Tensor& gx, const Tensor& gy) override;                                     \
  void batch_norm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd, const Tensor& x, \
                                const Tensor& weight, const Tensor& bias, const Tensor& running_mean,                 \
                                const Tensor& running_var, double momentum, double eps) override;                     \
  void batch_norm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& weight, const Tensor& bias,            \
                               const Tensor& running_mean, const Tensor& running_var, double eps) override;           \
  void batch_norm_backward(const Tensor& gx, const Tensor& gweight, const Tensor& gbias, const Tensor& gy,            \
                           const Tensor& x, const Tensor& weight, const Tensor& save_mean, const Tensor& save_invstd) \
      override;                                                                                                       \
  void log_softmax_forward(const Tensor& y, const Tensor& x, int64_t dim) override;                                   \
  void log_softmax_backward(const Tensor& gx, const Tensor& gy, const Tensor& y, int64_t dim) override;               \
  void nll_forward(const Tensor& loss, const Tensor& logp, const Tensor& target) override;                            \
  void nll_backward(const Tensor& glogp, const Tensor& gloss, const Tensor& target) override;                         \
  void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) override;                   \
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;                    \
  void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) override;                         \
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;                  \
  void random_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) override;              \
  void random_normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) override;            \
  void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, double lr, double momentum, double dampening,  \
                  double weight_decay, bool nesterov, bool first_step) override;                                      \
  void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr, double beta1,       \
                   double beta2, double eps, double weight_decay, int64_t step) override;

Backend& backend_for(Device d);
Backend& cpu_backend();
// Defined by kernels/cuda when built with CUDA; throws a clear error otherwise.
Backend& cuda_backend();
bool cuda_available();  // built with CUDA and at least one device present
int cuda_device_count();

// RAII guard: the caller vouches that every class target given to nll_loss / cross_entropy while
// it is alive is in range (a data::Loader's labels are checked when its dataset is built). The
// CPU checks anyway, at no cost; the CUDA backend skips reading its bad-target flag back, a round
// trip that would make the host wait for the forward pass of every training step. A bad target
// still reads nothing out of bounds: its loss is NaN, which the training loops report.
class TrustedTargetsGuard {
 public:
  TrustedTargetsGuard();
  ~TrustedTargetsGuard();
  TrustedTargetsGuard(const TrustedTargetsGuard&) = delete;
  TrustedTargetsGuard& operator=(const TrustedTargetsGuard&) = delete;

 private:
  bool prev_;
};
bool targets_trusted();

}  // namespace minima
