// nn/checkpoint.h: model weights and resumable training checkpoints as safetensors files.
//
// Weights: the tensors are exactly the model's state_dict (names equal the PyTorch reference
// models' keys, num_batches_tracked as I64), and __metadata__ describes how to rebuild and feed the
// model (ModelInfo: arch, input shape, classes, dataset, normalization mean/std, seed).
//
// Training checkpoint: the weights plus the optimizer state as tensors named
// "optimizer.<parameter name>.<slot>" (e.g. optimizer.layer1.0.conv1.weight.momentum_buffer,
// exp_avg, exp_avg_sq), and in __metadata__ "train_state": JSON with the epoch, the step, the
// optimizer type/step count/lr and the state of every named random generator (seed and offset, as
// decimal strings so 64-bit values survive). Loading it back into a freshly built model and
// optimizer restores everything a resumed run needs to continue bit-for-bit.
//
// PyTorch reads a checkpoint's weights by dropping the "optimizer." entries.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/random.h"
#include "nn/safetensors.h"
#include "optim/optim.h"

namespace minima::nn {

// The prefix of a checkpoint's optimizer-state tensors.
inline constexpr const char* kOptPrefix = "optimizer.";

struct ModelInfo {
  std::string arch;
  Shape in_chw;  // {C, H, W}
  int64_t classes = 0;
  std::string dataset;
  std::vector<double> mean, std;  // per-channel normalization of the inputs
  uint64_t seed = 0;
  bool coarse_labels = false;  // cifar100: trained on the 20 coarse labels (metadata "labels": "coarse")
  bool merge_valid = false;    // cinic10: trained on train/ and valid/ (metadata "train_split": "train+valid")
  Metadata to_metadata() const;
  // Throws naming the missing key when the file lacks the architecture fields.
  static ModelInfo from_metadata(const Metadata& m);
};

struct TrainState {
  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;   // optimizer steps taken
  // Named generators whose state (seed, offset) is saved, e.g. {"init", g}, {"dropout", d}.
  std::vector<std::pair<std::string, Generator>> rngs;
  Json extra = Json::object();  // anything else the training loop wants back (e.g. best accuracy)
  Generator* rng(const std::string& name);
};

void save_weights(const std::string& path, const Module& m, const ModelInfo& info, const Metadata& extra = {});
// Loads into an existing model (strict; "optimizer." entries are ignored); returns the metadata.
Metadata load_weights(const std::string& path, Module& m);

void save_checkpoint(const std::string& path, const Module& m, const optim::Optimizer& opt, const TrainState& st,
                     const ModelInfo& info, const Metadata& extra = {});
// Loads weights, optimizer state (the optimizer must be of the same type, built on m's parameters)
// and the train state. Generators present in `st.rngs` before the call get their saved state; the
// saved ones not listed are appended. Returns the metadata (use ModelInfo::from_metadata). When
// checksum_verified is given, it says whether the file carried a checksum (it held, or the load
// threw): files minima wrote before it saved checksums, or other tools wrote, load unchecked.
Metadata load_checkpoint(const std::string& path, Module& m, optim::Optimizer& opt, TrainState& st,
                         bool* checksum_verified = nullptr);

}  // namespace minima::nn
