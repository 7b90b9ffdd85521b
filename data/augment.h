// data/augment.h: the per-sample input pipeline shared by the CPU loop and the CUDA kernel
// (MINIMA_HD functions), so both give bit-identical batches:
//  * augmentation: random crop with zero padding `pad` (torchvision's RandomCrop(size,
//    padding=pad): the raw image is padded with 0-valued pixels, then a size x size window is cut
//    at a uniformly random offset; size is the image's own by default, and smaller for Zhang et
//    al.'s random 28x28 crops of CIFAR's 32x32 images) followed by a random horizontal flip with
//    probability 1/2. The parameters of sample i in epoch e come from one Philox block keyed by
//    mix(seed, e) with counter i, i.e. only from (seed, epoch, sample index).
//  * normalization of uint8 pixels through a per-channel lookup table (filled in double on the host,
//    copied to the device as is), or per-image standardization from exact integer sums.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/random.h"

namespace minima::data {

struct Augment {
  bool crop = false;
  int64_t pad = 4;
  bool flip = false;
  int64_t size = 0;  // with crop: the side of the square window cut out (0: the image's height and width)
  bool any() const { return crop || flip; }
  // The batch's image height and width for images of H x W.
  int64_t out_h(int64_t H) const { return crop && size > 0 ? size : H; }
  int64_t out_w(int64_t W) const { return crop && size > 0 ? size : W; }
};

// How the Loader maps raw pixels to network inputs.
enum class Normalize {
  dataset,    // (pixel/255 - mean[c]) / std[c] with the dataset's constants
  per_image,  // Zhang et al.'s per-image whitening: (x - mean(x)) / max(std(x), 1/sqrt(numel))
  none,       // pixel/255
};

// Crop offset (output (y, x) reads padded-image position (y + dy, x + dx)) and flip of one sample.
struct SampleAug {
  int32_t dy = 0, dx = 0;
  bool flip = false;
};

// An integer in [0, n) from a 32-bit word (multiply-high; bias below 2^-24 for n <= 256).
MINIMA_HD uint32_t below_u32(uint32_t word, uint32_t n) { return uint32_t((uint64_t(word) * n) >> 32); }

// slack_y, slack_x: how much smaller the window is than the image (H - size, W - size; 0 when the
// crop keeps the image's size), so the offsets run over [-pad, slack + pad].
MINIMA_HD SampleAug sample_augment(uint64_t key, uint64_t sample, int32_t pad, bool crop, bool flip,
                                   int32_t slack_y = 0, int32_t slack_x = 0) {
  SampleAug a;
  Philox::u32x4 r = Philox::generate(key, sample, 0);
  if (crop && (pad > 0 || slack_y > 0 || slack_x > 0)) {
    a.dy = int32_t(below_u32(r.v[0], uint32_t(2 * pad + slack_y + 1))) - pad;
    a.dx = int32_t(below_u32(r.v[1], uint32_t(2 * pad + slack_x + 1))) - pad;
  }
  a.flip = flip && (r.v[2] >> 31) != 0;
  return a;
}

// Offset within one sample of the source value for output element (c, y, x), or -1 for padding.
// (For an output as large as the image; the CPU path's for_each_source also takes smaller windows.)
MINIMA_HD int64_t source_offset(int64_t c, int64_t y, int64_t x, int64_t H, int64_t W, const SampleAug& a) {
  int64_t xs = a.flip ? W - 1 - x : x;
  int64_t sy = y + a.dy, sx = xs + a.dx;
  if (sy < 0 || sy >= H || sx < 0 || sx >= W) return -1;
  return (c * H + sy) * W + sx;
}

// Per-image standardization constants from exact sums of the (augmented) raw pixels:
// out = (pixel * n - s1) * inv. Only correctly rounded double operations, no fusable a*b+c, so
// host and device agree bit for bit.
MINIMA_HD double per_image_inv(uint64_t s1, uint64_t s2, int64_t n) {
  int64_t num = int64_t(n) * int64_t(s2) - int64_t(s1) * int64_t(s1);  // n^2 * variance, exact
  double var = double(num) / (double(n) * double(n));
  double sd = std::sqrt(var);
  double floor_sd = 255.0 / std::sqrt(double(n));  // TF's 1/sqrt(numel) floor, in pixel units
  double adj = sd > floor_sd ? sd : floor_sd;
  return 1.0 / (double(n) * adj);
}

MINIMA_HD float per_image_value(uint32_t pixel, uint64_t s1, int64_t n, double inv) {
  return float(double(int64_t(pixel) * n - int64_t(s1)) * inv);
}

}  // namespace minima::data
