// nn/blocks.h: the residual and dense building blocks of the paper's networks, named as in the
// widely used CIFAR PyTorch implementations the paper's code builds on (kuangliu/pytorch-cifar):
//   BasicBlock:  conv1 bn1 conv2 bn2 [shortcut.0 conv1x1, shortcut.1 bn]
//   Bottleneck:  conv1 bn1 conv2 bn2 conv3 bn3 [shortcut.0, shortcut.1]   (expansion 4)
//   DenseLayer:  bn1 conv1(1x1 -> 4*growth) bn2 conv2(3x3 -> growth), output cat([new, input])
//   Transition:  bn conv(1x1) then 2x2 average pool
// and those of Zhang et al.'s (2017) small Inception for CIFAR-10:
//   ConvBNReLU:  conv (with bias, "same" padding) bn (no affine parameters) then ReLU
//   Inception:   branch1 (ConvBNReLU 1x1) and branch3 (ConvBNReLU 3x3), outputs concatenated
//   Downsample:  conv (ConvBNReLU 3x3, stride 2) and a 3x3 stride-2 max-pool (padding 1), concatenated
// A projection shortcut (1x1 conv + BN) is used exactly when the stride or the channel count
// changes; otherwise the shortcut is the identity.
#pragma once
#include <memory>

#include "nn/layers.h"

namespace minima::nn {

class BasicBlock : public Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in, int64_t planes, int64_t stride, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BasicBlock"; }
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> shortcut;  // empty = identity
};

class Bottleneck : public Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in, int64_t planes, int64_t stride, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Bottleneck"; }
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Sequential> shortcut;
};

// DenseNet-BC bottleneck layer: in -> in + growth channels. Convs have no bias.
class DenseLayer : public Module {
 public:
  DenseLayer(int64_t in, int64_t growth, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "DenseLayer"; }
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Conv2d> conv1, conv2;
};

// DenseNet transition: BN-ReLU-conv1x1(in -> out) then avg-pool 2 (halves H and W).
class Transition : public Module {
 public:
  Transition(int64_t in, int64_t out, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Transition"; }
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Conv2d> conv;
};

// conv (bias, padding k/2) -> BatchNorm2d without affine parameters -> ReLU. Zhang et al.'s
// parameter count (1,649,402) holds exactly when batch norm has no learnable scale and shift.
class ConvBNReLU : public Module {
 public:
  ConvBNReLU(int64_t in, int64_t out, int64_t kernel, int64_t stride, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ConvBNReLU"; }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
};

// Inc(a, b): in -> a + b channels, same spatial size.
class Inception : public Module {
 public:
  Inception(int64_t in, int64_t ch1, int64_t ch3, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Inception"; }
  std::shared_ptr<ConvBNReLU> branch1, branch3;
  int64_t out_channels;
};

// Down(c): in -> c + in channels, spatial size halved (rounded up).
class Downsample : public Module {
 public:
  Downsample(int64_t in, int64_t ch3, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Downsample"; }
  std::shared_ptr<ConvBNReLU> conv;
  int64_t out_channels;
};

}  // namespace minima::nn
