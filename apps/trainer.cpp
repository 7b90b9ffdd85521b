// apps/trainer.cpp: train_epoch / evaluate (see trainer.h).
#include "apps/trainer.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "core/backend.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/models.h"

namespace minima::app {

namespace {
// A Loader's labels were checked against its dataset's class count when it was built; once the
// network's logits are seen to have at least that many classes, the loss need not check them
// again (on CUDA that check waits for every forward pass; see TrustedTargetsGuard).
void trust_loader_labels(std::optional<TrustedTargetsGuard>& trusted, const data::Loader& loader,
                         const Tensor& logits) {
  if (!trusted && logits.dim() == 2 && logits.size(1) >= loader.dataset().num_classes) trusted.emplace();
}
}  // namespace

EpochResult train_epoch(nn::Module& model, optim::Optimizer& opt, data::Loader& loader, int64_t epoch,
                        const std::string& label, int64_t total_epochs) {
  auto t0 = std::chrono::steady_clock::now();
  model.train();
  loader.start_epoch(epoch);
  Device dev = loader.device();
  Tensor loss_sum = zeros({}, TensorOptions(DType::f32, dev));
  Tensor correct = zeros({}, TensorOptions(DType::i64, dev));
  int64_t seen = 0, step = 0, steps = loader.batches_per_epoch();
  std::unique_ptr<cli::Progress> prog;
  if (!label.empty())
    prog = std::make_unique<cli::Progress>(label + " epoch " + std::to_string(epoch + 1) +
                                               (total_epochs ? "/" + std::to_string(total_epochs) : ""),
                                           steps);
  std::optional<TrustedTargetsGuard> trusted;
  Tensor x, y;
  while (loader.next(x, y)) {
    opt.zero_grad();
    Tensor logits = model(x).to(DType::f32);  // under autocast the network ends in bf16: the loss is f32
    trust_loader_labels(trusted, loader, logits);
    Tensor loss = cross_entropy(logits, y);
    loss.backward();
    opt.step();
    {
      NoGradGuard ng;
      int64_t B = x.size(0);
      loss_sum.add_(mul(loss.detach().to(DType::f32), double(B)));
      correct.add_(sum(eq(argmax(logits.detach(), 1), y)));
      seen += B;
    }
    ++step;
    if (prog) {
      double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      prog->update(step, "", double(seen) / std::max(el, 1e-9));
    }
  }
  EpochResult r;
  r.samples = seen;
  r.loss = seen ? loss_sum.item() / double(seen) : 0;
  r.acc = seen ? 100.0 * correct.item() / double(seen) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

EpochResult evaluate(nn::Module& model, const data::Dataset& ds, int64_t batch, Device device, data::Normalize norm) {
  data::Loader loader(ds, batch, /*shuffle=*/false, 0, {}, /*drop_last=*/false, device, norm);
  return evaluate(model, loader);
}

EpochResult evaluate(nn::Module& model, data::Loader& loader) {
  auto t0 = std::chrono::steady_clock::now();
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  loader.start_epoch(0);
  Device device = loader.device();
  Tensor loss_sum = zeros({}, TensorOptions(DType::f64, device));
  Tensor correct = zeros({}, TensorOptions(DType::i64, device));
  int64_t seen = 0;
  std::optional<TrustedTargetsGuard> trusted;
  Tensor x, y;
  while (loader.next(x, y)) {
    Tensor logits = model(x).to(DType::f32);
    trust_loader_labels(trusted, loader, logits);
    int64_t B = x.size(0);
    loss_sum.add_(mul(cross_entropy(logits, y).to(DType::f64), double(B)));
    correct.add_(sum(eq(argmax(logits, 1), y)));
    seen += B;
  }
  model.train(was_training);
  EpochResult r;
  r.samples = seen;
  r.loss = seen ? loss_sum.item() / double(seen) : 0;
  r.acc = seen ? 100.0 * correct.item() / double(seen) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void check_one_sample_batches(const std::string& arch, const Shape& in_chw, int64_t classes, int64_t n, int64_t batch,
                              const std::string& flags) {
  if (n % batch != 1 && batch != 1) return;
  // Whether a one-sample batch trains is found by trying it on a throwaway model: convolutional
  // batch norms see H x W values per channel and may well be fine.
  Generator g(0);
  auto model = nn::make_model(arch, in_chw, classes, g);
  model->train();
  NoGradGuard ng;
  Shape one = in_chw;
  one.insert(one.begin(), 1);
  try {
    (*model)(zeros(one));
  } catch (const Error& e) {
    if (std::string(e.what()).find("batch_norm") == std::string::npos) throw;
    throw Error(str(n, " training samples in batches of ", batch, " make a batch of one sample, on which ", arch,
                    "'s batch norm cannot train; change ", flags,
                    " (the batch must be at least 2 and the sample "
                    "count not 1 more than a multiple of it)"));
  }
}

Device device_from_flag(const std::string& s) {
  if (s == "auto") return cuda_available() ? Device::cuda(0) : Device::cpu();
  Device d = Device::parse(s);
  if (d.is_cuda()) {
    // A directive inside a macro's arguments is undefined behaviour, so the reason is chosen here.
#ifdef MINIMA_HAS_CUDA
    const char* why = " (this build has CUDA, but the machine has no GPU or driver)";
#else
    const char* why = " (this minima was built without CUDA)";
#endif
    MINIMA_CHECK(cuda_available(), "--device ", s, ": no CUDA device is available", why);
    MINIMA_CHECK(d.index < cuda_device_count(), "--device ", s, ": only ", cuda_device_count(), " CUDA devices");
  }
  return d;
}

void set_threads(int64_t n) {
  MINIMA_CHECK(n >= 0 && n <= cli::kMaxThreads, "--threads must be in [0, ", cli::kMaxThreads, "], got ", n);
  if (n > 0) omp_set_num_threads(int(n));
}

// This process's minor page faults so far: each one a fresh page that the kernel mapped in.
static int64_t minor_page_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_minflt);
}

StepTiming time_training_step(const std::string& arch, const Shape& chw, int64_t classes, int64_t batch, Device dev,
                              int64_t warmup, int64_t iters, int64_t profile_steps) {
  Generator g(0);
  auto model = nn::make_model(arch, chw, classes, g);
  model->to(dev);
  model->train();
  optim::SGDOptions o;
  o.lr = 0.01;
  o.momentum = 0.9;
  o.weight_decay = 5e-4;
  optim::SGD opt(model->parameters(), o);
  Shape xs = chw;
  xs.insert(xs.begin(), batch);
  Tensor x = randn(xs, g, TensorOptions(DType::f32, dev));
  Tensor y = randint({batch}, classes, g, TensorOptions(DType::i64, dev));
  TrustedTargetsGuard trusted;  // y is drawn in range, as a Loader's labels are checked: no read-back
  auto step = [&] {
    opt.zero_grad();
    cross_entropy((*model)(x).to(DType::f32), y).backward();
    opt.step();
  };
  // Mean seconds of n steps, the device synchronized before and after.
  auto run = [&](int64_t n) {
    backend_for(dev).synchronize();
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; ++i) step();
    backend_for(dev).synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(n);
  };
  for (int64_t i = 0; i < warmup; ++i) step();
  StepTiming t;
  const int64_t faults = minor_page_faults();
  t.seconds = run(iters);
  t.page_faults = double(minor_page_faults() - faults) / double(iters);
  if (profile_steps > 0) {
    ProfileSession session;
    t.profiled_seconds = run(profile_steps);
    t.profile = session.rows();
  }
  return t;
}

void truncate_metrics(const std::string& path, int64_t rows) {
  if (!cli::file_exists(path)) return;
  std::stringstream ss(read_file(path));
  std::string line, out;
  int64_t n = -1;  // the header is row -1
  while (n < rows && std::getline(ss, line)) {
    out += line + "\n";
    ++n;
  }
  write_file_atomic(path, out);
}

std::string divergence_hint(double lr, double momentum, double weight_decay, bool nesterov) {
  const double bound = nesterov ? 2 * (1 + momentum) / (1 + 2 * momentum) : 2 * (1 + momentum);
  if (weight_decay > 0 && lr * weight_decay >= bound)
    return str("--lr x --weight-decay is ", lr * weight_decay, ", at least the ", bound,
               " past which the weight decay alone makes the weights grow (momentum ", momentum,
               nesterov ? ", Nesterov" : "", "); lower either");
  return "try a smaller --lr";
}

void check_finite(const nn::NamedTensors& tensors, const std::string& what) {
  for (const auto& [name, t] : tensors) {
    const Tensor v = t.cpu().to(DType::f64).contiguous();
    const double* p = v.data<double>();
    MINIMA_CHECK(std::all_of(p, p + v.numel(), [](double x) { return std::isfinite(x); }), what, ": ", name,
                 " holds values that are not finite");
  }
}

bool RunCheckpoint::resume(nn::Module& m, optim::Optimizer& opt, nn::TrainState& st, int64_t last, int64_t epochs,
                           const char* flag) const {
  if (!cli::file_exists(path_)) return false;
  bool verified = false;
  try {
    nn::load_checkpoint(path_, m, opt, st, &verified);
  } catch (const nn::ChecksumError& e) {  // damaged on the disk: the run can only start again
    throw Error(str("--resume: ", e.what(), "; remove the checkpoint to train that run from its start"));
  }
  // Every checkpoint minima writes carries a checksum; one without came from an older minima or
  // was edited by hand. It is resumed (the finiteness check below still runs), but not silently.
  if (!verified)
    std::fprintf(stderr,
                 "warning: --resume: %s carries no checksum (written by an older minima, or edited); "
                 "its bytes cannot be checked against damage on the disk\n",
                 path_.c_str());
  nn::NamedTensors loaded = m.state_dict();
  for (const auto& e : opt.state())
    loaded.emplace_back(str("the optimizer's ", e.slot, " of parameter ", e.param), e.tensor);
  try {
    check_finite(loaded, "--resume: " + path_);
  } catch (const Error& e) {
    throw Error(str(e.what(), "; remove the checkpoint to train that run from its start"));
  }
  MINIMA_CHECK(st.epoch >= 0 && st.epoch <= last, "--resume: ", path_, " was saved after epoch ", st.epoch,
               ", which does not fit a run of ", flag, " ", epochs, " (expected 0 to ", last,
               "); resume with the flags the run started with");
  return true;
}

void RunCheckpoint::save(const nn::Module& m, const optim::Optimizer& opt, const nn::TrainState& st,
                         const nn::ModelInfo& info) {
  // The runs count their steps in the optimizer; the file's train_state says so too (it read 0).
  nn::TrainState at = st;
  at.step = opt.steps();
  nn::save_checkpoint(path_, m, opt, at, info);
  since_ = std::chrono::steady_clock::now();
}

double checkpoint_every_flag(cli::Args& a) {
  const double s = a.get_double("checkpoint-every", 60,
                                "save a run's checkpoint after an epoch that ends this many seconds after its last one "
                                "(0: every epoch); a killed run loses at most about this much training");
  MINIMA_CHECK(s >= 0, "--checkpoint-every must be >= 0 seconds, got ", s);
  return s;
}

std::string normalize_flag(cli::Args& a) {
  return a.get_string("normalize", "auto",
                      "input normalization constants: data (the training images' per-channel mean and std), "
                      "paper (Liu et al.'s official CIFAR-10 constants, std 0.2023, 0.1994, 0.2010) or auto "
                      "(paper on cifar10, data elsewhere)");
}

data::LoadOptions load_flags(cli::Args& a, int64_t threads) {
  data::LoadOptions o;
  o.image_size = a.get_int("image-size", 64, "restricted-imagenet: side of the resized images");
  o.coarse_labels = a.get_flag("coarse-labels", "cifar100: use the 20 coarse labels");
  o.merge_valid = a.get_flag("merge-valid", "cinic10: append valid/ to the training split");
  o.cache_dir = a.get_string("cache-dir", "",
                             "where folder datasets keep their caches (default: next to the data, or the user cache "
                             "directory)");
  o.threads = int(std::clamp<int64_t>(threads, 0, cli::kMaxThreads));
  return o;
}

void check_load_flags(const cli::Args& a, const std::string& dataset) {
  auto only_for = [&](const char* flag, bool applies, const char* which) {
    MINIMA_CHECK(!a.has(flag) || applies, "--", flag, " applies to ", which, " only, not to ", dataset);
  };
  only_for("image-size", dataset == "restricted-imagenet", "restricted-imagenet");
  only_for("coarse-labels", dataset == "cifar100", "cifar100");
  only_for("merge-valid", dataset == "cinic10", "cinic10");
  only_for("cache-dir", dataset == "cinic10" || dataset == "restricted-imagenet",
           "the folder datasets (cinic10, restricted-imagenet)");
}

void RunCheckpoint::remove() const { std::remove(path_.c_str()); }

}  // namespace minima::app
