// nn/models/resnet.cpp: CIFAR ResNets (3x3 stem, no max-pool) with BasicBlock or Bottleneck.
#include "nn/models.h"

namespace minima::nn {

ResNet::ResNet(Block block, const std::vector<int64_t>& blocks, const Shape& in, int64_t classes, Generator& g) {
  MINIMA_CHECK(in.size() == 3, "resnet: input shape must be {C, H, W}, got ", shape_str(in));
  MINIMA_CHECK(blocks.size() == 4, "resnet: expected 4 stages, got ", blocks.size());
  Conv2dOptions stem;
  stem.padding = 1;
  stem.bias = false;
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in[0], 64, 3, g, stem));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  int64_t expansion = block == Block::Basic ? BasicBlock::expansion : Bottleneck::expansion;
  int64_t channels = 64;
  const int64_t planes[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s) {
    auto stage = std::make_shared<Sequential>();
    for (int64_t b = 0; b < blocks[s]; ++b) {
      int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      if (block == Block::Basic)
        stage->add(std::make_shared<BasicBlock>(channels, planes[s], stride, g));
      else
        stage->add(std::make_shared<Bottleneck>(channels, planes[s], stride, g));
      channels = planes[s] * expansion;
    }
    layers.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  linear = register_module("linear", std::make_shared<Linear>(channels, classes, g));
}

Tensor ResNet::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  for (auto& l : layers) out = (*l)(out);
  out = adaptive_avg_pool2d(out, 1, 1).flatten(1);
  return (*linear)(out);
}

}  // namespace minima::nn
