// nn/models/registry.cpp: --arch names to constructors.
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "nn/models.h"

namespace minima::nn {

namespace {
using Factory = std::function<std::shared_ptr<Module>(const Shape&, int64_t, Generator&)>;

int64_t numel_chw(const Shape& in) {
  MINIMA_CHECK(in.size() == 3 && in[0] > 0 && in[1] > 0 && in[2] > 0, "model input shape must be {C, H, W}, got ",
               shape_str(in));
  return numel_of(in);  // checked: a product that wraps around would size the first layer wrongly
}

// Far beyond any data set (ImageNet-21k has 21841 classes); larger counts are typos and would
// otherwise ask for an output layer of petabytes.
constexpr int64_t kMaxClasses = int64_t(1) << 24;

const std::vector<std::pair<std::string, Factory>>& factories() {
  static const std::vector<std::pair<std::string, Factory>> f = {
      {"mlp",
       [](const Shape& in, int64_t k, Generator& g) {
         return std::make_shared<MLP>(numel_chw(in), std::vector<int64_t>{512, 512}, k, g);
       }},
      {"mlp-bn",
       [](const Shape& in, int64_t k, Generator& g) {
         return std::make_shared<MLP>(numel_chw(in), std::vector<int64_t>{512, 512}, k, g, true);
       }},
      {"mlp1x512", [](const Shape& in, int64_t k,
                      Generator& g) { return std::make_shared<MLP>(numel_chw(in), std::vector<int64_t>{512}, k, g); }},
      {"mlp3x512",
       [](const Shape& in, int64_t k, Generator& g) {
         return std::make_shared<MLP>(numel_chw(in), std::vector<int64_t>{512, 512, 512}, k, g);
       }},
      {"smallcnn", [](const Shape& in, int64_t k, Generator& g) { return std::make_shared<SmallCNN>(in, k, g); }},
      {"vgg16",
       [](const Shape& in, int64_t k, Generator& g) {
         const int64_t M = -1;
         std::vector<int64_t> cfg{64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
         return std::make_shared<VGG>(cfg, in, k, g);
       }},
      {"resnet18",
       [](const Shape& in, int64_t k, Generator& g) {
         return std::make_shared<ResNet>(ResNet::Block::Basic, std::vector<int64_t>{2, 2, 2, 2}, in, k, g);
       }},
      {"resnet50",
       [](const Shape& in, int64_t k, Generator& g) {
         return std::make_shared<ResNet>(ResNet::Block::Bottleneck, std::vector<int64_t>{3, 4, 6, 3}, in, k, g);
       }},
      {"densenet40",
       [](const Shape& in, int64_t k, Generator& g) { return std::make_shared<DenseNet>(40, 12, 0.5, in, k, g); }},
      {"inception-small",
       [](const Shape& in, int64_t k, Generator& g) { return std::make_shared<InceptionSmall>(in, k, g); }},
      {"alexnet-small",
       [](const Shape& in, int64_t k, Generator& g) { return std::make_shared<AlexNetSmall>(in, k, g); }},
  };
  return f;
}
// One image of zeros through a freshly built network, once per architecture and shape: pooling
// and strided layers that shrink the input to nothing fail here rather than at a first training
// step. Eval mode, so batch norm uses its (initial) running statistics and nothing changes.
void check_input_fits(Module& m, const std::string& arch, const Shape& in) {
  static std::mutex mu;
  static std::set<std::pair<std::string, Shape>> fits;
  const auto key = std::make_pair(arch, in);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (fits.count(key)) return;
  }
  NoGradGuard no_grad;
  m.eval();
  try {
    m.forward(zeros({1, in[0], in[1], in[2]}));
  } catch (const Error& e) {
    throw InputShapeError(str(arch, " cannot take inputs of shape ", shape_str(in), ": ", e.what()));
  }
  m.train();
  std::lock_guard<std::mutex> lock(mu);
  fits.insert(key);
}

}  // namespace

std::shared_ptr<Module> make_model(const std::string& arch, const Shape& in_chw, int64_t classes, Generator& g) {
  MINIMA_CHECK(classes > 0 && classes <= kMaxClasses, "make_model: class count must be in [1, ", kMaxClasses, "], got ",
               classes);
  numel_chw(in_chw);
  for (const auto& [name, make] : factories())
    if (name == arch) {
      std::shared_ptr<Module> m = make(in_chw, classes, g);
      check_input_fits(*m, arch, in_chw);
      return m;
    }
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(str("unknown architecture '", arch, "' (known: ", known, ")"));
}

std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const auto& f : factories()) out.push_back(f.first);
  return out;
}

}  // namespace minima::nn
