// nn/models/mlp.cpp: the fully connected networks (mlp, Zhang et al.'s mlp1x512/mlp3x512) and
// smallcnn, the CPU-friendly conv net of the default experiment (see nn/models.h for its design).
#include "nn/models.h"

namespace minima::nn {

MLP::MLP(int64_t in, const std::vector<int64_t>& hidden, int64_t classes, Generator& g, bool batch_norm)
    : in_features(in) {
  layers = register_module("layers", std::make_shared<Sequential>());
  int64_t prev = in;
  for (int64_t h : hidden) {
    layers->add(std::make_shared<Linear>(prev, h, g));
    if (batch_norm) layers->add(std::make_shared<BatchNorm1d>(h));
    layers->add(std::make_shared<ReLU>());
    prev = h;
  }
  layers->add(std::make_shared<Linear>(prev, classes, g));
}

Tensor MLP::forward(const Tensor& x) {
  MINIMA_CHECK(x.dim() >= 2 && x.numel() / x.size(0) == in_features, "MLP: expected [N, ...] with ", in_features,
               " features per sample, got ", shape_str(x.shape()));
  return (*layers)(x.flatten(1));
}

SmallCNN::SmallCNN(const Shape& in, int64_t classes, Generator& g) {
  MINIMA_CHECK(in.size() == 3, "smallcnn: input shape must be {C, H, W}, got ", shape_str(in));
  Conv2dOptions same;
  same.padding = 1;
  features = register_module("features", std::make_shared<Sequential>());
  features->add(std::make_shared<Conv2d>(in[0], 32, 3, g, same));
  features->add(std::make_shared<BatchNorm2d>(32));
  features->add(std::make_shared<ReLU>());
  features->add(std::make_shared<MaxPool2d>(2));
  features->add(std::make_shared<Conv2d>(32, 64, 3, g, same));
  features->add(std::make_shared<BatchNorm2d>(64));
  features->add(std::make_shared<ReLU>());
  features->add(std::make_shared<MaxPool2d>(2));
  int64_t h = in[1] / 2 / 2, w = in[2] / 2 / 2;
  if (h <= 0 || w <= 0)
    throw InputShapeError(str("smallcnn: input ", shape_str(in), " is too small (needs H, W >= 4)"));
  classifier = register_module("classifier", std::make_shared<Sequential>());
  classifier->add(std::make_shared<Flatten>());
  classifier->add(std::make_shared<Linear>(64 * h * w, 256, g));
  classifier->add(std::make_shared<ReLU>());
  classifier->add(std::make_shared<Linear>(256, classes, g));
}

Tensor SmallCNN::forward(const Tensor& x) { return (*classifier)((*features)(x)); }

}  // namespace minima::nn
