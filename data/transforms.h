// data/transforms.h: the dataset transforms of the experiments. Each is seeded, fixed for the run
// (computed once, not per epoch) and returns a new Dataset with its own tensors (inputs are never
// modified, since Dataset copies share storage). Random choices for sample i come from the
// counter-based generator keyed by (seed, transform, i), so results do not depend on threading.
// The normalization constants (mean/std) are kept from the input: they describe the clean
// training set, as in the papers' code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace minima::data {

// The first n samples; class_balanced: the first floor(n/K) of every class (the first n%K classes
// get one more), still in dataset order. n >= size() returns a copy of everything.
Dataset subset(const Dataset& d, int64_t n, bool class_balanced = false);

// ---- Liu, Papailiopoulos, Achlioptas 2020: the adversarial set C ----
// Number of values zeroed per copy, as in the official code: int(C*H*W * fraction).
int64_t zero_out_count(int64_t values_per_image, double fraction);
// Each image copied `replication` times (copy r of image i is sample r*N + i); in each copy
// zero_out_count(C*H*W, zero_out) distinct raw values, chosen uniformly without replacement over
// all channels and positions, set to 0; each copy gets its own uniformly random label. uint8 only.
Dataset adversarial_set(const Dataset& train, int64_t replication, double zero_out = 0.1, uint64_t seed = 1);

// ---- Zhang, Bengio, Hardt, Recht, Vinyals 2017 ----
// Each label replaced with probability p by a uniformly random class (which may equal the true
// one); p = 1 gives random labels.
Dataset corrupt_labels(const Dataset& d, double p, uint64_t seed);
// A permutation of the H*W pixel positions (all channels of a pixel move together).
std::vector<int64_t> pixel_permutation(int64_t positions, uint64_t seed);
// Applies one permutation of pixel positions to every image: out[p] = in[perm[p]].
Dataset permute_pixels(const Dataset& d, const std::vector<int64_t>& perm);
// Shuffled pixels: one permutation for the training and the test images.
void shuffle_pixels(Splits& s, uint64_t seed);
// Random pixels: a new permutation of pixel positions for every image.
Dataset random_pixels(const Dataset& d, uint64_t seed);
// Gaussian images: float32 images (pixel/255 units) drawn i.i.d. per value from N(mean[c], std[c]^2)
// with the dataset's per-channel mean and std; labels kept.
Dataset gaussian_images(const Dataset& d, uint64_t seed);
// Zhang et al.'s per-image whitening applied once, for images that are not uint8 (the Loader's
// Normalize::per_image whitens uint8 batches on the fly): float32 images
// (x - mean(x)) / max(std(x), 1/sqrt(numel)) with x in pixel/255 units and mean and std over all
// values of the image, to be batched with Normalize::none. uint8 or float32 input.
Dataset whiten_per_image(const Dataset& d);
// Center crop to size x size (Zhang et al.: 28x28 of CIFAR's 32x32).
Dataset center_crop(const Dataset& d, int64_t size);
// Crops both splits and recomputes the normalization constants from the cropped training images.
void center_crop(Splits& s, int64_t size);

// The Zhang et al. variants by name, applied as in the paper: labels and per-image randomizations
// to the training split only, shuffled pixels to both splits.
//   true-labels | corrupt-labels (with p) | random-labels | shuffled-pixels | random-pixels | gaussian
const std::vector<std::string>& randomization_names();
void apply_randomization(Splits& s, const std::string& kind, double p, uint64_t seed);

}  // namespace minima::data
