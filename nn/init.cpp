// nn/init.cpp: see init.h.
#include "nn/init.h"

#include <cmath>

namespace minima::nn::init {

static int64_t receptive(const Shape& s) {
  int64_t r = 1;
  for (size_t i = 2; i < s.size(); ++i) r *= s[i];
  return r;
}

int64_t fan_in(const Shape& s) {
  MINIMA_CHECK(s.size() >= 2, "init: fan_in needs a weight with at least 2 dims, got ", shape_str(s));
  return s[1] * receptive(s);
}

int64_t fan_out(const Shape& s) {
  MINIMA_CHECK(s.size() >= 2, "init: fan_out needs a weight with at least 2 dims, got ", shape_str(s));
  return s[0] * receptive(s);
}

Tensor kaiming_uniform(const Shape& s, double a, Generator& g) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in(s)));
  return uniform(s, -bound, bound, g);
}

Tensor he_normal_fan_out(const Shape& s, Generator& g) {
  return normal(s, 0.0, std::sqrt(2.0 / double(fan_out(s))), g);
}

Tensor default_bias(int64_t out, int64_t fan_in, Generator& g) {
  double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
  return uniform({out}, -bound, bound, g);
}

}  // namespace minima::nn::init
