// core/random.cpp: host-side helpers of the counter-based Generator.
#include "core/random.h"

namespace minima {

uint64_t Generator::below(uint64_t n) {
  // Rejection sampling on 64-bit draws keeps every value exactly equally likely.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    auto r = Philox::generate(seed_, advance(1), 2);
    uint64_t x = (uint64_t(r.v[0]) << 32) | r.v[1];
    if (x < limit) return x % n;
  }
}

uint64_t Generator::mix(uint64_t seed, uint64_t a, uint64_t b) {
  auto r = Philox::generate(seed, a, b ^ 0x5eedULL);
  return (uint64_t(r.v[0]) << 32) | r.v[1];
}

}  // namespace minima
