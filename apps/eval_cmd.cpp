// apps/eval_cmd.cpp: `minima eval --weights W.safetensors --dataset D`: rebuilds the network
// described by the file's metadata (arch, input shape, classes), loads the weights (strictly), and
// prints the test loss and accuracy as JSON. Inputs are normalized with the constants stored in
// the file (the training set's), not recomputed, so a model trained on a subset is evaluated
// exactly as it was trained; a "normalize" metadata entry (dataset | per_image | none) selects
// the mode, default dataset.
#include <cmath>
#include <iostream>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/autocast.h"
#include "nn/checkpoint.h"
#include "nn/models.h"

namespace minima::app {
namespace {

int run_eval(cli::Args& a) {
  a.set_description("Evaluates a weights file on a dataset split; prints loss and accuracy as JSON.");
  std::string weights = a.get_string("weights", "", "safetensors file written by minima (required)");
  std::string dataset = a.get_string("dataset", "", "dataset name (default: the one in the file's metadata)");
  std::string dir = a.get_string("data-dir", "", "dataset directory (default: the dataset's standard place)");
  std::string split = a.get_string("split", "test", "test or train");
  int64_t batch = a.get_int("batch", 500, "evaluation batch size");
  std::string dev = a.get_string("device", "auto", "cpu, cuda, cuda:N or auto");
  data::LoadOptions load = load_flags(a);
  cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  nn::AutocastGuard precision(nn::precision_from_flag(
      a.get_string("precision", "fp32",
                   "fp32, or bf16: bfloat16 activations and weights, float32 master weights and BN statistics")));
  if (a.finish()) return 0;
  MINIMA_CHECK(!weights.empty(), "eval: --weights is required");
  MINIMA_CHECK(split == "test" || split == "train", "eval: --split must be test or train, got '", split, "'");
  Device device = device_from_flag(dev);

  nn::SafeTensors file = nn::load_safetensors(weights);
  nn::ModelInfo info;
  try {
    info = nn::ModelInfo::from_metadata(file.metadata);
  } catch (const Error& e) {
    throw Error(str("eval: ", weights, ": ", e.what()));
  }
  if (dataset.empty()) dataset = info.dataset;
  MINIMA_CHECK(!dataset.empty(), "eval: the file names no dataset; pass --dataset");
  check_load_flags(a, dataset);
  // Unless the flags say otherwise, the data is loaded as the network was trained on it: with the
  // labels and training split the file names, and Restricted ImageNet at the size of its input.
  if (!a.has("coarse-labels")) load.coarse_labels = info.coarse_labels;
  if (!a.has("merge-valid")) load.merge_valid = info.merge_valid;
  if (dataset == "restricted-imagenet" && !a.has("image-size")) load.image_size = info.in_chw[1];

  // The metadata's shapes are checked against the file and the data before the network is built
  // from them: a corrupt input shape or class count could otherwise ask for gigabytes.
  int64_t stored = 0;  // the model's values (a checkpoint also holds the optimizer's state)
  for (const auto& [name, t] : file.tensors)
    if (name.rfind(nn::kOptPrefix, 0) != 0) stored += t.numel();
  MINIMA_CHECK(info.classes <= stored, "eval: ", weights, " claims ", info.classes, " classes but stores only ", stored,
               " values");
  data::Splits splits = data::load_dataset(dataset, dir, load);
  data::Dataset ds = split == "test" ? splits.test : splits.train;
  MINIMA_CHECK(ds.channels() == info.in_chw[0] && ds.height() == info.in_chw[1] && ds.width() == info.in_chw[2],
               "eval: ", dataset, " images are ", ds.channels(), "x", ds.height(), "x", ds.width(), " but ", weights,
               " was trained on ", shape_str(info.in_chw));
  MINIMA_CHECK(ds.num_classes <= info.classes, "eval: ", dataset, " has ", ds.num_classes,
               " classes but the model outputs ", info.classes);

  // The size of the network for the claimed class count, from the same network with one and with
  // two classes (a network's size is affine in its class count), must be the file's, before it is
  // built.
  Generator g(0);  // the initial weights are overwritten by the file
  auto values_for = [&](int64_t classes) {
    int64_t n = 0;
    for (const auto& [name, t] : nn::make_model(info.arch, info.in_chw, classes, g)->state_dict()) n += t.numel();
    return n;
  };
  const int64_t one = values_for(1), per_class = values_for(2) - one;
  MINIMA_CHECK(one + (info.classes - 1) * per_class == stored, "eval: ", weights, " stores ", stored, " values, but a ",
               info.arch, " for ", shape_str(info.in_chw), " inputs with ", info.classes, " classes has ",
               one + (info.classes - 1) * per_class);
  auto model = nn::make_model(info.arch, info.in_chw, info.classes, g);
  try {
    nn::load_state_dict(*model, file.tensors, {nn::kOptPrefix});
  } catch (const Error& e) {
    throw Error(str("eval: '", weights, "' does not fit ", info.arch, ": ", e.what()));
  }
  model->to(device);
  model->eval();
  // The file's constants replace the split's own; a file without them uses the split's.
  if (!info.mean.empty() || !info.std.empty()) {
    MINIMA_CHECK(info.mean.size() == size_t(ds.channels()) && info.std.size() == size_t(ds.channels()),
                 "eval: ", weights, " has ", info.mean.size(), " mean and ", info.std.size(),
                 " std values in its metadata, ", "expected one per channel (", ds.channels(), ")");
    for (double sd : info.std)
      MINIMA_CHECK(sd > 0, "eval: ", weights, " has a normalization std of ", sd, " in its metadata, expected > 0");
    ds.mean = info.mean;  // finite: checked when the metadata was read
    ds.std = info.std;
  }
  data::Normalize norm = data::Normalize::dataset;
  if (const std::string* n = file.meta("normalize")) {
    if (*n == "per_image")
      norm = data::Normalize::per_image;
    else if (*n == "none")
      norm = data::Normalize::none;
    else
      MINIMA_CHECK(*n == "dataset", "eval: unknown normalize '", *n, "' in the metadata");
  }

  NoGradGuard ng;
  data::Loader loader(ds, batch, /*shuffle=*/false, 0, {}, /*drop_last=*/false, device, norm);
  loader.start_epoch(0);
  Tensor loss_sum = zeros({}, TensorOptions(DType::f64, device));
  Tensor correct = zeros({}, TensorOptions(DType::i64, device));
  int64_t seen = 0;
  Tensor x, y;
  while (loader.next(x, y)) {
    Tensor logits = (*model)(x).to(DType::f32);
    loss_sum.add_(mul(cross_entropy(logits, y).to(DType::f64), double(x.size(0))));
    correct.add_(sum(eq(argmax(logits, 1), y)));
    seen += x.size(0);
  }
  Json out = Json::object();
  out["weights"] = weights;
  out["arch"] = info.arch;
  out["dataset"] = dataset;
  out["split"] = split;
  out["samples"] = seen;
  const double loss = seen ? loss_sum.item() / double(seen) : 0.0;
  MINIMA_CHECK(std::isfinite(loss), "eval: the loss of ", weights, " is ", loss,
               ": its weights (or normalization constants) are not finite");
  out["loss"] = loss;
  out["accuracy"] = seen ? 100.0 * correct.item() / double(seen) : 0.0;
  std::cout << out.dump(2) << "\n";
  return 0;
}

cli::Register reg("eval", "evaluate a weights file: test loss and accuracy as JSON", run_eval);

}  // namespace
}  // namespace minima::app
