// data/dataset.h: an in-memory image classification dataset and the loaders that fill one.
// Every dataset is held as raw uint8 pixels [N, C, H, W] plus int64 labels, so the experiments'
// transforms (data/transforms.h) work on the exact values the papers' code works on, and
// normalization happens per batch in the Loader (data/loader.h). The normalization constants are
// the per-channel mean and std of the *training* images in pixel/255 units, attached to both splits.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace minima::data {

struct Dataset {
  std::string name;  // e.g. "fashion-mnist/train"
  Tensor images;     // uint8 [N, C, H, W], CPU, contiguous (raw pixels 0..255);
                     // float32 (pixel/255 units) only for synthetic Gaussian images
  Tensor labels;     // int64 [N], CPU
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> mean, std;  // per channel, of the TRAINING images as pixel/255

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  int64_t sample_numel() const { return channels() * height() * width(); }
  // Throws when shapes, dtypes, label range or the normalization constants are inconsistent.
  void validate() const;
};

struct Splits {
  Dataset train, test;
  std::optional<Dataset> valid;  // cinic10's valid/ split (unless merged into train)
};

struct LoadOptions {
  int64_t image_size = 64;     // restricted-imagenet: side of the (square) resized images
  bool coarse_labels = false;  // cifar100: the 20 superclasses instead of the 100 fine classes
  bool merge_valid = false;    // cinic10: append valid/ to train (CINIC-10 authors' option)
  int threads = 0;             // folder datasets: decoding threads (0: all cores)
  std::string cache_dir;       // folder datasets: where caches go ("" : next to the data, or
                               // $XDG_CACHE_HOME/minima (~/.cache/minima) when read-only)
  bool verbose = false;        // print progress of slow steps (folder decoding) to stderr
};

// Names load_dataset accepts, in a stable order.
const std::vector<std::string>& dataset_names();
// Directory used when `dir` is empty: the Debian package's directory for Fashion-MNIST, and
// $MINIMA_DATA_DIR/<name> (default ./datasets/<name>) for the others.
std::string default_data_dir(const std::string& name);

// name: fashion-mnist | mnist | cifar10 | cifar100 | cinic10 | restricted-imagenet.
Splits load_dataset(const std::string& name, const std::string& dir, const LoadOptions& opt = {});

// The individual loaders (load_dataset dispatches to them; `dir` is never empty here).
Splits load_idx_dataset(const std::string& name, const std::string& dir);  // mnist, fashion-mnist
Splits load_cifar10(const std::string& dir);
Splits load_cifar100(const std::string& dir, bool coarse_labels);
Splits load_cinic10(const std::string& dir, const LoadOptions& opt);
Splits load_restricted_imagenet(const std::string& dir, const LoadOptions& opt);

// The normalization constants the Loader uses (--normalize). "data": those the loader computed from
// the training images. "paper": Liu et al.'s official code's CIFAR-10 constants, mean (0.4914,
// 0.4822, 0.4465) and std (0.2023, 0.1994, 0.2010), whose std is not the std over all pixels;
// cifar10 only. "auto": "paper" on cifar10, "data" elsewhere. resolve_normalization checks the pair
// and returns "data" or "paper" (call it before loading, to fail early); set_normalization applies
// it to every split.
std::string resolve_normalization(const std::string& dataset, const std::string& mode);
void set_normalization(Splits& s, const std::string& dataset, const std::string& mode);

// Per-channel mean and (population) std of uint8 images [N, C, H, W] in pixel/255 units.
// Sums are exact integers, so the result does not depend on threading.
void channel_stats(const Tensor& images, std::vector<double>& mean, std::vector<double>& std);

// Class names of the built-in datasets.
const std::vector<std::string>& fashion_mnist_classes();
const std::vector<std::string>& cifar10_classes();
const std::vector<std::string>& cifar100_fine_classes();
const std::vector<std::string>& cifar100_coarse_classes();
const std::vector<std::string>& restricted_imagenet_classes();

}  // namespace minima::data
