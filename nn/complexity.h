// nn/complexity.h: the complexity measures Liu et al. (2020) report for the minima SGD finds,
// computed from a model's state_dict so they work for every architecture:
//  * frobenius_sq: sum over conv/linear weights of ||W||_F^2 (raw weights).
//  * log10_spectral_product: log10 of the product over layers of sigma_max(W), W reshaped to
//    [out, in*kh*kw], by power iteration; each batch norm is folded into its neighbouring weight at
//    eval (scale gamma/sqrt(running_var+eps) on the output channels of the conv/linear just before
//    it, or on the input channels of the one just after it when it comes first, as in DenseNet).
//    A log because the product over 20-50 layers leaves double range.
//  * l2_path_norm / l1_path_norm: (sum over input-output paths of prod |w|^p)^(1/p), computed as
//    one forward pass of a copy of the network whose weights are |W|^p, biases 0, batch norms
//    replaced by their folded per-channel scale |gamma/sqrt(var+eps)|^p, on an all-ones input;
//    the outputs are summed. Pooling layers are kept as they are (max-pooling then follows the
//    largest path), a standard approximation for networks that are not pure chains of linear maps;
//    so are local response normalizations (alexnet-small), which makes its path norms indicative only.
//  * relative_distance: ||w - w0|| / ||w0|| over all parameters, flattened.
#pragma once
#include <functional>
#include <memory>

#include "nn/module.h"

namespace minima::nn {

struct Complexity {
  double frobenius_sq = 0;
  double log10_spectral_product = 0;
  double l2_path_norm = 0;
  double l1_path_norm = 0;
};

// `fresh` builds an untrained model of the same architecture on the CPU (for the path norms).
Complexity complexity_measures(const Module& model, const std::function<std::shared_ptr<Module>()>& fresh,
                               const Shape& in_chw, int power_iterations = 30, double bn_eps = 1e-5);

// sigma_max of a [rows, cols] row-major matrix by power iteration from a fixed start.
double spectral_norm(const std::vector<double>& w, int64_t rows, int64_t cols, int iterations = 30);

// ||now - init|| / ||init|| over the parameters listed in both (matched by name).
double relative_distance(const NamedTensors& now, const NamedTensors& init);

// A deep copy of the parameters (on the CPU), e.g. the initialization to measure distances from.
NamedTensors snapshot(const NamedTensors& params);

}  // namespace minima::nn
