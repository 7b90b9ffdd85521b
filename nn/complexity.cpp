// nn/complexity.cpp: complexity measures of a trained network (see complexity.h).
#include "nn/complexity.h"

#include <cmath>
#include <map>

#include "core/ops.h"
#include "core/random.h"
#include "nn/autocast.h"
#include "nn/safetensors.h"

namespace minima::nn {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
std::string prefix_of(const std::string& name) { return name.substr(0, name.rfind('.')); }

std::vector<double> host_f64(const Tensor& t) { return t.to_vector<double>(); }

// One entry per conv/linear weight or batch norm, in state_dict order.
struct Layer {
  bool is_bn = false;
  std::string name;           // tensor name (weights) or module prefix (batch norms)
  Shape shape;                // weights
  std::vector<double> w;      // weights (folded as we go)
  std::vector<double> scale;  // batch norms: gamma / sqrt(var + eps)
  bool folded = false;
};

std::vector<Layer> collect_layers(const NamedTensors& sd, double eps) {
  std::map<std::string, Tensor> by_name(sd.begin(), sd.end());
  std::vector<Layer> layers;
  for (const auto& [name, t] : sd) {
    if (ends_with(name, ".weight") && t.dim() >= 2) {
      Layer l;
      l.name = name;
      l.shape = t.shape();
      l.w = host_f64(t);
      layers.push_back(std::move(l));
    } else if (ends_with(name, ".running_var")) {
      std::string p = prefix_of(name);
      std::vector<double> var = host_f64(t);
      std::vector<double> gamma(var.size(), 1.0);
      if (by_name.count(p + ".weight")) gamma = host_f64(by_name[p + ".weight"]);
      Layer l;
      l.is_bn = true;
      l.name = p;
      l.scale.resize(var.size());
      for (size_t c = 0; c < var.size(); ++c) l.scale[c] = gamma[c] / std::sqrt(var[c] + eps);
      layers.push_back(std::move(l));
    }
  }
  return layers;
}

// Folds each batch norm into the weight just before it (output channels) or, failing that, the
// weight just after it (input channels).
void fold_batch_norms(std::vector<Layer>& layers) {
  for (size_t i = 0; i < layers.size(); ++i) {
    Layer& bn = layers[i];
    if (!bn.is_bn) continue;
    int64_t C = int64_t(bn.scale.size());
    if (i > 0 && !layers[i - 1].is_bn && layers[i - 1].shape[0] == C) {
      Layer& w = layers[i - 1];
      int64_t per = int64_t(w.w.size()) / C;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < per; ++j) w.w[size_t(c * per + j)] *= bn.scale[size_t(c)];
      bn.folded = true;
    } else if (i + 1 < layers.size() && !layers[i + 1].is_bn && layers[i + 1].shape[1] == C) {
      Layer& w = layers[i + 1];
      int64_t O = w.shape[0], k = int64_t(w.w.size()) / (O * C);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t j = 0; j < k; ++j) w.w[size_t((o * C + c) * k + j)] *= bn.scale[size_t(c)];
      bn.folded = true;
    }
  }
}

}  // namespace

double spectral_norm(const std::vector<double>& w, int64_t rows, int64_t cols, int iterations) {
  MINIMA_CHECK(int64_t(w.size()) == rows * cols, "spectral_norm: ", w.size(), " values for a ", rows, "x", cols,
               " matrix");
  std::vector<double> v(static_cast<size_t>(cols)), u(static_cast<size_t>(rows));
  Generator g(12345);
  for (auto& x : v) x = g.normal();
  double sigma = 0;
  for (int it = 0; it < iterations; ++it) {
    double nv = 0;
    for (double x : v) nv += x * x;
    nv = std::sqrt(nv);
    if (nv == 0) return 0;
    for (auto& x : v) x /= nv;
    // u = W v, each row's dot product summed in c order. Eight rows at a time, so that eight
    // independent sums hide the latency of each add (one row at a time waited on every add); the
    // order within each row is unchanged, so u is bitwise the same.
    constexpr int64_t kRows = 8;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows) {
      double s[kRows] = {};
      const double* wr = w.data() + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const double vc = v[size_t(c)];
        for (int64_t i = 0; i < kRows; ++i) s[i] += wr[i * cols + c] * vc;
      }
      for (int64_t i = 0; i < kRows; ++i) u[size_t(r + i)] = s[i];
    }
    for (; r < rows; ++r) {
      double s = 0;
      const double* wr = w.data() + r * cols;
      for (int64_t c = 0; c < cols; ++c) s += wr[c] * v[size_t(c)];
      u[size_t(r)] = s;
    }
    double nu = 0;
    for (double x : u) nu += x * x;
    sigma = std::sqrt(nu);
    if (sigma == 0) return 0;
    for (auto& x : u) x /= sigma;
    std::fill(v.begin(), v.end(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double* wr = w.data() + r * cols;
      double ur = u[size_t(r)];
      for (int64_t c = 0; c < cols; ++c) v[size_t(c)] += wr[c] * ur;
    }
  }
  return sigma;
}

Complexity complexity_measures(const Module& model, const std::function<std::shared_ptr<Module>()>& fresh,
                               const Shape& in_chw, int power_iterations, double bn_eps) {
  NoGradGuard ng;
  AutocastGuard exact(DType::f32);  // the measures are defined on the float32 weights
  NamedTensors sd = model.state_dict();
  Complexity c;
  std::vector<Layer> layers = collect_layers(sd, bn_eps);
  for (const auto& l : layers)
    if (!l.is_bn)
      for (double x : l.w) c.frobenius_sq += x * x;
  fold_batch_norms(layers);
  double log_prod = 0;
  for (const auto& l : layers) {
    if (l.is_bn) {
      if (l.folded) continue;
      double m = 0;
      for (double s : l.scale) m = std::max(m, std::abs(s));
      log_prod += std::log10(m);
      continue;
    }
    int64_t rows = l.shape[0], cols = int64_t(l.w.size()) / rows;
    log_prod += std::log10(spectral_norm(l.w, rows, cols, power_iterations));
  }
  c.log10_spectral_product = log_prod;

  // Path norms: a copy of the network with |W|^p weights, zero biases and batch norms reduced to
  // their |scale|^p, fed an all-ones input in eval mode.
  std::map<std::string, std::vector<double>> bn_scale;
  for (const auto& l : layers)
    if (l.is_bn) bn_scale[l.name] = l.scale;
  // One copy serves both p: every floating tensor of it is overwritten for each (so its random
  // initialization is never read), and eval mode leaves its running statistics alone.
  std::shared_ptr<Module> net = fresh();
  net->eval();
  // In float64: the l1 path norm of a deep network overflows float32 (ResNet50's and DenseNet40's
  // are infinite in float32 already at initialization).
  net->to(DType::f64);
  NamedTensors target = net->state_dict();
  std::map<std::string, Tensor> src(sd.begin(), sd.end());
  for (int p : {1, 2}) {
    for (auto& [name, t] : target) {
      Tensor s = src.at(name);
      if (!is_floating(t.dtype())) {
        t.copy_(s.cpu());
        continue;
      }
      std::string pre = prefix_of(name);
      bool is_bn = bn_scale.count(pre) > 0;
      std::vector<double> v(static_cast<size_t>(t.numel()));
      if (is_bn) {
        // The folded scale |gamma / sqrt(var + eps)|^p goes into the weight, with var + eps = 1;
        // a batch norm without affine parameters (Zhang et al.'s Inception) has no weight, so its
        // variance carries the scale instead: 1 / sqrt(var + eps) = |scale|^p.
        const auto& sc = bn_scale[pre];
        const bool affine = src.count(pre + ".weight") > 0;
        if (ends_with(name, ".weight"))
          for (size_t i = 0; i < v.size(); ++i) v[i] = std::pow(std::abs(sc[i]), p);
        else if (ends_with(name, ".running_var"))
          for (size_t i = 0; i < v.size(); ++i)
            v[i] = affine ? 1.0 - bn_eps : std::pow(std::abs(sc[i]), -2.0 * p) - bn_eps;
        // running_mean and bias stay 0
      } else if (ends_with(name, ".weight")) {
        // |w| or w * w, which is std::pow(|w|, p) exactly: the square of a float32 value is exact
        // in double, so pow, within an ulp of it, cannot round it elsewhere (and pow cost 3 % of
        // the default experiment).
        std::vector<double> w = host_f64(s);
        if (p == 1)
          for (size_t i = 0; i < v.size(); ++i) v[i] = std::abs(w[i]);
        else
          for (size_t i = 0; i < v.size(); ++i) v[i] = w[i] * w[i];
      }  // other biases: 0
      t.copy_(from_vector(v, t.shape(), TensorOptions(t.dtype())));
    }
    Shape in = {1};
    in.insert(in.end(), in_chw.begin(), in_chw.end());
    Tensor out = net->forward(ones(in, TensorOptions(DType::f64)));
    double total = sum(out.to(DType::f64)).item();
    double norm = std::pow(std::max(total, 0.0), 1.0 / p);
    (p == 1 ? c.l1_path_norm : c.l2_path_norm) = norm;
  }
  return c;
}

double relative_distance(const NamedTensors& now, const NamedTensors& init) {
  std::map<std::string, Tensor> ref(init.begin(), init.end());
  double num = 0, den = 0;
  for (const auto& [name, t] : now) {
    auto it = ref.find(name);
    if (it == ref.end()) continue;
    std::vector<double> a = t.to_vector<double>(), b = it->second.to_vector<double>();
    MINIMA_CHECK(a.size() == b.size(), "relative_distance: ", name, " has ", a.size(), " values now but ", b.size(),
                 " at init");
    for (size_t i = 0; i < a.size(); ++i) {
      num += (a[i] - b[i]) * (a[i] - b[i]);
      den += b[i] * b[i];
    }
  }
  MINIMA_CHECK(den > 0, "relative_distance: the initial parameters are all zero");
  return std::sqrt(num / den);
}

NamedTensors snapshot(const NamedTensors& params) {
  NamedTensors out;
  NoGradGuard ng;
  for (const auto& [name, t] : params) out.emplace_back(name, t.detach().cpu().clone());
  return out;
}

}  // namespace minima::nn
