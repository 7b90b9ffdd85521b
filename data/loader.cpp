// data/loader.cpp: the Loader (see data/loader.h) and the host side of the input pipeline.
#include "data/loader.h"

#include <algorithm>
#include <cstring>

#include "core/backend.h"
#include "core/error.h"
#include "core/random.h"

namespace minima::data {

namespace {
int64_t g_resident_limit = -1;
}
void set_resident_limit_bytes(int64_t bytes) { g_resident_limit = bytes; }

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
  if (!shuffle) return p;
  Generator g(Generator::mix(seed, uint64_t(epoch), 1));
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(g.below(uint64_t(i + 1)))]);
  return p;
}

uint64_t augment_key(uint64_t seed, int64_t epoch) { return Generator::mix(seed, uint64_t(epoch), 2); }

std::vector<float> normalization_table(const Dataset& ds, Normalize norm) {
  const int64_t C = ds.channels();
  MINIMA_CHECK(int64_t(ds.mean.size()) == C && int64_t(ds.std.size()) == C, ds.name,
               ": normalization needs one mean and std per channel (", C, "), found ", ds.mean.size(), " and ",
               ds.std.size());
  const bool by_dataset = norm == Normalize::dataset;
  if (ds.images.dtype() == DType::u8) {
    std::vector<float> t(size_t(C * 256));
    for (int64_t c = 0; c < C; ++c)
      for (int v = 0; v < 256; ++v) {
        double x = double(v) / 255.0;
        t[size_t(c * 256 + v)] = float(by_dataset ? (x - ds.mean[size_t(c)]) / ds.std[size_t(c)] : x);
      }
    return t;
  }
  MINIMA_CHECK(norm != Normalize::per_image, ds.name, ": per-image standardization needs uint8 images, found ",
               ds.images.dtype());
  std::vector<float> t(size_t(2 * C));
  for (int64_t c = 0; c < C; ++c) {
    t[size_t(2 * c)] = by_dataset ? float(ds.mean[size_t(c)]) : 0.0f;
    t[size_t(2 * c + 1)] = by_dataset ? float(1.0 / ds.std[size_t(c)]) : 1.0f;
  }
  return t;
}

// Calls f(e, c, off) for every output element e = (c*OH + y)*OW + x of one sample, with `off` the
// offset of its source value in the C x H x W image or -1 for padding: source_offset() evaluated a
// row at a time, for an output window of OH x OW (the image's size, or a smaller crop).
template <class F>
inline void for_each_source(int64_t C, int64_t H, int64_t W, int64_t OH, int64_t OW, const SampleAug& a, F&& f) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < OH; ++y) {
      const int64_t sy = y + a.dy, row = (c * OH + y) * OW;
      if (sy < 0 || sy >= H) {
        for (int64_t x = 0; x < OW; ++x) f(row + x, c, int64_t(-1));
        continue;
      }
      const int64_t src_row = (c * H + sy) * W;
      for (int64_t x = 0; x < OW; ++x) {
        const int64_t sx = (a.flip ? OW - 1 - x : x) + a.dx;
        f(row + x, c, (sx < 0 || sx >= W) ? int64_t(-1) : src_row + sx);
      }
    }
}

// Throws unless aug's crop window fits in ds's images padded by aug.pad (torchvision's RandomCrop
// refuses the same).
static void check_crop_fits(const Dataset& ds, const Augment& aug) {
  MINIMA_CHECK(aug.out_h(ds.height()) <= ds.height() + 2 * aug.pad && aug.out_w(ds.width()) <= ds.width() + 2 * aug.pad,
               "a crop of ", aug.size, "x", aug.size, " does not fit in ", ds.name, "'s ", ds.height(), "x", ds.width(),
               " images padded by ", aug.pad);
}

void make_batch_cpu(const Dataset& ds, const int64_t* idx, int64_t B, const Augment& aug, uint64_t aug_key,
                    Normalize norm, const float* table, float* out, int64_t* labels_out) {
  const int64_t N = ds.size(), C = ds.channels(), H = ds.height(), W = ds.width(), src_n = C * H * W;
  const int64_t OH = aug.out_h(H), OW = aug.out_w(W), n = C * OH * OW;  // one sample of the batch
  check_crop_fits(ds, aug);
  for (int64_t b = 0; b < B; ++b)
    MINIMA_CHECK(idx[b] >= 0 && idx[b] < N, ds.name, ": batch index ", idx[b], " outside 0..", N - 1);
  const bool u8 = ds.images.dtype() == DType::u8;
  MINIMA_CHECK(u8 || norm != Normalize::per_image, ds.name, ": per-image standardization needs uint8 images");
  const int32_t pad = int32_t(aug.pad);
  const int64_t* labels = ds.labels.data<int64_t>();
  const uint8_t* img8 = u8 ? ds.images.data<uint8_t>() : nullptr;
  const float* img32 = u8 ? nullptr : ds.images.data<float>();

#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = idx[b];
    labels_out[b] = labels[i];
    const SampleAug a = sample_augment(aug_key, uint64_t(i), pad, aug.crop, aug.flip, int32_t(H - OH), int32_t(W - OW));
    float* o = out + b * n;
    if (u8) {
      const uint8_t* s = img8 + i * src_n;
      if (norm == Normalize::per_image) {
        uint64_t s1 = 0, s2 = 0;
        for_each_source(C, H, W, OH, OW, a, [&](int64_t, int64_t, int64_t off) {
          const uint32_t v = off < 0 ? 0u : s[off];
          s1 += v;
          s2 += v * v;
        });
        const double inv = per_image_inv(s1, s2, n);
        for_each_source(C, H, W, OH, OW, a, [&](int64_t e, int64_t, int64_t off) {
          o[e] = per_image_value(off < 0 ? 0u : s[off], s1, n, inv);
        });
      } else {
        for_each_source(C, H, W, OH, OW, a,
                        [&](int64_t e, int64_t c, int64_t off) { o[e] = table[c * 256 + (off < 0 ? 0 : s[off])]; });
      }
    } else {
      const float* s = img32 + i * src_n;
      for_each_source(C, H, W, OH, OW, a, [&](int64_t e, int64_t c, int64_t off) {
        const float v = off < 0 ? 0.0f : s[off];
        o[e] = (v - table[2 * c]) * table[2 * c + 1];
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
Loader::Loader(const Dataset& ds, int64_t batch_size, bool shuffle, uint64_t seed, Augment aug, bool drop_last,
               Device device, Normalize norm)
    : ds_(ds),
      batch_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      aug_(aug),
      device_(device),
      norm_(norm) {
  ds_.validate();
  MINIMA_CHECK(batch_ > 0, "Loader: batch size must be positive, got ", batch_);
  MINIMA_CHECK(ds_.size() > 0, "Loader: dataset ", ds_.name, " is empty");
  MINIMA_CHECK(!drop_last_ || ds_.size() >= batch_, "Loader: dataset ", ds_.name, " has ", ds_.size(),
               " samples, fewer than one batch of ", batch_, " with drop_last");
  MINIMA_CHECK(aug_.pad >= 0 && aug_.pad <= 127, "Loader: crop padding must be in 0..127, got ", aug_.pad);
  MINIMA_CHECK(aug_.size >= 0 && (aug_.size == 0 || aug_.crop), "Loader: a crop size (", aug_.size,
               ") needs crop on and must be >= 0");
  check_crop_fits(ds_, aug_);  // here, not at the first batch
  lut_ = normalization_table(ds_, norm_);
  if (device_.is_cuda()) {
    MINIMA_CHECK(cuda_available(), "Loader: device ", device_, " requested but no CUDA device is available");
    const size_t bytes = ds_.images.numel() * ds_.images.element_size() + size_t(ds_.size()) * 8;
    // The batch kernel writes batches of the images' own size: crops to another size are assembled
    // on the host and copied.
    const bool same_size = aug_.out_h(ds_.height()) == ds_.height() && aug_.out_w(ds_.width()) == ds_.width();
    resident_ = same_size && (g_resident_limit >= 0 ? bytes <= size_t(g_resident_limit)
                                                    : bytes < cuda::free_memory(device_.index) / 2);
    if (resident_) {
      d_images_ = empty(ds_.images.shape(), TensorOptions(ds_.images.dtype(), device_));
      cuda::copy_host_to_device(d_images_.data_ptr(), ds_.images.data_ptr(),
                                ds_.images.numel() * ds_.images.element_size());
      d_labels_ = empty({ds_.size()}, TensorOptions(DType::i64, device_));
      cuda::copy_host_to_device(d_labels_.data_ptr(), ds_.labels.data_ptr(), size_t(ds_.size()) * 8);
      d_order_ = empty({ds_.size()}, TensorOptions(DType::i64, device_));
      d_lut_ = empty({int64_t(lut_.size())}, TensorOptions(DType::f32, device_));
      cuda::copy_host_to_device(d_lut_.data_ptr(), lut_.data(), lut_.size() * sizeof(float));
    }
  }
  start_epoch(0);
}

Loader::~Loader() {
  if (ahead_.valid()) ahead_.wait();
}

int64_t batch_count(int64_t n, int64_t batch, bool drop_last) {
  MINIMA_CHECK(n >= 0 && batch >= 1, "batch_count: ", n, " samples in batches of ", batch);
  const int64_t whole = n / batch;
  return drop_last || n % batch == 0 ? whole : whole + 1;
}

int64_t Loader::batches_per_epoch() const { return batch_count(ds_.size(), batch_, drop_last_); }

int64_t Loader::samples_per_epoch() const { return drop_last_ ? batches_per_epoch() * batch_ : ds_.size(); }

void Loader::start_epoch(int64_t epoch) {
  MINIMA_CHECK(epoch >= 0, "Loader: epoch must be non-negative, got ", epoch);
  if (ahead_.valid()) ahead_.wait();  // it reads order_
  ahead_ = {};
  ahead_index_ = -1;
  epoch_ = epoch;
  cursor_ = 0;
  order_ = epoch_order(ds_.size(), shuffle_, seed_, epoch);
  aug_key_ = augment_key(seed_, epoch);
  if (resident_) cuda::copy_host_to_device(d_order_.data_ptr(), order_.data(), order_.size() * 8);
}

// Reuses `t` as the output when nobody else holds it (same shape, dtype and device), else allocates.
// The batch is then written through raw pointers, which does not count as an in-place write
// (Tensor::mark_modified): that is sound only because a reused storage has no other holder, so no
// autograd node can have saved the previous batch, nor can a caller still read it.
static void output(Tensor& t, const Shape& shape, DType dt, Device dev) {
  if (t.defined() && t.impl_ptr().use_count() == 1 && t.storage().use_count() == 1 && t.shape() == shape &&
      t.dtype() == dt && t.device() == dev && t.is_contiguous() && t.offset() == 0 && !t.requires_grad())
    return;
  t = empty(shape, TensorOptions(dt, dev));
}

void Loader::make_host_batch(int64_t b, Tensor& x, Tensor& y) const {
  const int64_t start = b * batch_, B = std::min(batch_, ds_.size() - start);
  output(x, {B, ds_.channels(), aug_.out_h(ds_.height()), aug_.out_w(ds_.width())}, DType::f32, Device::cpu());
  output(y, {B}, DType::i64, Device::cpu());
  make_batch_cpu(ds_, order_.data() + start, B, aug_, aug_key_, norm_, lut_.data(), x.data<float>(), y.data<int64_t>());
}

void Loader::make_device_batch(int64_t b, Tensor& x, Tensor& y) {
  const int64_t start = b * batch_, B = std::min(batch_, ds_.size() - start);
  output(x, {B, ds_.channels(), ds_.height(), ds_.width()}, DType::f32, device_);
  output(y, {B}, DType::i64, device_);
  // Device memory: raw pointers for the kernel (data<T>() is for host access only).
  auto i64 = [](const Tensor& t) { return static_cast<int64_t*>(t.data_ptr()); };
  auto f32 = [](const Tensor& t) { return static_cast<float*>(t.data_ptr()); };
  cuda::make_batch(device_.index, d_images_.data_ptr(), ds_.images.dtype() == DType::u8, i64(d_labels_),
                   i64(d_order_) + start, B, ds_.channels(), ds_.height(), ds_.width(), aug_, aug_key_, norm_,
                   f32(d_lut_), int64_t(lut_.size()), f32(x), i64(y));
}

bool Loader::next(Tensor& x, Tensor& y) {
  if (cursor_ >= batches_per_epoch()) return false;
  const int64_t b = cursor_++;
  if (device_.is_cpu()) {
    make_host_batch(b, x, y);
    return true;
  }
  if (resident_) {
    make_device_batch(b, x, y);
    return true;
  }
  // Host-assembled batches for a dataset too large for the device: take the batch computed
  // ahead (or compute it now), start the next one on a host thread, then copy.
  Tensor hx, hy;
  if (ahead_.valid() && ahead_index_ == b) {
    auto p = ahead_.get();
    hx = p.first;
    hy = p.second;
  } else {
    if (ahead_.valid()) ahead_.wait();
    make_host_batch(b, hx, hy);
  }
  ahead_ = {};
  if (b + 1 < batches_per_epoch()) {
    ahead_index_ = b + 1;
    ahead_ = std::async(std::launch::async, [this, b] {
      Tensor ax, ay;
      make_host_batch(b + 1, ax, ay);
      return std::make_pair(ax, ay);
    });
  }
  output(x, hx.shape(), DType::f32, device_);
  output(y, hy.shape(), DType::i64, device_);
  cuda::copy_host_to_device(x.data_ptr(), hx.data_ptr(), size_t(hx.numel()) * 4);
  cuda::copy_host_to_device(y.data_ptr(), hy.data_ptr(), size_t(hy.numel()) * 8);
  return true;
}

#ifndef MINIMA_HAS_CUDA
namespace cuda {
static const char* kNoCuda = "the data pipeline's CUDA path needs minima built with CUDA";
size_t free_memory(int) { throw Error(kNoCuda); }
void copy_host_to_device(void*, const void*, size_t) { throw Error(kNoCuda); }
void copy_device_to_host(void*, const void*, size_t) { throw Error(kNoCuda); }
void make_batch(int, const void*, bool, const int64_t*, const int64_t*, int64_t, int64_t, int64_t, int64_t,
                const Augment&, uint64_t, Normalize, const float*, int64_t, float*, int64_t*) {
  throw Error(kNoCuda);
}
void synchronize() { throw Error(kNoCuda); }
}  // namespace cuda
#endif

}  // namespace minima::data
