// nn/models/vgg.cpp: the CIFAR VGG with batch norm after every conv.
#include "nn/models.h"

namespace minima::nn {

VGG::VGG(const std::vector<int64_t>& cfg, const Shape& in, int64_t classes, Generator& g) {
  MINIMA_CHECK(in.size() == 3, "vgg: input shape must be {C, H, W}, got ", shape_str(in));
  features = register_module("features", std::make_shared<Sequential>());
  int64_t c = in[0], h = in[1], w = in[2];
  Conv2dOptions same;
  same.padding = 1;  // bias stays on, as in the reference
  for (int64_t v : cfg) {
    if (v < 0) {
      if (h >= 2 && w >= 2) {
        features->add(std::make_shared<MaxPool2d>(2));
        h /= 2;
        w /= 2;
      } else {
        features->add(std::make_shared<Identity>());  // input already 1 pixel wide: nothing to pool
      }
    } else {
      features->add(std::make_shared<Conv2d>(c, v, 3, g, same));
      features->add(std::make_shared<BatchNorm2d>(v));
      features->add(std::make_shared<ReLU>());
      c = v;
    }
  }
  features->add(std::make_shared<AvgPool2d>(1, 1));
  classifier = register_module("classifier", std::make_shared<Linear>(c * h * w, classes, g));
}

Tensor VGG::forward(const Tensor& x) { return (*classifier)((*features)(x).flatten(1)); }

}  // namespace minima::nn
