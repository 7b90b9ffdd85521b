// data/loader.h: epoch-wise batching of a Dataset into normalized float32 batches.
// The order of an epoch is a seeded permutation (Fisher-Yates on the counter-based generator keyed
// by (seed, epoch)); the augmentation of a sample depends only on (seed, epoch, sample index)
// (data/augment.h). On a CUDA device the whole uint8 dataset is uploaded once when it fits in
// half of the free device memory, and each batch is assembled by one kernel launch (gather,
// crop, flip, normalize, labels) with no host work; otherwise batches are assembled by host
// threads one batch ahead and copied. Both paths give the same values as the CPU path.
#pragma once
#include <cstdint>
#include <future>
#include <memory>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace minima::data {

// Batches of `batch` (>= 1) in an epoch of n samples: the last partial one dropped or kept. Counted
// without adding batch - 1 first, which overflows for a batch size near INT64_MAX.
int64_t batch_count(int64_t n, int64_t batch, bool drop_last);

class Loader {
 public:
  // drop_last: when the dataset size is not a multiple of batch_size, drop the last partial batch
  // (training) or keep it as a smaller final batch (evaluation).
  Loader(const Dataset& ds, int64_t batch_size, bool shuffle, uint64_t seed, Augment aug = {}, bool drop_last = false,
         Device device = Device::cpu(), Normalize norm = Normalize::dataset);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  void start_epoch(int64_t epoch);  // order and augmentation depend only on (seed, epoch, sample index)
  bool next(Tensor& x, Tensor& y);  // false at the end of the epoch
  int64_t batches_per_epoch() const;
  int64_t batch_size() const { return batch_; }
  int64_t epoch() const { return epoch_; }
  int64_t samples_per_epoch() const;
  const std::vector<int64_t>& order() const { return order_; }  // this epoch's sample order
  const Dataset& dataset() const { return ds_; }
  Device device() const { return device_; }
  bool gpu_resident() const { return resident_; }  // the dataset lives on the device

 private:
  void make_host_batch(int64_t b, Tensor& x, Tensor& y) const;
  void make_device_batch(int64_t b, Tensor& x, Tensor& y);

  Dataset ds_;
  int64_t batch_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  Augment aug_;
  Device device_;
  Normalize norm_;
  int64_t epoch_ = 0, cursor_ = 0;  // cursor_: next batch index
  uint64_t aug_key_ = 0;
  std::vector<int64_t> order_;
  std::vector<float> lut_;
  // Device state: the resident dataset, labels, this epoch's order and the lookup table.
  bool resident_ = false;
  Tensor d_images_, d_labels_, d_order_, d_lut_;
  // Host-assembled batches for the non-resident device path: the next one, computed ahead.
  std::future<std::pair<Tensor, Tensor>> ahead_;
  int64_t ahead_index_ = -1;
};

// Largest dataset (bytes of images + labels) a Loader keeps resident on the device; larger ones
// take the host-assembled path. -1 (the default): half of the device's free memory.
void set_resident_limit_bytes(int64_t bytes);

// ---- the pieces of the pipeline, exposed for tests and benchmarks ----
// Sample order of one epoch: 0..n-1, or a permutation that depends only on (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);
// The Philox key of the augmentation of one epoch.
uint64_t augment_key(uint64_t seed, int64_t epoch);
// The normalization table: for uint8 images C*256 floats (value of pixel v in channel c at
// [c*256 + v]); for float32 images 2*C floats (mean[c], 1/std[c]).
std::vector<float> normalization_table(const Dataset& ds, Normalize norm);
// Assembles a batch of the samples idx[0..B) on the host: out float [B, C, H, W], labels [B].
void make_batch_cpu(const Dataset& ds, const int64_t* idx, int64_t B, const Augment& aug, uint64_t aug_key,
                    Normalize norm, const float* table, float* out, int64_t* labels_out);

// ---- the CUDA side (data/loader_cuda.cu; throws clearly in a build without CUDA) ----
namespace cuda {
// Free bytes on `device` (cudaMemGetInfo).
size_t free_memory(int device);
void copy_host_to_device(void* dst, const void* src, size_t bytes);
void copy_device_to_host(void* dst, const void* src, size_t bytes);
// The device twin of make_batch_cpu, queued on the backend's stream of `device`; every pointer is
// device memory. idx has B entries.
void make_batch(int device, const void* images, bool images_u8, const int64_t* labels, const int64_t* idx, int64_t B,
                int64_t C, int64_t H, int64_t W, const Augment& aug, uint64_t aug_key, Normalize norm,
                const float* table, int64_t table_size, float* out, int64_t* labels_out);
void synchronize();
}  // namespace cuda

}  // namespace minima::data
