// apps/trainer.h: the supervised training and evaluation loops shared by `minima train`,
// `minima adversarial-init` and `minima randomization`. Running sums of loss and correct counts
// stay on the model's device and are read once per epoch, and the Loader's labels (checked when
// it is built) are trusted by the loss (TrustedTargetsGuard), so a GPU step does not wait for the
// host.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli.h"
#include "core/profiler.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/checkpoint.h"
#include "nn/module.h"
#include "optim/optim.h"

namespace minima::app {

struct EpochResult {
  double loss = 0, acc = 0;  // mean loss, accuracy in percent
  int64_t samples = 0;
  double seconds = 0;
};

// One pass of `opt` over the batches of `loader` (start_epoch(epoch) is called here) in train mode.
// `label` prefixes the progress line (empty: no progress line).
EpochResult train_epoch(nn::Module& model, optim::Optimizer& opt, data::Loader& loader, int64_t epoch,
                        const std::string& label = "", int64_t total_epochs = 0);

// Mean cross-entropy and accuracy over all of `ds` in eval mode, without recording a graph;
// `norm` is how the Loader normalizes the images (as in training).
EpochResult evaluate(nn::Module& model, const data::Dataset& ds, int64_t batch, Device device,
                     data::Normalize norm = data::Normalize::dataset);
// The same over every batch of `loader` (built without shuffling or augmentation). Loops that
// evaluate every epoch build their Loader once: on a GPU a Loader uploads its dataset.
EpochResult evaluate(nn::Module& model, data::Loader& loader);

// One full training step of a fresh `arch` (forward, cross-entropy, backward, SGD with momentum
// 0.9 and weight decay 5e-4) on a random batch already on `dev`, timed: the mean over `iters`
// steps after `warmup` untimed ones, with the device synchronized around the timed steps. Then,
// when `profile_steps` > 0, that many more steps under a ProfileSession (core/profiler.h).
struct StepTiming {
  double seconds = 0;               // a timed step
  std::vector<ProfileRow> profile;  // the profiled steps' backend entries (summed over them)
  double profiled_seconds = 0;      // a profiled step, synchronizations included
  double page_faults = 0;           // minor page faults of this process in a timed step (fresh host pages)
};
StepTiming time_training_step(const std::string& arch, const Shape& chw, int64_t classes, int64_t batch, Device dev,
                              int64_t warmup, int64_t iters, int64_t profile_steps = 0);

// Training on `n` samples in batches of `batch` makes a batch of one sample when batch == 1 or
// n % batch == 1, and batch norm cannot normalize one value per channel (PyTorch fails the same
// way). When that is the case and `arch` has such a layer, throws up front, naming `flags` (the
// flags that set n and the batch, e.g. "--subset and --batch"), instead of failing mid-epoch.
void check_one_sample_batches(const std::string& arch, const Shape& in_chw, int64_t classes, int64_t n, int64_t batch,
                              const std::string& flags);

// Throws "<what>: <name> holds values that are not finite" for the first of `tensors` that does.
// Weights read from a file are checked so: training from them would only fail an epoch later, as
// "diverged".
void check_finite(const nn::NamedTensors& tensors, const std::string& what);

// What a diverged SGD run should change, for its error message. Coupled weight decay alone
// multiplies the weights by (1 - lr wd) each step; with heavy-ball momentum m that is stable only
// while lr wd < 2 (1 + m), with Nesterov's while lr wd < 2 (1 + m) / (1 + 2 m). Past that bound no
// smaller step on the loss helps, so the hint names both flags; otherwise "try a smaller --lr".
std::string divergence_hint(double lr, double momentum, double weight_decay, bool nesterov);

// A run's checkpoint file and when to write it (--checkpoint-every): after an epoch that ends
// `every` seconds or more after the last save, or after the run's start (after every epoch when
// `every` is 0). Saving after every epoch wrote gigabytes for runs whose epochs take
// milliseconds. A killed run resumes from its checkpoint and trains the epochs since then again,
// to the same results.
class RunCheckpoint {
 public:
  RunCheckpoint(std::string path, double every)
      : path_(std::move(path)), every_(every), since_(std::chrono::steady_clock::now()) {}
  const std::string& path() const { return path_; }
  // --resume: when the file exists, loads it into the model, optimizer and train state, and checks
  // that its epoch lies in [0, last] of a run of `epochs` (set by `flag`): a later one would skip
  // the training loop and record a model that was never evaluated as finished. Its weights,
  // buffers and optimizer state must be finite (check_finite). False when there was no checkpoint.
  bool resume(nn::Module& m, optim::Optimizer& opt, nn::TrainState& st, int64_t last, int64_t epochs,
              const char* flag) const;
  bool due() const {
    return every_ <= 0 || std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count() >= every_;
  }
  // Writes the checkpoint (atomically, synced) and restarts the clock.
  void save(const nn::Module& m, const optim::Optimizer& opt, const nn::TrainState& st, const nn::ModelInfo& info);
  // The run is finished: its final files make the checkpoint redundant.
  void remove() const;

 private:
  std::string path_;
  double every_;
  std::chrono::steady_clock::time_point since_;
};

// --checkpoint-every (seconds, >= 0; default 60), shared by the commands that checkpoint.
double checkpoint_every_flag(cli::Args& a);

// --normalize auto|data|paper (train, adversarial-init): which normalization constants the inputs
// get (data::resolve_normalization). Returns the flag's value; apply it after loading with
// data::set_normalization.
std::string normalize_flag(cli::Args& a);

// The flags that shape a named dataset as it loads (data::LoadOptions), declared alike by every
// command that loads one: --image-size (restricted-imagenet), --coarse-labels (cifar100),
// --merge-valid (cinic10) and --cache-dir (the folder datasets). Image decoding uses `threads`
// host threads (the command's --threads; 0: all cores).
data::LoadOptions load_flags(cli::Args& a, int64_t threads = 0);
// After finish(): refuses each of those flags given for a dataset it does not apply to, where it
// would be ignored.
void check_load_flags(const cli::Args& a, const std::string& dataset);

// After a resume from a checkpoint of `rows` epochs: keeps the header and the first `rows` data
// rows of a metrics file (the epochs after the checkpoint are trained, and logged, again).
void truncate_metrics(const std::string& path, int64_t rows);

// --device: "cpu", "cuda", "cuda:N" or "auto" (cuda when a device is present).
Device device_from_flag(const std::string& s);

// --threads: 0 keeps OpenMP's default.
void set_threads(int64_t n);

}  // namespace minima::app
