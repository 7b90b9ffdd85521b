// apps/data_cmd.cpp: `minima data`: loads a dataset and prints what the experiments will see:
// counts per split, image shape, classes (with their counts) and the per-channel mean and std of
// the training images (the normalization constants).
#include <cstdio>
#include <iostream>

#include "apps/cli.h"
#include "apps/trainer.h"
#include "core/error.h"
#include "data/dataset.h"

using namespace minima;

namespace {

std::string join_values(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.4f", v[i]);
    s += (i ? ", " : "") + std::string(buf);
  }
  return s;
}

void print_split(const char* label, const data::Dataset& d) {
  std::vector<int64_t> counts(size_t(d.num_classes), 0);
  const int64_t* y = d.labels.data<int64_t>();
  for (int64_t i = 0; i < d.size(); ++i) counts[size_t(y[i])]++;
  int64_t lo = d.size(), hi = 0;
  for (int64_t c : counts) {
    lo = std::min(lo, c);
    hi = std::max(hi, c);
  }
  std::printf("  %-6s %7lld images  (per class: %lld..%lld)\n", label, (long long)d.size(), (long long)lo,
              (long long)hi);
}

int run(cli::Args& a) {
  a.set_description(
      "Load a dataset and print its splits, image shape, classes and the per-channel mean and std of the\n"
      "training images (pixel/255), i.e. the normalization constants the loaders use (on cifar10, train and\n"
      "adversarial-init use Liu et al.'s official constants unless --normalize data).\n"
      "Example: minima data --dataset fashion-mnist");
  std::string name = a.get_string("dataset", "fashion-mnist",
                                  "fashion-mnist | mnist | cifar10 | cifar100 | cinic10 | restricted-imagenet");
  std::string dir = a.get_string("data-dir", "", "dataset directory (default: the dataset's default location)");
  const int64_t threads = a.get_int("threads", 0, "decoding threads for folder datasets (0: all cores)");
  data::LoadOptions opt = app::load_flags(a, threads);
  if (a.finish()) return 0;
  MINIMA_CHECK(threads >= 0 && threads <= cli::kMaxThreads, "--threads must be in [0, ", cli::kMaxThreads, "], got ",
               threads);
  app::check_load_flags(a, name);
  MINIMA_CHECK(!a.has("threads") || name == "cinic10" || name == "restricted-imagenet",
               "--threads applies to the folder datasets (cinic10, restricted-imagenet) only, not to ", name);
  opt.verbose = true;
  std::string where = dir.empty() ? data::default_data_dir(name) : dir;
  data::Splits s = data::load_dataset(name, dir, opt);
  const data::Dataset& tr = s.train;
  std::printf("dataset %s (%s)\n", name.c_str(), where.c_str());
  print_split("train", tr);
  if (s.valid) print_split("valid", *s.valid);
  print_split("test", s.test);
  std::printf("  image shape %lld x %lld x %lld (C x H x W), %s\n", (long long)tr.channels(), (long long)tr.height(),
              (long long)tr.width(), tr.images.dtype() == DType::u8 ? "uint8" : "float32");
  std::printf("  %lld classes:", (long long)tr.num_classes);
  for (size_t i = 0; i < tr.class_names.size(); ++i) {
    if (i == 20) {
      std::printf(" ... (%zu more)", tr.class_names.size() - 20);
      break;
    }
    std::printf("%s %s", i ? "," : "", tr.class_names[i].c_str());
  }
  std::printf("\n  training mean (pixel/255): %s\n", join_values(tr.mean).c_str());
  std::printf("  training std  (pixel/255): %s\n", join_values(tr.std).c_str());
  if (name == "cifar10") {
    data::set_normalization(s, name, "paper");
    std::printf(
        "  train and adversarial-init normalize with Liu et al.'s official constants instead (--normalize\n"
        "  paper, their default on cifar10; --normalize data takes the two lines above):\n"
        "  mean %s, std %s\n",
        join_values(s.train.mean).c_str(), join_values(s.train.std).c_str());
  }
  return 0;
}

cli::Register reg("data", "load a dataset and print its splits, shape, classes and mean/std", run);

}  // namespace
