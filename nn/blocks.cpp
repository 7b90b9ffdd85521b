// nn/blocks.cpp: see blocks.h.
#include "nn/blocks.h"

namespace minima::nn {

namespace {
Conv2dOptions conv_opts(int64_t stride, int64_t padding) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = padding;
  o.bias = false;
  return o;
}
std::shared_ptr<Sequential> projection(int64_t in, int64_t out, int64_t stride, Generator& g) {
  auto s = std::make_shared<Sequential>();
  if (stride != 1 || in != out) {
    s->add(std::make_shared<Conv2d>(in, out, 1, g, conv_opts(stride, 0)));
    s->add(std::make_shared<BatchNorm2d>(out));
  }
  return s;
}
}  // namespace

BasicBlock::BasicBlock(int64_t in, int64_t planes, int64_t stride, Generator& g) {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in, planes, 3, g, conv_opts(stride, 1)));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, g, conv_opts(1, 1)));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  shortcut = register_module("shortcut", projection(in, planes * expansion, stride, g));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  return relu(out + (shortcut->size() ? (*shortcut)(x) : x));
}

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, Generator& g) {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in, planes, 1, g, conv_opts(1, 0)));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, g, conv_opts(stride, 1)));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3 = register_module("conv3", std::make_shared<Conv2d>(planes, planes * expansion, 1, g, conv_opts(1, 0)));
  bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(planes * expansion));
  shortcut = register_module("shortcut", projection(in, planes * expansion, stride, g));
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = relu((*bn2)((*conv2)(out)));
  out = (*bn3)((*conv3)(out));
  return relu(out + (shortcut->size() ? (*shortcut)(x) : x));
}

DenseLayer::DenseLayer(int64_t in, int64_t growth, Generator& g) {
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in));
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in, 4 * growth, 1, g, conv_opts(1, 0)));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(4 * growth));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(4 * growth, growth, 3, g, conv_opts(1, 1)));
}

Tensor DenseLayer::forward(const Tensor& x) {
  Tensor out = (*conv1)(relu((*bn1)(x)));
  out = (*conv2)(relu((*bn2)(out)));
  return cat({out, x}, 1);
}

Transition::Transition(int64_t in, int64_t out, Generator& g) {
  bn = register_module("bn", std::make_shared<BatchNorm2d>(in));
  conv = register_module("conv", std::make_shared<Conv2d>(in, out, 1, g, conv_opts(1, 0)));
}

Tensor Transition::forward(const Tensor& x) { return avg_pool2d((*conv)(relu((*bn)(x))), 2); }

ConvBNReLU::ConvBNReLU(int64_t in, int64_t out, int64_t kernel, int64_t stride, Generator& g) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = kernel / 2;
  conv = register_module("conv", std::make_shared<Conv2d>(in, out, kernel, g, o));
  bn = register_module("bn", std::make_shared<BatchNorm2d>(out, 1e-5, 0.1, /*affine=*/false));
}

Tensor ConvBNReLU::forward(const Tensor& x) { return relu((*bn)((*conv)(x))); }

Inception::Inception(int64_t in, int64_t ch1, int64_t ch3, Generator& g) : out_channels(ch1 + ch3) {
  branch1 = register_module("branch1", std::make_shared<ConvBNReLU>(in, ch1, 1, 1, g));
  branch3 = register_module("branch3", std::make_shared<ConvBNReLU>(in, ch3, 3, 1, g));
}

Tensor Inception::forward(const Tensor& x) { return cat({(*branch1)(x), (*branch3)(x)}, 1); }

Downsample::Downsample(int64_t in, int64_t ch3, Generator& g) : out_channels(ch3 + in) {
  conv = register_module("conv", std::make_shared<ConvBNReLU>(in, ch3, 3, 2, g));
}

Tensor Downsample::forward(const Tensor& x) { return cat({(*conv)(x), max_pool2d(x, 3, 2, 1)}, 1); }

}  // namespace minima::nn
