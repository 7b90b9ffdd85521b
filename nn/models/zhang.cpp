// nn/models/zhang.cpp: the small Inception and small AlexNet of Zhang et al. (2017), the CIFAR-10
// networks of their randomization tests and Table 1 (see nn/models.h). Initialization is
// PyTorch's default for every conv and linear layer (the paper's TensorFlow code used others).
#include "nn/models.h"

namespace minima::nn {

InceptionSmall::InceptionSmall(const Shape& in, int64_t classes, Generator& g) {
  MINIMA_CHECK(in.size() == 3, "inception-small: input shape must be {C, H, W}, got ", shape_str(in));
  conv1 = register_module("conv1", std::make_shared<ConvBNReLU>(in[0], 96, 3, 1, g));
  blocks = register_module("blocks", std::make_shared<Sequential>());
  int64_t c = 96;
  auto inc = [&](int64_t a, int64_t b) {
    blocks->add(std::make_shared<Inception>(c, a, b, g));
    c = a + b;
  };
  auto down = [&](int64_t a) {
    blocks->add(std::make_shared<Downsample>(c, a, g));
    c += a;
  };
  inc(32, 32);
  inc(32, 48);
  down(80);
  inc(112, 48);
  inc(96, 64);
  inc(80, 80);
  inc(48, 96);
  down(96);
  inc(176, 160);
  inc(176, 160);
  linear = register_module("linear", std::make_shared<Linear>(c, classes, g));
}

Tensor InceptionSmall::forward(const Tensor& x) {
  Tensor out = (*blocks)((*conv1)(x));
  return (*linear)(mean(out, {2, 3}));
}

AlexNetSmall::AlexNetSmall(const Shape& in, int64_t classes, Generator& g) {
  MINIMA_CHECK(in.size() == 3, "alexnet-small: input shape must be {C, H, W}, got ", shape_str(in));
  Conv2dOptions same;
  same.padding = 2;
  features = register_module("features", std::make_shared<Sequential>());
  int64_t c = in[0], h = in[1], w = in[2];
  for (int b = 0; b < 2; ++b) {
    features->add(std::make_shared<Conv2d>(c, 64, 5, g, same));
    features->add(std::make_shared<ReLU>());
    features->add(std::make_shared<MaxPool2d>(3, 2, 1));
    features->add(std::make_shared<LocalResponseNorm>(9, 0.001, 0.75, 1.0));
    c = 64;
    h = (h - 1) / 2 + 1;  // (h + 2 - 3) / 2 + 1
    w = (w - 1) / 2 + 1;
  }
  classifier = register_module("classifier", std::make_shared<Sequential>());
  classifier->add(std::make_shared<Flatten>());
  classifier->add(std::make_shared<Linear>(c * h * w, 384, g));
  classifier->add(std::make_shared<ReLU>());
  classifier->add(std::make_shared<Linear>(384, 192, g));
  classifier->add(std::make_shared<ReLU>());
  classifier->add(std::make_shared<Linear>(192, classes, g));
}

Tensor AlexNetSmall::forward(const Tensor& x) { return (*classifier)((*features)(x)); }

}  // namespace minima::nn
