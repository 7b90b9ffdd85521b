// apps/bench_data.cpp: `minima bench data`: samples/s of the full input pipeline (gather in the
// epoch's order, random crop with padding 4, horizontal flip, normalization, labels) for
// CIFAR-shaped batches, on the CPU and, when a CUDA device is present, on the GPU with the
// dataset resident on the device. The data are synthetic uint8 images. For each device it then
// times one training step of a network (ResNet18 by default) on batches of the same shape and
// prints the pipeline's share of a step: pipeline time / (pipeline time + step time) per batch.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "apps/cli.h"
#include "apps/trainer.h"
#include "core/backend.h"
#include "core/random.h"
#include "data/loader.h"

using namespace minima;

namespace {

data::Dataset synthetic(int64_t n, int64_t c, int64_t h, int64_t w) {
  data::Dataset d;
  d.name = "synthetic";
  d.num_classes = 10;
  d.images = empty({n, c, h, w}, DType::u8);
  uint8_t* p = d.images.data<uint8_t>();
  const int64_t total = d.images.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; i += 4) {
    Philox::u32x4 r = Philox::generate(7, uint64_t(i / 4), 0);
    for (int64_t k = 0; k < 4 && i + k < total; ++k) p[i + k] = uint8_t(r.v[k]);
  }
  d.labels = empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = i % 10;
  data::channel_stats(d.images, d.mean, d.std);
  return d;
}

// Runs `epochs` epochs and returns samples per second (the first epoch is a warm-up).
double measure(data::Loader& L, int64_t epochs, bool gpu) {
  Tensor x, y;
  L.start_epoch(0);
  while (L.next(x, y)) {
  }
  if (gpu) data::cuda::synchronize();
  auto t0 = std::chrono::steady_clock::now();
  int64_t samples = 0;
  for (int64_t e = 1; e <= epochs; ++e) {
    L.start_epoch(e);
    while (L.next(x, y)) samples += x.size(0);
  }
  if (gpu) data::cuda::synchronize();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(samples) / s;
}

int run(cli::Args& a) {
  a.set_description("Throughput of the data pipeline (normalize + crop + flip) on CIFAR-shaped uint8 batches.");
  int64_t n = a.get_int("samples", 50000, "synthetic dataset size");
  int64_t batch = a.get_int("batch", 128, "batch size");
  int64_t epochs = a.get_int("epochs", 3, "timed epochs (after one warm-up epoch)");
  int64_t size = a.get_int("size", 32, "image side");
  int64_t channels = a.get_int("channels", 3, "image channels");
  std::string step_arch =
      a.get_string("step-arch", "resnet18", "network whose training step the pipeline is compared with (none: skip)");
  int64_t step_iters = a.get_int("step-iters", 3, "timed training steps on the GPU (the CPU times one)");
  if (a.finish()) return 0;
  MINIMA_CHECK(n > 0 && batch > 0 && epochs > 0 && size > 0 && channels > 0 && step_iters > 0,
               "bench data: --samples, --batch, --epochs, --size, --channels and --step-iters must be positive");
  // The pipeline's share of a training step of `step_arch` on `dev`, given the pipeline's
  // seconds per batch with augmentation.
  auto share = [&](Device dev, double pipeline_s) {
    if (step_arch == "none") return;
    bool gpu = dev.is_cuda();
    double step_s =
        app::time_training_step(step_arch, {channels, size, size}, 10, batch, dev, 1, gpu ? step_iters : 1).seconds;
    std::printf("  %s  share of a %s training step (batch %lld): %.3f ms pipeline / %.3f ms step = %.3g %%\n",
                gpu ? "gpu" : "cpu", step_arch.c_str(), (long long)batch, 1e3 * pipeline_s, 1e3 * step_s,
                100.0 * pipeline_s / (pipeline_s + step_s));
  };
  data::Dataset d = synthetic(n, channels, size, size);
  data::Augment aug;
  aug.crop = aug.flip = true;
  std::printf("data pipeline, %lld synthetic %lldx%lldx%lld uint8 images, batch %lld\n", (long long)n,
              (long long)channels, (long long)size, (long long)size, (long long)batch);
  struct Case {
    const char* name;
    data::Augment aug;
    data::Normalize norm;
  };
  const Case cases[] = {{"normalize only", data::Augment{}, data::Normalize::dataset},
                        {"normalize + crop + flip", aug, data::Normalize::dataset},
                        {"per-image whitening + crop + flip", aug, data::Normalize::per_image}};
  double cpu_aug_s = 0, gpu_aug_s = 0;  // seconds per batch of "normalize + crop + flip"
  for (const Case& c : cases) {
    data::Loader L(d, batch, true, 1, c.aug, true, Device::cpu(), c.norm);
    double sps = measure(L, epochs, false);
    if (&c == &cases[1]) cpu_aug_s = double(batch) / sps;
    std::printf("  cpu  %-36s %12.0f samples/s  (%.3f ms per batch)\n", c.name, sps, 1e3 * double(batch) / sps);
  }
  share(Device::cpu(), cpu_aug_s);
  if (!cuda_available()) {
#ifdef MINIMA_HAS_CUDA
    const char* build_has = "has";
#else
    const char* build_has = "lacks";
#endif
    std::printf("  gpu  skipped: no CUDA device (this build %s CUDA)\n", build_has);
    return 0;
  }
  for (const Case& c : cases) {
    data::Loader L(d, batch, true, 1, c.aug, true, Device::cuda(), c.norm);
    double sps = measure(L, epochs, true);
    if (&c == &cases[1]) gpu_aug_s = double(batch) / sps;
    std::printf("  gpu  %-36s %12.0f samples/s  (%.3f ms per batch)%s\n", c.name, sps, 1e3 * double(batch) / sps,
                L.gpu_resident() ? "" : "  [host-assembled]");
  }
  share(Device::cuda(), gpu_aug_s);
  return 0;
}

cli::RegisterBench reg("data", "input pipeline samples/s (normalize + crop + flip), CPU and GPU", run);

}  // namespace
