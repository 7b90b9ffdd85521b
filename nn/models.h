// nn/models.h: the networks of the experiments, built for a given input shape (C, H, W) and class
// count. Every classifier head is sized from the input shape, so 1x28x28 (Fashion-MNIST) works as
// well as 3x32x32 (CIFAR). Parameter names equal the PyTorch reference models'
// (tests/crosscheck/models.py) state_dict keys.
//
//   mlp        Flatten, Linear(C*H*W, 512), ReLU, Linear(512, 512), ReLU, Linear(512, classes)
//   mlp-bn     mlp with BatchNorm1d after each hidden Linear (Linear, BN, ReLU): the MLP with the
//              scale invariance of the paper's BN networks, for the CPU default's ablation
//   mlp1x512   Zhang et al.'s one-hidden-layer MLP (512 units)
//   mlp3x512   Zhang et al.'s three-hidden-layer MLP (512 units each)
//   smallcnn   conv3x3(32)-BN-ReLU-maxpool2, conv3x3(64)-BN-ReLU-maxpool2, Linear(64*H/4*W/4, 256),
//              ReLU, Linear(256, classes). Chosen for the CPU default of the bad-minima experiment:
//              the wide fully connected head memorizes a few thousand randomly labelled
//              Fashion-MNIST images within minutes on two cores, which the global-pooling CNNs of
//              the same cost that were tried for it did not.
//   vgg16      CIFAR VGG16, BN after every conv (convs with bias), Linear(512 * h * w, classes)
//   resnet18   3x3 stem, no max-pool, BasicBlocks [2,2,2,2], global average pool, Linear(512, classes)
//   resnet50   same stem, Bottlenecks [3,4,6,3], Linear(2048, classes)
//   densenet40 DenseNet-BC (depth 40, growth 12, compression 0.5), He-normal conv init
//   inception-small  Zhang et al.'s small Inception for CIFAR-10 (1,649,402 parameters on 3x28x28)
//   alexnet-small    Zhang et al.'s small AlexNet for CIFAR-10 (1,387,786 parameters on 3x28x28)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/blocks.h"
#include "nn/layers.h"

namespace minima::nn {

// Multilayer perceptron: children "layers" (a Sequential of Linear[/BatchNorm1d]/ReLU) after an
// implicit flatten.
class MLP : public Module {
 public:
  MLP(int64_t in_features, const std::vector<int64_t>& hidden, int64_t classes, Generator& g, bool batch_norm = false);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MLP"; }
  std::shared_ptr<Sequential> layers;
  int64_t in_features;
};

// smallcnn: "features" (Sequential) then "classifier" (Sequential).
class SmallCNN : public Module {
 public:
  SmallCNN(const Shape& in_chw, int64_t classes, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "SmallCNN"; }
  std::shared_ptr<Sequential> features, classifier;
};

// The CIFAR VGG: "features" (conv, bn, relu triples and max-pools; a final 1x1 average pool as in
// the reference code) and "classifier" (Linear). A max-pool whose input is already 1x1 (e.g. the
// fifth pool on 28x28 inputs) is an Identity so small inputs still work; names are unchanged
// because pools hold no parameters.
class VGG : public Module {
 public:
  VGG(const std::vector<int64_t>& cfg, const Shape& in_chw, int64_t classes, Generator& g);  // -1 = max-pool
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "VGG"; }
  std::shared_ptr<Sequential> features;
  std::shared_ptr<Linear> classifier;
};

// ResNet for CIFAR: conv1, bn1, layer1..layer4, linear; global average pooling before linear
// (identical to the reference's avg_pool2d(4) on 32x32 inputs).
class ResNet : public Module {
 public:
  enum class Block { Basic, Bottleneck };
  ResNet(Block block, const std::vector<int64_t>& blocks, const Shape& in_chw, int64_t classes, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ResNet"; }
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::vector<std::shared_ptr<Sequential>> layers;
  std::shared_ptr<Linear> linear;
};

// DenseNet-BC: conv1, dense1, trans1, dense2, trans2, dense3, bn, linear; global average pooling
// (the reference's avg_pool2d(8) on 32x32 inputs). Convs are He-normal (fan_out), linear bias 0.
class DenseNet : public Module {
 public:
  DenseNet(int64_t depth, int64_t growth, double compression, const Shape& in_chw, int64_t classes, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "DenseNet"; }
  std::shared_ptr<Conv2d> conv1;
  std::vector<std::shared_ptr<Sequential>> dense;
  std::vector<std::shared_ptr<Transition>> trans;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Linear> linear;
};

// Zhang et al. (2017), appendix: Conv(96, 3x3) -> Inc(32,32) -> Inc(32,48) -> Down(80) ->
// Inc(112,48) -> Inc(96,64) -> Inc(80,80) -> Inc(48,96) -> Down(96) -> Inc(176,160) x2 -> global
// mean pool -> Linear(336, classes) (blocks in nn/blocks.h). Children: conv1, blocks, linear.
class InceptionSmall : public Module {
 public:
  InceptionSmall(const Shape& in_chw, int64_t classes, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "InceptionSmall"; }
  std::shared_ptr<ConvBNReLU> conv1;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<Linear> linear;
};

// Zhang et al.'s small AlexNet: two blocks of conv 5x5 (64, padding 2) -> ReLU -> max-pool 3x3
// stride 2 (padding 1) -> LocalResponseNorm, then Linear 384 -> ReLU -> Linear 192 -> ReLU ->
// Linear(classes). The normalization is the TensorFlow CIFAR-10 model's (depth radius 4, bias 1,
// alpha 0.001/9, beta 0.75), i.e. LocalResponseNorm(9, alpha 0.001, beta 0.75, k 1). PyTorch-style
// symmetric pooling padding (TensorFlow's "SAME" pads only after); shapes and counts are equal.
// Children: features, classifier (Sequentials, as the PyTorch reference).
class AlexNetSmall : public Module {
 public:
  AlexNetSmall(const Shape& in_chw, int64_t classes, Generator& g);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AlexNetSmall"; }
  std::shared_ptr<Sequential> features, classifier;
};

// What make_model throws when an architecture cannot take inputs of the given {C, H, W}: its
// pooling and strided layers would shrink them to nothing.
class InputShapeError : public Error {
 public:
  using Error::Error;
};

// arch: mlp, mlp-bn, mlp1x512, mlp3x512, smallcnn, vgg16, resnet18, resnet50, densenet40,
// inception-small, alexnet-small.
// in_chw is {C, H, W}. Throws naming the known architectures for an unknown one, and an
// InputShapeError for inputs too small for the architecture: the first time an architecture is
// built for a shape in a process, one image of zeros goes through it (eval mode, no autograd), so
// that a command fails before it claims its --out rather than at its first training step.
std::shared_ptr<Module> make_model(const std::string& arch, const Shape& in_chw, int64_t classes, Generator& g);
std::vector<std::string> model_names();

}  // namespace minima::nn
