// tests/data/test_loader_cuda.cpp: the GPU input pipeline gives exactly the CPU's batches (values
// and labels), for the resident and the host-assembled paths. Skipped without a CUDA device.
#include <cstring>

#include "core/backend.h"
#include "data/loader.h"
#include "helpers.h"

using namespace minima;
using namespace minima::data;

namespace {

Dataset u8_dataset(int64_t n, int64_t C, int64_t H, int64_t W) {
  Dataset d;
  d.name = "gpu-check";
  d.num_classes = 10;
  d.images = empty({n, C, H, W}, DType::u8);
  auto px = testdata::pattern(size_t(n * C * H * W), 77);
  std::memcpy(d.images.data_ptr(), px.data(), px.size());
  d.labels = empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = (i * 3) % 10;
  channel_stats(d.images, d.mean, d.std);
  return d;
}

template <class T>
std::vector<T> download(const Tensor& t) {
  std::vector<T> v(size_t(t.numel()));
  cuda::copy_device_to_host(v.data(), t.data_ptr(), v.size() * sizeof(T));
  return v;
}

// Runs two epochs through a CPU and a GPU loader and requires identical batches.
void compare(const Dataset& d, Augment aug, Normalize norm, bool resident) {
  set_resident_limit_bytes(resident ? -1 : 0);
  Loader cpu(d, 48, true, 3, aug, false, Device::cpu(), norm);
  Loader gpu(d, 48, true, 3, aug, false, Device::cuda(), norm);
  CHECK(gpu.gpu_resident() == resident);
  for (int64_t epoch : {0, 5}) {
    cpu.start_epoch(epoch);
    gpu.start_epoch(epoch);
    Tensor xc, yc, xg, yg;
    int64_t batches = 0;
    while (cpu.next(xc, yc)) {
      REQUIRE(gpu.next(xg, yg));
      CHECK(xg.device().is_cuda());
      CHECK(xg.shape() == xc.shape());
      CHECK(download<float>(xg) == xc.to_vector<float>());
      CHECK(download<int64_t>(yg) == yc.to_vector<int64_t>());
      ++batches;
    }
    CHECK(!gpu.next(xg, yg));
    CHECK(batches == cpu.batches_per_epoch());
  }
  set_resident_limit_bytes(-1);
}

}  // namespace

TEST_CASE("loader cuda: GPU batches equal CPU batches (needs a CUDA device, else skipped)" *
          doctest::skip(!cuda_available())) {
  Dataset d = u8_dataset(150, 3, 32, 32);
  Augment aug;
  aug.crop = aug.flip = true;
  SUBCASE("resident, crop + flip, dataset normalization") { compare(d, aug, Normalize::dataset, true); }
  SUBCASE("resident, no augmentation") { compare(d, Augment{}, Normalize::dataset, true); }
  SUBCASE("resident, per-image standardization") { compare(d, aug, Normalize::per_image, true); }
  SUBCASE("host-assembled path") { compare(d, aug, Normalize::dataset, false); }
  SUBCASE("float32 images") {
    Dataset f = d;
    f.images = d.images.to(DType::f32);
    float* p = f.images.data<float>();
    for (int64_t k = 0; k < f.images.numel(); ++k) p[k] /= 255.0f;
    compare(f, aug, Normalize::dataset, true);
  }
  SUBCASE("one channel, odd sizes") { compare(u8_dataset(61, 1, 28, 27), aug, Normalize::dataset, true); }
  SUBCASE("28x28 windows of 32x32 images (assembled on the host)") {
    Augment window = aug;
    window.pad = 0;
    window.size = 28;
    compare(d, window, Normalize::per_image, false);
    // The batch kernel writes images of the dataset's size, so such a loader never goes resident.
    CHECK(!Loader(d, 48, true, 3, window, false, Device::cuda(), Normalize::per_image).gpu_resident());
  }
}
