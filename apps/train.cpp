// apps/train.cpp: `minima train`: supervised training of one network on one dataset with SGD,
// a learning-rate schedule and optional crop+flip augmentation; evaluates on the test split
// after every epoch. This is the first-light run (MLP on Fashion-MNIST) and the plain-training
// building block of the experiments. It can start from saved weights (--init, e.g. the weights
// phase 1 of adversarial-init saved), writes final.safetensors for `minima eval`, and saves a
// checkpoint on a clock (--checkpoint-every) so that --resume continues a killed run to the same
// results.
#include <cmath>
#include <iostream>

#include "apps/cli.h"
#include "apps/cuda_flags.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/autocast.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "optim/schedule.h"

namespace minima::app {
namespace {

int run_train(cli::Args& a) {
  a.set_description(
      "Train a network with SGD on a dataset and evaluate it on the test split after each epoch.\n"
      "example: minima train --arch mlp --dataset fashion-mnist --epochs 5 --out runs/mlp");
  std::string arch = a.get_string(
      "arch", "mlp", "network: " + [] {
        std::string s;
        for (const auto& n : nn::model_names()) s += (s.empty() ? "" : ", ") + n;
        return s;
      }());
  std::string dataset = a.get_string("dataset", "fashion-mnist", "dataset name");
  std::string data_dir = a.get_string("data-dir", "", "dataset directory (default: the dataset's usual place)");
  std::string normalize = normalize_flag(a);
  int64_t epochs = a.get_int("epochs", 5, "training epochs");
  int64_t batch = a.get_int("batch", 128, "mini-batch size");
  double lr = a.get_double("lr", 0.1, "learning rate");
  double momentum = a.get_double("momentum", 0.0, "SGD momentum");
  double wd = a.get_double("weight-decay", 0.0, "L2 weight decay (coupled, as torch.optim.SGD)");
  bool nesterov = a.get_flag("nesterov", "Nesterov momentum");
  std::string schedule = a.get_string("schedule", "constant", "lr schedule: constant, multistep, exponential, cosine");
  bool augment = a.get_flag("augment", "random crop (zero padding 4) and horizontal flip");
  int64_t subset = a.get_int("subset", 0, "train on the first N training images (0: all)");
  int64_t seed = a.get_int("seed", 0, "seed for initialization, data order and augmentation");
  std::string init =
      a.get_string("init", "",
                   "start from these weights (a .safetensors of the same network, e.g. "
                   "final.safetensors or phase 1's adversarial_init.safetensors) instead of a random init");
  std::string device_s = a.get_string("device", "cpu", "cpu, cuda, cuda:N or auto");
  cli::apply_cuda_flags(a);  // --gemm, --conv, --tf32, --deterministic
  nn::AutocastGuard precision(nn::precision_from_flag(
      a.get_string("precision", "fp32",
                   "fp32, or bf16: bfloat16 activations and weights, float32 master weights and BN statistics")));
  int64_t threads =
      a.get_int("threads", 0,
                "CPU threads for compute and for decoding image folders (0: OpenMP default; all cores to decode)");
  data::LoadOptions load = load_flags(a, threads);
  std::string out = a.get_string("out", "runs/train", "output directory");
  bool resume = a.get_flag("resume", "continue the run in --out from its checkpoint (same flags)");
  double checkpoint_every = checkpoint_every_flag(a);
  int64_t halt_after = a.get_int("halt-after", 0, "stop after N epochs, as if killed (to try --resume)");
  if (a.finish()) return 0;

  MINIMA_CHECK(epochs >= 1, "--epochs must be at least 1, got ", epochs);
  MINIMA_CHECK(batch >= 1, "--batch must be at least 1, got ", batch);
  MINIMA_CHECK(lr > 0, "--lr must be positive, got ", lr);
  MINIMA_CHECK(subset >= 0, "--subset must be >= 0, got ", subset);
  MINIMA_CHECK(halt_after >= 0, "--halt-after must be >= 0, got ", halt_after);
  check_load_flags(a, dataset);
  normalize = data::resolve_normalization(dataset, normalize);  // "data" or "paper" from here on
  set_threads(threads);
  Device device = device_from_flag(device_s);

  data::Splits splits = data::load_dataset(dataset, data_dir, load);
  data::set_normalization(splits, dataset, normalize);
  data::Dataset train = splits.train;
  if (subset > 0) {
    MINIMA_CHECK(subset <= train.size(), "--subset ", subset, " is larger than the ", train.size(),
                 " training images of ", dataset);
    train.images = train.images.narrow(0, 0, subset).contiguous();
    train.labels = train.labels.narrow(0, 0, subset).contiguous();
  }
  Shape in_chw = {train.channels(), train.height(), train.width()};
  Generator g(static_cast<uint64_t>(seed));
  auto model = nn::make_model(arch, in_chw, train.num_classes, g);
  check_one_sample_batches(arch, in_chw, train.num_classes, train.size(), batch, "--subset or --batch");
  if (!init.empty()) {
    nn::load_weights(init, *model);
    check_finite(model->named_parameters(), "--init " + init);
  }
  model->to(device);
  optim::SGD opt(model->parameters(), {lr, momentum, 0.0, wd, nesterov});
  auto sched = optim::make_schedule(schedule, lr, epochs);
  data::Loader loader(train, batch, /*shuffle=*/true, uint64_t(seed), data::Augment{augment, 4, augment},
                      /*drop_last=*/false, device);
  data::Loader test_loader(splits.test, 1000, /*shuffle=*/false, 0, data::Augment{}, /*drop_last=*/false, device);

  cli::RunDir dir(out, /*resumable=*/true);
  MINIMA_CHECK(resume || !cli::file_exists(dir.file("config.json")), out,
               " already holds a run (its config.json); pass --resume to continue it or choose another --out");
  if (resume) {
    dir.check_resume_flags(a, {"out", "resume", "threads", "checkpoint-every", "halt-after", "data-dir", "cache-dir",
                               "device", "gemm", "conv", "bn", "tf32", "deterministic"});
    if (cli::file_exists(dir.file("summary.json")) && cli::file_exists(dir.file("final.safetensors"))) {
      std::printf("%s: finished earlier (summary.json, final.safetensors); nothing to do\n", out.c_str());
      return 0;
    }
  }
  nn::ModelInfo info{arch, in_chw, train.num_classes, dataset, train.mean, train.std, uint64_t(seed)};
  info.coarse_labels = load.coarse_labels;
  info.merge_valid = load.merge_valid;
  nn::TrainState st;
  RunCheckpoint ckpt(dir.file("checkpoint.safetensors"), checkpoint_every);
  if (resume && ckpt.resume(*model, opt, st, epochs - 1, epochs, "--epochs"))  // the last epoch saves none
    std::printf("resuming after epoch %lld\n", (long long)st.epoch);
  truncate_metrics(dir.file("metrics.csv"), st.epoch);
  Json extra = Json::object();
  extra["parameters"] = model->num_parameters();
  extra["train_images"] = train.size();
  extra["test_images"] = splits.test.size();
  extra["device"] = device.str();
  extra["schedule"] = sched->describe();
  extra["normalization"] = normalize;
  extra["input_mean"] = Json(train.mean);
  extra["input_std"] = Json(train.std);
  dir.write_config(a, extra);
  cli::MetricsCsv csv(dir.file("metrics.csv"),
                      {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}, st.epoch > 0);

  std::printf("%s on %s: %lld train / %lld test images, %lld parameters, %s\n", arch.c_str(), dataset.c_str(),
              (long long)train.size(), (long long)splits.test.size(), (long long)model->num_parameters(),
              device.str().c_str());
  EpochResult tr, te;
  double total_s = 0;
  cli::Progress prog("epoch", epochs);
  const int64_t start = st.epoch;
  for (int64_t e = start; e < epochs; ++e) {
    opt.set_lr(sched->lr_at(e));
    tr = train_epoch(*model, opt, loader, e, "train", epochs);
    te = evaluate(*model, test_loader);
    total_s += tr.seconds + te.seconds;
    // The training loss is summed over the epoch's batches before each update; the test loss is
    // measured after the last one, and is not finite when that update left the weights so.
    MINIMA_CHECK(std::isfinite(tr.loss) && std::isfinite(te.loss), "training diverged at epoch ", e + 1,
                 " (training loss ", tr.loss, ", test loss ", te.loss, "); ",
                 divergence_hint(opt.lr(), momentum, wd, nesterov));
    csv.row({double(e + 1), opt.lr(), tr.loss, tr.acc, te.loss, te.acc, tr.seconds + te.seconds});
    prog.update(e + 1,
                "| loss " + cli::fmt(tr.loss, 4) + " acc " + cli::fmt(tr.acc, 4) + "% | test loss " +
                    cli::fmt(te.loss, 4) + " acc " + cli::fmt(te.acc, 4) + "%",
                double(tr.samples) / tr.seconds, true);
    st.epoch = e + 1;
    if (e + 1 < epochs && ckpt.due()) ckpt.save(*model, opt, st, info);
    if (halt_after > 0 && e + 1 - start == halt_after)
      throw Error(str("stopped after ", halt_after, " epochs as --halt-after asked; rerun with --resume"));
  }
  nn::save_weights(dir.file("final.safetensors"), *model, info);
  ckpt.remove();
  Json s = Json::object();
  s["arch"] = arch;
  s["dataset"] = dataset;
  s["epochs"] = epochs;
  s["init"] = init.empty() ? Json() : Json(init);
  s["train_loss"] = tr.loss;
  s["train_acc"] = tr.acc;
  s["test_loss"] = te.loss;
  s["test_acc"] = te.acc;
  s["seconds"] = total_s;
  s["train_images_per_second"] = double(tr.samples) / tr.seconds;
  dir.write_summary(s);
  std::printf("final: train acc %.2f%%, test acc %.2f%% (%s) -> %s\n", tr.acc, te.acc,
              cli::format_duration(total_s).c_str(), dir.path().c_str());
  return 0;
}

cli::Register reg("train", "train a network with SGD on a dataset (first light: MLP on Fashion-MNIST)", run_train);

}  // namespace
}  // namespace minima::app
