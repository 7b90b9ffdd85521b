// core/ops_nn.cpp: the neural-network ops of the front-end (convolution, pooling, batch norm,
// softmax and the losses, dropout), each checking its arguments and wiring its backward kernels.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"

namespace minima {

namespace {
void check_nchw(const char* op, const Tensor& x) {
  MINIMA_CHECK(x.defined(), op, ": undefined input");
  MINIMA_CHECK(x.dim() == 4, op, ": expected an NCHW input with 4 dims, got shape ", x.shape());
  MINIMA_CHECK(is_floating(x.dtype()), op, ": expected a floating input, got ", x.dtype());
}
// Pooling: a window must hold at least one pixel, so planes may not be empty (N = 0 is fine).
void check_pool_input(const char* op, const Tensor& x) {
  check_nchw(op, x);
  MINIMA_CHECK(x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0, op, ": expected non-empty channels and planes, got ",
               "shape ", x.shape());
}
// A window's stride: -1 means the kernel size; otherwise positive.
int64_t pool_stride(const char* op, int64_t k, int64_t stride) {
  MINIMA_CHECK(stride == -1 || stride >= 1, op, ": stride must be positive (or -1: the kernel size), got ", stride);
  return stride == -1 ? k : stride;
}
// Output length of a sliding window; 0 when even one window does not fit (integer division
// would truncate a negative span toward zero and report 1).
int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  // In 128 bits: a padding or dilation near 2^63 must not wrap around.
  const __int128 span = __int128(in) + 2 * __int128(p) - __int128(d) * (k - 1) - 1;
  if (span < 0) return 0;
  const __int128 n = span / s + 1;
  MINIMA_CHECK(n <= std::numeric_limits<int64_t>::max(), "an output size of padding ", p, " does not fit in 64 bits");
  return int64_t(n);
}
}  // namespace

Tensor conv2d(const Tensor& x0, const Tensor& w0, const Tensor& bias, const Conv2dParams& p) {
  check_nchw("conv2d", x0);
  MINIMA_CHECK(w0.defined() && w0.dim() == 4, "conv2d: weight must be [out, in/groups, kh, kw], got ",
               w0.defined() ? shape_str(w0.shape()) : "undefined");
  MINIMA_CHECK(x0.device() == w0.device(), "conv2d: input on ", x0.device(), " but weight on ", w0.device());
  MINIMA_CHECK(x0.dtype() == w0.dtype(), "conv2d: input is ", x0.dtype(), " but weight is ", w0.dtype());
  MINIMA_CHECK(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 && p.pad_h >= 0 &&
                   p.pad_w >= 0,
               "conv2d: invalid stride/padding/dilation/groups");
  int64_t N = x0.size(0), C = x0.size(1), H = x0.size(2), W = x0.size(3);
  int64_t O = w0.size(0), KH = w0.size(2), KW = w0.size(3);
  MINIMA_CHECK(p.groups <= std::max<int64_t>(C, 1) && C % p.groups == 0 && O % p.groups == 0 &&
                   w0.size(1) == C / p.groups,
               "conv2d: input of shape ", x0.shape(), " (", C, " channels) does not match weight of shape ", w0.shape(),
               " with groups=", p.groups);
  int64_t OH = out_size(H, KH, p.stride_h, p.pad_h, p.dil_h);
  int64_t OW = out_size(W, KW, p.stride_w, p.pad_w, p.dil_w);
  MINIMA_CHECK(OH > 0 && OW > 0, "conv2d: input of shape ", x0.shape(), " is too small for kernel ", KH, "x", KW,
               " (output would be ", OH, "x", OW, ")");
  if (bias.defined()) {
    MINIMA_CHECK(bias.dim() == 1 && bias.size(0) == O, "conv2d: bias of shape ", bias.shape(), " does not match ", O,
                 " output channels");
    MINIMA_CHECK(bias.device() == x0.device(), "conv2d: input on ", x0.device(), " but bias on ", bias.device());
    MINIMA_CHECK(bias.dtype() == x0.dtype(), "conv2d: input is ", x0.dtype(), " but bias is ", bias.dtype());
  }
  Tensor x = x0.contiguous().detach(), w = w0.contiguous().detach();
  Tensor b = bias.defined() ? bias.contiguous().detach() : Tensor();
  Tensor y = empty({N, O, OH, OW}, TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).conv2d_forward(y, x, w, b, p);
  if (needs_graph({&x0, &w0, &bias})) {
    bool nx = x0.requires_grad(), nw = w0.requires_grad(), nb = bias.defined() && bias.requires_grad();
    record(y, "conv2d", {x0, w0, bias},
           [=](const Tensor& g0) {
             Tensor g = g0.contiguous();
             Backend& be = backend_for(g.device());
             Tensor gx, gw, gb;
             if (nx) {
               gx = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
               be.conv2d_backward_input(gx, g, w, p);
             }
             if (nw) {
               gw = empty(w.shape(), TensorOptions(w.dtype(), w.device()));
               be.conv2d_backward_weight(gw, g, x, p);
             }
             if (nb) gb = sum(g, {0, 2, 3});
             return std::vector<Tensor>{gx, gw, gb};
           },
           {nw ? x : Tensor(), nx ? w : Tensor()});
  }
  return y;
}

Tensor max_pool2d(const Tensor& x0, int64_t k, int64_t stride, int64_t padding) {
  check_pool_input("max_pool2d", x0);
  stride = pool_stride("max_pool2d", k, stride);
  MINIMA_CHECK(k >= 1 && padding >= 0 && padding <= k / 2, "max_pool2d: invalid kernel ", k, " / padding ", padding,
               " (padding must be at most half the kernel)");
  Pool2dParams p{k, k, stride, stride, padding, padding, true};
  int64_t OH = out_size(x0.size(2), k, stride, padding, 1), OW = out_size(x0.size(3), k, stride, padding, 1);
  MINIMA_CHECK(OH > 0 && OW > 0, "max_pool2d: input of shape ", x0.shape(), " is too small for kernel ", k);
  Tensor x = x0.contiguous().detach();
  Tensor y = empty({x.size(0), x.size(1), OH, OW}, TensorOptions(x.dtype(), x.device()));
  Tensor idx = empty(y.shape(), TensorOptions(DType::i64, x.device()));
  backend_for(x.device()).max_pool2d_forward(y, idx, x, p);
  if (needs_graph({&x0})) {
    Shape xs = x.shape();
    record(y, "max_pool2d", {x0},
           [=](const Tensor& g) {
             Tensor gx = empty(xs, TensorOptions(g.dtype(), g.device()));
             backend_for(g.device()).max_pool2d_backward(gx, g.contiguous(), idx);
             return std::vector<Tensor>{gx};
           },
           {idx});
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x0, int64_t k, int64_t stride, int64_t padding, bool count_include_pad) {
  check_pool_input("avg_pool2d", x0);
  stride = pool_stride("avg_pool2d", k, stride);
  MINIMA_CHECK(k >= 1 && padding >= 0 && padding <= k / 2, "avg_pool2d: invalid kernel ", k, " / padding ", padding);
  Pool2dParams p{k, k, stride, stride, padding, padding, count_include_pad};
  int64_t OH = out_size(x0.size(2), k, stride, padding, 1), OW = out_size(x0.size(3), k, stride, padding, 1);
  MINIMA_CHECK(OH > 0 && OW > 0, "avg_pool2d: input of shape ", x0.shape(), " is too small for kernel ", k);
  Tensor x = x0.contiguous().detach();
  Tensor y = empty({x.size(0), x.size(1), OH, OW}, TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).avg_pool2d_forward(y, x, p);
  if (needs_graph({&x0})) {
    Shape xs = x.shape();
    record(y, "avg_pool2d", {x0}, [=](const Tensor& g) {
      Tensor gx = empty(xs, TensorOptions(g.dtype(), g.device()));
      backend_for(g.device()).avg_pool2d_backward(gx, g.contiguous(), p);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x0, int64_t oh, int64_t ow) {
  check_pool_input("adaptive_avg_pool2d", x0);
  MINIMA_CHECK(oh >= 1 && ow >= 1, "adaptive_avg_pool2d: output size must be positive, got ", oh, "x", ow);
  Tensor x = x0.contiguous().detach();
  Tensor y = empty({x.size(0), x.size(1), oh, ow}, TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).adaptive_avg_pool2d_forward(y, x);
  if (needs_graph({&x0})) {
    Shape xs = x.shape();
    record(y, "adaptive_avg_pool2d", {x0}, [=](const Tensor& g) {
      Tensor gx = empty(xs, TensorOptions(g.dtype(), g.device()));
      backend_for(g.device()).adaptive_avg_pool2d_backward(gx, g.contiguous());
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor batch_norm(const Tensor& x0, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  MINIMA_CHECK(x0.defined() && (x0.dim() == 2 || x0.dim() == 4),
               "batch_norm: expected an input of shape [N, C] or [N, C, H, W], got ",
               x0.defined() ? shape_str(x0.shape()) : "undefined");
  int64_t C = x0.size(1);
  auto check_c = [&](const Tensor& t, const char* what) {
    if (!t.defined()) return;
    MINIMA_CHECK(t.dim() == 1 && t.size(0) == C, "batch_norm: ", what, " of shape ", t.shape(), " does not match ", C,
                 " channels of input ", x0.shape());
    MINIMA_CHECK(t.device() == x0.device(), "batch_norm: ", what, " on ", t.device(), " but input on ", x0.device());
  };
  check_c(weight, "weight");
  check_c(bias, "bias");
  check_c(running_mean, "running_mean");
  check_c(running_var, "running_var");
  MINIMA_CHECK(training || (running_mean.defined() && running_var.defined()),
               "batch_norm: evaluation mode needs running_mean and running_var");
  Tensor x4 = x0.dim() == 2 ? x0.reshape({x0.size(0), C, 1, 1}) : x0;
  if (training) {
    int64_t per_channel = x4.size(0) * x4.size(2) * x4.size(3);
    MINIMA_CHECK(per_channel > 1, "batch_norm: expected more than 1 value per channel when training, got input ",
                 x0.shape());
    Tensor x = x4.contiguous().detach();
    DType st = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
    Tensor y = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
    Tensor mean_s = empty({C}, TensorOptions(st, x.device())), invstd = empty({C}, TensorOptions(st, x.device()));
    Tensor w = weight.defined() ? weight.detach() : Tensor(), b = bias.defined() ? bias.detach() : Tensor();
    backend_for(x.device())
        .batch_norm_forward_train(y, mean_s, invstd, x, w, b, running_mean.defined() ? running_mean.detach() : Tensor(),
                                  running_var.defined() ? running_var.detach() : Tensor(), momentum, eps);
    if (needs_graph({&x4, &weight, &bias})) {
      bool nw = weight.defined() && weight.requires_grad(), nb = bias.defined() && bias.requires_grad();
      record(y, "batch_norm", {x4, weight, bias},
             [=](const Tensor& g) {
               Tensor gx = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
               Tensor gw = (w.defined()) ? empty(w.shape(), TensorOptions(w.dtype(), w.device())) : Tensor();
               Tensor gb = (w.defined() || b.defined()) ? empty({C}, TensorOptions(x.dtype(), x.device())) : Tensor();
               if (b.defined()) gb = empty(b.shape(), TensorOptions(b.dtype(), b.device()));
               backend_for(x.device()).batch_norm_backward(gx, gw, gb, g.contiguous(), x, w, mean_s, invstd);
               return std::vector<Tensor>{gx, nw ? gw : Tensor(), nb ? gb : Tensor()};
             },
             {x, w, mean_s, invstd});
    }
    return x0.dim() == 2 ? y.reshape(x0.shape()) : y;
  }
  // Evaluation: an affine map per channel. With autograd it is composed of front-end ops (so the
  // gradients of weight and bias come for free); without, one fused kernel.
  if (needs_graph({&x0, &weight, &bias})) {
    Shape cs = {1, C, 1, 1};
    Tensor scale = pow(add(running_var.detach(), eps), -0.5);
    if (weight.defined()) scale = mul(scale, weight);
    Tensor y = mul(sub(x4, running_mean.detach().reshape(cs)), scale.reshape(cs));
    if (bias.defined()) y = add(y, bias.reshape(cs));
    return x0.dim() == 2 ? y.reshape(x0.shape()) : y;
  }
  Tensor x = x4.contiguous();
  Tensor y = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).batch_norm_forward_eval(y, x, weight, bias, running_mean, running_var, eps);
  return x0.dim() == 2 ? y.reshape(x0.shape()) : y;
}

Tensor log_softmax(const Tensor& x0, int64_t dim) {
  MINIMA_CHECK(x0.defined() && is_floating(x0.dtype()), "log_softmax: expected a floating tensor");
  int64_t d = wrap_dim(dim, x0.dim(), "log_softmax");
  Tensor x = x0.contiguous().detach();
  Tensor y = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  backend_for(x.device()).log_softmax_forward(y, x, d);
  if (needs_graph({&x0})) {
    Tensor yd = y.detach();
    record(y, "log_softmax", {x0},
           [=](const Tensor& g) {
             Tensor gx = empty(yd.shape(), TensorOptions(yd.dtype(), yd.device()));
             backend_for(yd.device()).log_softmax_backward(gx, g.contiguous(), yd, d);
             return std::vector<Tensor>{gx};
           },
           {yd});
  }
  return y;
}

Tensor softmax(const Tensor& x, int64_t dim) { return exp(log_softmax(x, dim)); }

Tensor nll_loss(const Tensor& logp0, const Tensor& target0) {
  MINIMA_CHECK(logp0.defined() && logp0.dim() == 2, "nll_loss: expected log-probabilities of shape [N, C], got ",
               logp0.defined() ? shape_str(logp0.shape()) : "undefined");
  MINIMA_CHECK(target0.defined() && target0.dtype() == DType::i64 && target0.dim() == 1,
               "nll_loss: expected int64 targets of shape [N], got ",
               target0.defined() ? str(target0.dtype(), " ", target0.shape()) : "undefined");
  MINIMA_CHECK(target0.size(0) == logp0.size(0), "nll_loss: ", logp0.size(0), " predictions (shape ", logp0.shape(),
               ") but ", target0.size(0), " targets");
  MINIMA_CHECK(logp0.device() == target0.device(), "nll_loss: predictions on ", logp0.device(), " but targets on ",
               target0.device());
  MINIMA_CHECK(logp0.size(0) > 0, "nll_loss: empty batch");
  Tensor logp = logp0.contiguous().detach(), target = target0.contiguous();
  int64_t N = logp.size(0);
  Tensor per = empty({N}, TensorOptions(logp.dtype(), logp.device()));
  backend_for(logp.device()).nll_forward(per, logp, target);
  Tensor loss;
  {
    NoGradGuard ng;
    loss = mean(per);
  }
  if (needs_graph({&logp0})) {
    Shape ls = logp.shape();
    record(loss, "nll_loss", {logp0},
           [=](const Tensor& g) {
             Tensor gper = mul(g, 1.0 / double(N)).expand({N}).contiguous();
             Tensor gl = empty(ls, TensorOptions(g.dtype(), g.device()));
             backend_for(g.device()).nll_backward(gl, gper, target);
             return std::vector<Tensor>{gl};
           },
           {target});
  }
  return loss;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target) {
  MINIMA_CHECK(logits.defined() && logits.dim() == 2, "cross_entropy: expected logits of shape [N, C], got ",
               logits.defined() ? shape_str(logits.shape()) : "undefined");
  return nll_loss(log_softmax(logits, 1), target);
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y) {
  MINIMA_CHECK(x.defined() && y.defined() && x.shape() == y.shape(),
               "binary_cross_entropy_with_logits: logits of shape ", x.defined() ? shape_str(x.shape()) : "?",
               " and targets of shape ", y.defined() ? shape_str(y.shape()) : "?", " must match");
  // softplus(x) - x*y == max(x,0) - x*y + log(1 + exp(-|x|)), computed stably by the softplus kernel.
  return mean(sub(softplus(x), mul(x, y.to(x.dtype()))));
}

Tensor mse_loss(const Tensor& a, const Tensor& b) {
  MINIMA_CHECK(a.defined() && b.defined() && a.shape() == b.shape(), "mse_loss: shapes ",
               a.defined() ? shape_str(a.shape()) : "?", " and ", b.defined() ? shape_str(b.shape()) : "?",
               " must match");
  return mean(square(sub(a, b)));
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& g) {
  MINIMA_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  Tensor keep;
  {
    NoGradGuard ng;
    Tensor u = rand(x.shape(), g, TensorOptions(x.dtype(), x.device()));
    keep = mul(ge(u, full({}, p, TensorOptions(x.dtype(), x.device()))).to(x.dtype()), 1.0 / (1.0 - p));
  }
  return mul(x, keep);
}

int64_t count_correct(const Tensor& logits, const Tensor& target) {
  MINIMA_CHECK(logits.dim() == 2 && target.dim() == 1 && target.size(0) == logits.size(0), "count_correct: expected ",
               "logits [N, classes] and targets [N], got ", logits.shape(), " and ", target.shape());
  MINIMA_CHECK(!is_floating(target.dtype()), "count_correct: targets must be class indices, got ", target.dtype());
  NoGradGuard ng;
  Tensor pred = argmax(logits, 1);
  return int64_t(sum(eq(pred, target.to(DType::i64))).item());
}

}  // namespace minima
