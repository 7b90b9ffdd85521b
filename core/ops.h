// core/ops.h: the differentiable op front-end. Each function checks its arguments (errors name
// the shapes, dtypes and devices involved), broadcasts, promotes dtypes, allocates the output,
// calls one Backend kernel, and records a Node for autograd when an input requires grad.
// Broadcasting's gradient reduction lives in one place: sum_to().
#pragma once
#include <optional>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace minima {

// ---- broadcasting helpers ----
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op = "broadcast");
// Sums `g` over the dims that broadcasting added or stretched, giving a tensor of `shape`.
Tensor sum_to(const Tensor& g, const Shape& shape);
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op = "op");

// ---- elementwise ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double p);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor log1p(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor square(const Tensor& a);
Tensor sign(const Tensor& a);  // not differentiable (zero gradient)
Tensor reciprocal(const Tensor& a);
Tensor clamp(const Tensor& a, double lo, double hi);  // use +-inf for one-sided
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor softplus(const Tensor& a);
// Comparisons return u8 masks (0/1) and are not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator-(const Tensor& a, double s);
Tensor operator*(const Tensor& a, double s);
Tensor operator/(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(double s, const Tensor& a);

// ---- reductions (dims may be negative; empty dims = all) ----
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// max and min: NaN where the reduced block holds one; between zeros, -0 counts as below +0 (on the
// CPU; CUDA returns either zero).
Tensor max(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), like torch.var.
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false, int64_t correction = 1);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

// ---- linear algebra ----
// 1-D and 2-D as in numpy; >= 3-D are batched with broadcasting over batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x @ w^T + b, with w [out, in] (PyTorch's Linear layout); b may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- convolution and pooling (NCHW) ----
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(), const Conv2dParams& p = {});
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0,
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
// Training mode uses batch statistics and updates running_mean/var in place (when defined).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// ---- shape ops ----
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// pads[0..1] pad the last dim (before, after), pads[2..3] the one before it, ... like F.pad.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

// ---- losses and friends ----
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor softmax(const Tensor& x, int64_t dim);
// Mean over the batch of -log softmax(logits)[i, target[i]]; logits [N, C], target i64 [N].
Tensor cross_entropy(const Tensor& logits, const Tensor& target);
Tensor nll_loss(const Tensor& logp, const Tensor& target);
// Mean of max(x,0) - x*y + log(1 + exp(-|x|)); y has x's shape, values in [0, 1].
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target);
Tensor mse_loss(const Tensor& a, const Tensor& b);
// Inverted dropout with a counter-based mask; identity when !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator& g);

// Number of elements equal between argmax(logits, 1) and target.
int64_t count_correct(const Tensor& logits, const Tensor& target);

}  // namespace minima
