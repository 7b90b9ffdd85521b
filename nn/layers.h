// nn/layers.h: the layers the paper's networks are built from. Constructor arguments, parameter
// names and default initializations follow torch.nn so that a state_dict loads into the
// PyTorch reference models (tests/crosscheck/models.py) unchanged.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "nn/module.h"

namespace minima::nn {

// y = x W^T + b, W [out, in]. Default init: kaiming_uniform(a = sqrt(5)) weight, uniform bias.
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, Generator& g, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;
  Tensor weight, bias;  // bias undefined when built without one
  int64_t in_features, out_features;
};

struct Conv2dOptions {
  int64_t stride = 1, padding = 0, groups = 1;
  bool bias = true;
};

// 2-D convolution over NCHW, square kernels. Default init as Linear (fan_in = in/groups * k * k).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, Generator& g, Conv2dOptions o = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;
  Tensor weight, bias;
  int64_t in_channels, out_channels, kernel_size;
  Conv2dOptions opt;
};

// Batch normalization over (N, H, W) of NCHW (or N of NC). Train mode normalizes with batch
// statistics and updates running_mean/running_var (unbiased variance, `momentum` weighting the new
// value, as in PyTorch) and counts num_batches_tracked; eval mode uses the running statistics.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm2d"; }
  std::string describe() const override;
  Tensor weight, bias;  // undefined when !affine
  Tensor running_mean, running_var, num_batches_tracked;
  int64_t num_features;
  double eps, momentum;

 private:
  Tensor one_;  // i64 scalar 1 on the buffers' device, to count batches without a host sync
};

// BatchNorm1d: the same normalization over N of an [N, C] input (PyTorch's BatchNorm1d without
// the [N, C, L] form); the same parameter and buffer names, so state_dicts match.
class BatchNorm1d : public BatchNorm2d {
 public:
  using BatchNorm2d::BatchNorm2d;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm1d"; }
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0)
      : kernel(kernel), stride(stride < 0 ? kernel : stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel, stride, padding); }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override;
  int64_t kernel, stride, padding;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0)
      : kernel(kernel), stride(stride < 0 ? kernel : stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, kernel, stride, padding); }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string describe() const override;
  int64_t kernel, stride, padding;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t out_h, int64_t out_w = -1) : out_h(out_h), out_w(out_w < 0 ? out_h : out_w) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_h, out_w); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string describe() const override;
  int64_t out_h, out_w;
};

// Local response normalization across channels (AlexNet), as torch.nn.LocalResponseNorm:
//   y[:, c] = x[:, c] / (k + alpha / size * sum of x^2 over the `size` channels around c)^beta,
// the window zero-padded at the channel edges (size/2 channels before c, (size-1)/2 after). Built
// from differentiable ops (square, pad, shifted sums, pow), so it needs no kernel of its own.
class LocalResponseNorm : public Module {
 public:
  explicit LocalResponseNorm(int64_t size, double alpha = 1e-4, double beta = 0.75, double k = 1.0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LocalResponseNorm"; }
  std::string describe() const override;
  int64_t size;
  double alpha, beta, k;
};

// Flattens dims start..end (default: everything but the batch dim), like torch.nn.Flatten.
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start = 1, int64_t end = -1) : start(start), end(end) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start, end); }
  std::string type_name() const override { return "Flatten"; }
  int64_t start, end;
};

// Inverted dropout. The mask comes from the shared generator, so saving the generator's state in
// a checkpoint makes a resumed run draw the same masks.
class Dropout : public Module {
 public:
  Dropout(double p, std::shared_ptr<Generator> g);
  Tensor forward(const Tensor& x) override { return dropout(x, p, is_training(), *gen); }
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override;
  double p;
  std::shared_ptr<Generator> gen;
};

// Children named "0", "1", ... applied in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> mods);
  Sequential& add(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return mods_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const {
    MINIMA_CHECK(i < mods_.size(), "Sequential: index ", i, " is out of range for ", mods_.size(), " modules");
    return mods_[i];
  }

 private:
  std::vector<std::shared_ptr<Module>> mods_;
};

}  // namespace minima::nn
