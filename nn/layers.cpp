// nn/layers.cpp: the layers of nn/layers.h.
#include "nn/layers.h"

#include <cmath>

#include "nn/autocast.h"
#include "nn/init.h"

namespace minima::nn {

Linear::Linear(int64_t in, int64_t out, Generator& g, bool with_bias) : in_features(in), out_features(out) {
  MINIMA_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in=", in, " out=", out);
  weight = register_parameter("weight", init::kaiming_uniform({out, in}, std::sqrt(5.0), g));
  if (with_bias) bias = register_parameter("bias", init::default_bias(out, in, g));
}

Tensor Linear::forward(const Tensor& x) {
  MINIMA_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "Linear(", in_features, ", ", out_features,
               "): input of shape ", shape_str(x.shape()), " does not end in ", in_features);
  return linear(autocast(x), autocast(weight), autocast(bias));
}

std::string Linear::describe() const {
  return str("Linear(", in_features, ", ", out_features, bias.defined() ? "" : ", bias=false", ")");
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, Generator& g, Conv2dOptions o)
    : in_channels(in), out_channels(out), kernel_size(kernel), opt(o) {
  MINIMA_CHECK(in > 0 && out > 0 && kernel > 0 && o.groups > 0 && in % o.groups == 0 && out % o.groups == 0,
               "Conv2d: invalid sizes in=", in, " out=", out, " kernel=", kernel, " groups=", o.groups);
  Shape ws{out, in / o.groups, kernel, kernel};
  weight = register_parameter("weight", init::kaiming_uniform(ws, std::sqrt(5.0), g));
  if (o.bias) bias = register_parameter("bias", init::default_bias(out, init::fan_in(ws), g));
}

Tensor Conv2d::forward(const Tensor& x) {
  MINIMA_CHECK(x.dim() == 4 && x.size(1) == in_channels, describe(), ": expected input [N, ", in_channels,
               ", H, W], got ", shape_str(x.shape()));
  Conv2dParams p;
  p.stride_h = p.stride_w = opt.stride;
  p.pad_h = p.pad_w = opt.padding;
  p.groups = opt.groups;
  return conv2d(autocast(x), autocast(weight), autocast(bias), p);
}

std::string Conv2d::describe() const {
  return str("Conv2d(", in_channels, ", ", out_channels, ", kernel=", kernel_size, ", stride=", opt.stride,
             ", padding=", opt.padding, opt.groups != 1 ? str(", groups=", opt.groups) : "",
             opt.bias ? "" : ", bias=false", ")");
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps, double momentum, bool affine)
    : num_features(c), eps(eps), momentum(momentum) {
  MINIMA_CHECK(c > 0, "BatchNorm2d: channel count must be positive, got ", c);
  MINIMA_CHECK(std::isfinite(eps) && eps >= 0, "BatchNorm2d: eps must be finite and >= 0, got ", eps);
  MINIMA_CHECK(momentum >= 0 && momentum <= 1, "BatchNorm2d: momentum must be in [0, 1], got ", momentum);
  if (affine) {
    weight = register_parameter("weight", ones({c}));
    bias = register_parameter("bias", zeros({c}));
  }
  running_mean = register_buffer("running_mean", zeros({c}));
  running_var = register_buffer("running_var", ones({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::i64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  MINIMA_CHECK((x.dim() == 4 || x.dim() == 2) && x.size(1) == num_features, describe(), ": expected input [N, ",
               num_features, ", H, W], got ", shape_str(x.shape()));
  if (is_training()) {
    if (!one_.defined() || one_.device() != num_batches_tracked.device())
      one_ = ones({}, TensorOptions(DType::i64, num_batches_tracked.device()));
    NoGradGuard ng;
    num_batches_tracked.add_(one_);
  }
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

Tensor BatchNorm1d::forward(const Tensor& x) {
  MINIMA_CHECK(x.dim() == 2 && x.size(1) == num_features, describe(), ": expected input [N, ", num_features, "], got ",
               shape_str(x.shape()));
  return BatchNorm2d::forward(x);
}

std::string BatchNorm2d::describe() const {
  return str(type_name(), "(", num_features, ", eps=", eps, ", momentum=", momentum,
             weight.defined() ? "" : ", affine=false", ")");
}

std::string MaxPool2d::describe() const {
  return str("MaxPool2d(kernel=", kernel, ", stride=", stride, ", padding=", padding, ")");
}
std::string AvgPool2d::describe() const {
  return str("AvgPool2d(kernel=", kernel, ", stride=", stride, ", padding=", padding, ")");
}
std::string AdaptiveAvgPool2d::describe() const { return str("AdaptiveAvgPool2d(", out_h, ", ", out_w, ")"); }

LocalResponseNorm::LocalResponseNorm(int64_t size, double alpha, double beta, double k)
    : size(size), alpha(alpha), beta(beta), k(k) {
  MINIMA_CHECK(size >= 1, "LocalResponseNorm: size must be at least 1, got ", size);
  MINIMA_CHECK(k > 0 && alpha >= 0, "LocalResponseNorm: needs k > 0 and alpha >= 0, got k=", k, ", alpha=", alpha);
}

Tensor LocalResponseNorm::forward(const Tensor& x) {
  MINIMA_CHECK(x.dim() >= 3, "LocalResponseNorm: expected [N, C, ...], got ", shape_str(x.shape()));
  const int64_t C = x.size(1);
  // bfloat16 activations (mixed precision) are normalized in float32: a sum of squares over the
  // window would keep only about three digits in bfloat16.
  const Tensor xf = x.dtype() == DType::bf16 ? x.to(DType::f32) : x;
  // Pad the channel dim (pair ndim-2 in F.pad order, which starts from the last dim).
  std::vector<int64_t> pads(size_t(2 * (x.dim() - 1)), 0);
  pads[size_t(2 * (x.dim() - 2))] = size / 2;
  pads[size_t(2 * (x.dim() - 2) + 1)] = (size - 1) / 2;
  Tensor sq = pad(xf * xf, pads);
  Tensor window = sq.narrow(1, 0, C);
  for (int64_t j = 1; j < size; ++j) window = window + sq.narrow(1, j, C);
  return (xf / pow(window * (alpha / double(size)) + k, beta)).to(x.dtype());
}

std::string LocalResponseNorm::describe() const {
  return str("LocalResponseNorm(size=", size, ", alpha=", alpha, ", beta=", beta, ", k=", k, ")");
}

Dropout::Dropout(double p, std::shared_ptr<Generator> g) : p(p), gen(std::move(g)) {
  MINIMA_CHECK(p >= 0.0 && p < 1.0, "Dropout: probability must be in [0, 1), got ", p);
  MINIMA_CHECK(gen != nullptr, "Dropout: needs a generator");
}
std::string Dropout::describe() const { return str("Dropout(p=", p, ")"); }

Sequential::Sequential(std::vector<std::shared_ptr<Module>> mods) {
  for (auto& m : mods) add(std::move(m));
}

Sequential& Sequential::add(std::shared_ptr<Module> m) {
  add_child(std::to_string(mods_.size()), m);
  mods_.push_back(std::move(m));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& m : mods_) h = m->forward(h);
  return h;
}

}  // namespace minima::nn
