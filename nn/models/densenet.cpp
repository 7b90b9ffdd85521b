// nn/models/densenet.cpp: DenseNet-BC for CIFAR (Huang et al. 2017) with the reference code's
// initialization: conv weights N(0, 2 / (k*k*out_channels)), BN weight 1 and bias 0, linear bias 0
// (the linear weight keeps PyTorch's default).
#include <cmath>

#include "nn/init.h"
#include "nn/models.h"

namespace minima::nn {

DenseNet::DenseNet(int64_t depth, int64_t growth, double compression, const Shape& in, int64_t classes, Generator& g) {
  MINIMA_CHECK(in.size() == 3, "densenet: input shape must be {C, H, W}, got ", shape_str(in));
  MINIMA_CHECK((depth - 4) % 6 == 0, "densenet: depth must be 6n+4 for DenseNet-BC, got ", depth);
  int64_t n = (depth - 4) / 6;  // bottleneck layers per dense block (each is two convs)
  int64_t c = 2 * growth;
  Conv2dOptions stem;
  stem.padding = 1;
  stem.bias = false;
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in[0], c, 3, g, stem));
  for (int b = 0; b < 3; ++b) {
    auto block = std::make_shared<Sequential>();
    for (int64_t i = 0; i < n; ++i) {
      block->add(std::make_shared<DenseLayer>(c, growth, g));
      c += growth;
    }
    dense.push_back(register_module("dense" + std::to_string(b + 1), block));
    if (b < 2) {
      int64_t out = int64_t(std::floor(double(c) * compression));
      trans.push_back(register_module("trans" + std::to_string(b + 1), std::make_shared<Transition>(c, out, g)));
      c = out;
    }
  }
  bn = register_module("bn", std::make_shared<BatchNorm2d>(c));
  linear = register_module("linear", std::make_shared<Linear>(c, classes, g));

  // He-normal conv weights (drawn after construction, in parameter order, from the same generator).
  NoGradGuard ng;
  for (auto& [name, p] : named_parameters()) {
    if (p.dim() == 4) p.copy_(init::he_normal_fan_out(p.shape(), g));
  }
  linear->bias.zero_();
}

Tensor DenseNet::forward(const Tensor& x) {
  Tensor out = (*conv1)(x);
  for (size_t b = 0; b < dense.size(); ++b) {
    out = (*dense[b])(out);
    if (b < trans.size()) out = (*trans[b])(out);
  }
  out = adaptive_avg_pool2d(relu((*bn)(out)), 1, 1).flatten(1);
  return (*linear)(out);
}

}  // namespace minima::nn
