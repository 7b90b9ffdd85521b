// nn/init.h: weight initializations. PyTorch's layer defaults (kaiming_uniform with a = sqrt(5)
// for conv/linear weights, which reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound
// for biases) and He-normal on fan_out as in the official DenseNet code. All draws come from a
// minima::Generator, so the same seed gives the same weights on every device.
#pragma once
#include "core/random.h"
#include "core/tensor.h"

namespace minima::nn::init {

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (PyTorch's definition).
int64_t fan_in(const Shape& weight_shape);
int64_t fan_out(const Shape& weight_shape);

// U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) (torch.nn.init.kaiming_uniform_).
Tensor kaiming_uniform(const Shape& s, double a, Generator& g);
// N(0, 2 / fan_out): He et al. 2015 with mode fan_out, used by the reference DenseNet code.
Tensor he_normal_fan_out(const Shape& s, Generator& g);
// PyTorch's default bias for a layer whose weight has `fan_in`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor default_bias(int64_t out, int64_t fan_in, Generator& g);

}  // namespace minima::nn::init
