// data/dataset.cpp: dataset names, default directories, class names, channel statistics and the
// load_dataset dispatcher.
#include "data/dataset.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "data/io.h"

namespace minima::data {

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> n = {"fashion-mnist", "mnist",   "cifar10",
                                             "cifar100",      "cinic10", "restricted-imagenet"};
  return n;
}

std::string default_data_dir(const std::string& name) {
  if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  std::string root = "datasets";
  if (const char* e = std::getenv("MINIMA_DATA_DIR"); e && *e) root = e;
  return join_path(root, name);
}

Splits load_dataset(const std::string& name, const std::string& dir_in, const LoadOptions& opt) {
  std::string dir = dir_in.empty() ? default_data_dir(name) : dir_in;
  Splits s;
  if (name == "fashion-mnist" || name == "mnist") {
    s = load_idx_dataset(name, dir);
  } else if (name == "cifar10") {
    s = load_cifar10(dir);
  } else if (name == "cifar100") {
    s = load_cifar100(dir, opt.coarse_labels);
  } else if (name == "cinic10") {
    s = load_cinic10(dir, opt);
  } else if (name == "restricted-imagenet") {
    s = load_restricted_imagenet(dir, opt);
  } else {
    throw Error(str("unknown dataset '", name, "' (expected one of ", dataset_names(), ")"));
  }
  s.train.validate();
  s.test.validate();
  if (s.valid) s.valid->validate();
  return s;
}

void Dataset::validate() const {
  MINIMA_CHECK(images.defined() && labels.defined(), name, ": images or labels missing");
  MINIMA_CHECK(images.dim() == 4, name, ": images must be [N, C, H, W], found shape ", images.shape());
  MINIMA_CHECK(images.dtype() == DType::u8 || images.dtype() == DType::f32, name,
               ": images must be uint8 (or float32 for synthetic images), found ", images.dtype());
  MINIMA_CHECK(images.device().is_cpu() && images.is_contiguous(), name, ": images must be contiguous on the CPU");
  MINIMA_CHECK(labels.dtype() == DType::i64 && labels.dim() == 1 && labels.size(0) == images.size(0), name,
               ": labels must be int64 [", images.size(0), "], found ", labels.str());
  MINIMA_CHECK(labels.is_contiguous() && labels.device().is_cpu(), name, ": labels must be contiguous on the CPU");
  MINIMA_CHECK(num_classes > 0, name, ": num_classes is ", num_classes);
  MINIMA_CHECK(class_names.empty() || int64_t(class_names.size()) == num_classes, name, ": ", class_names.size(),
               " class names for ", num_classes, " classes");
  MINIMA_CHECK(int64_t(mean.size()) == channels() && int64_t(std.size()) == channels(), name,
               ": mean/std must have one value per channel (", channels(), "), found ", mean.size(), "/", std.size());
  for (double s : std) MINIMA_CHECK(s > 0 && std::isfinite(s), name, ": std ", std, " must be positive");
  const int64_t* y = labels.data<int64_t>();
  for (int64_t i = 0; i < size(); ++i)
    MINIMA_CHECK(y[i] >= 0 && y[i] < num_classes, name, ": label ", y[i], " of sample ", i, " outside 0..",
                 num_classes - 1);
}

std::string resolve_normalization(const std::string& dataset, const std::string& mode) {
  MINIMA_CHECK(mode == "auto" || mode == "data" || mode == "paper", "unknown normalization '", mode,
               "' (expected auto, data or paper)");
  MINIMA_CHECK(mode != "paper" || dataset == "cifar10",
               "--normalize paper: the official code's constants are "
               "CIFAR-10's; ",
               dataset, " has none (use data)");
  if (mode == "auto") return dataset == "cifar10" ? "paper" : "data";
  return mode;
}

void set_normalization(Splits& s, const std::string& dataset, const std::string& mode) {
  if (resolve_normalization(dataset, mode) == "data") return;
  MINIMA_CHECK(s.train.channels() == 3, "--normalize paper: expected 3 channels, ", s.train.name, " has ",
               s.train.channels());
  std::vector<Dataset*> splits = {&s.train, &s.test};
  if (s.valid) splits.push_back(&*s.valid);
  for (Dataset* d : splits) {
    d->mean = {0.4914, 0.4822, 0.4465};
    d->std = {0.2023, 0.1994, 0.2010};
  }
}

void channel_stats(const Tensor& images, std::vector<double>& mean, std::vector<double>& stdv) {
  MINIMA_CHECK(images.dim() == 4 && images.dtype() == DType::u8 && images.is_contiguous(),
               "channel_stats: expected contiguous uint8 [N, C, H, W], got ", images.str());
  const int64_t n = images.size(0), c = images.size(1), hw = images.size(2) * images.size(3);
  const uint8_t* p = images.data<uint8_t>();
  std::vector<uint64_t> s1(size_t(c), 0), s2(size_t(c), 0);
  for (int64_t ch = 0; ch < c; ++ch) {
    uint64_t a = 0, b = 0;
#pragma omp parallel for reduction(+ : a, b) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* q = p + (i * c + ch) * hw;
      uint64_t la = 0, lb = 0;
      for (int64_t k = 0; k < hw; ++k) {
        la += q[k];
        lb += uint32_t(q[k]) * q[k];
      }
      a += la;
      b += lb;
    }
    s1[size_t(ch)] = a;
    s2[size_t(ch)] = b;
  }
  mean.assign(size_t(c), 0.0);
  stdv.assign(size_t(c), 0.0);
  const double count = double(n) * double(hw);
  for (int64_t ch = 0; ch < c; ++ch) {
    double m = double(s1[size_t(ch)]) / count;  // in pixel units
    double var = double(s2[size_t(ch)]) / count - m * m;
    mean[size_t(ch)] = m / 255.0;
    stdv[size_t(ch)] = std::sqrt(std::max(var, 0.0)) / 255.0;
  }
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> v = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return v;
}

const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> v = {"airplane", "automobile", "bird",  "cat",  "deer",
                                             "dog",      "frog",       "horse", "ship", "truck"};
  return v;
}

const std::vector<std::string>& cifar100_fine_classes() {
  static const std::vector<std::string> v =
      {"apple",      "aquarium_fish", "baby",         "bear",       "beaver",      "bed",         "bee",
       "beetle",     "bicycle",       "bottle",       "bowl",       "boy",         "bridge",      "bus",
       "butterfly",  "camel",         "can",          "castle",     "caterpillar", "cattle",      "chair",
       "chimpanzee", "clock",         "cloud",        "cockroach",  "couch",       "crab",        "crocodile",
       "cup",        "dinosaur",      "dolphin",      "elephant",   "flatfish",    "forest",      "fox",
       "girl",       "hamster",       "house",        "kangaroo",   "keyboard",    "lamp",        "lawn_mower",
       "leopard",    "lion",          "lizard",       "lobster",    "man",         "maple_tree",  "motorcycle",
       "mountain",   "mouse",         "mushroom",     "oak_tree",   "orange",      "orchid",      "otter",
       "palm_tree",  "pear",          "pickup_truck", "pine_tree",  "plain",       "plate",       "poppy",
       "porcupine",  "possum",        "rabbit",       "raccoon",    "ray",         "road",        "rocket",
       "rose",       "sea",           "seal",         "shark",      "shrew",       "skunk",       "skyscraper",
       "snail",      "snake",         "spider",       "squirrel",   "streetcar",   "sunflower",   "sweet_pepper",
       "table",      "tank",          "telephone",    "television", "tiger",       "tractor",     "train",
       "trout",      "tulip",         "turtle",       "wardrobe",   "whale",       "willow_tree", "wolf",
       "woman",      "worm"};
  return v;
}

const std::vector<std::string>& cifar100_coarse_classes() {
  static const std::vector<std::string> v = {"aquatic_mammals",
                                             "fish",
                                             "flowers",
                                             "food_containers",
                                             "fruit_and_vegetables",
                                             "household_electrical_devices",
                                             "household_furniture",
                                             "insects",
                                             "large_carnivores",
                                             "large_man-made_outdoor_things",
                                             "large_natural_outdoor_scenes",
                                             "large_omnivores_and_herbivores",
                                             "medium_mammals",
                                             "non-insect_invertebrates",
                                             "people",
                                             "reptiles",
                                             "small_mammals",
                                             "trees",
                                             "vehicles_1",
                                             "vehicles_2"};
  return v;
}

const std::vector<std::string>& restricted_imagenet_classes() {
  static const std::vector<std::string> v = {"dog",     "cat",  "frog", "turtle", "bird",
                                             "primate", "fish", "crab", "insect"};
  return v;
}

}  // namespace minima::data
