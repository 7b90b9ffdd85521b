// core/random.h: the counter-based generator. Philox4x32-10 (Salmon et al., SC'11) maps a 128-bit
// counter and a 64-bit key to four 32-bit random words; there is no sequential state, so element i
// of a draw is a pure function of (seed, offset, i) and a CPU loop, an OpenMP loop and a CUDA
// kernel all produce the same numbers. A Generator is just (seed, offset): each draw of n values
// consumes ceil(n/4) counters so consecutive draws never overlap.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace minima {

struct Philox {
  static constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  static constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  struct u32x4 {
    uint32_t v[4];
  };

  MINIMA_HD static uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
    uint64_t p = uint64_t(a) * uint64_t(b);
    *hi = uint32_t(p >> 32);
    return uint32_t(p);
  }
  // counter = (ctr_lo, ctr_hi) as 2x64 bits; key = seed.
  MINIMA_HD static u32x4 generate(uint64_t seed, uint64_t ctr_lo, uint64_t ctr_hi) {
    uint32_t c0 = uint32_t(ctr_lo), c1 = uint32_t(ctr_lo >> 32);
    uint32_t c2 = uint32_t(ctr_hi), c3 = uint32_t(ctr_hi >> 32);
    uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      uint32_t hi0, hi1;
      uint32_t lo0 = mulhilo(M0, c0, &hi0);
      uint32_t lo1 = mulhilo(M1, c2, &hi1);
      uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
      c0 = n0;
      c1 = n1;
      c2 = n2;
      c3 = n3;
      k0 += W0;
      k1 += W1;
    }
    return {{c0, c1, c2, c3}};
  }
  // A float in [0, 1) from 24 random bits; a double in [0, 1) from 53.
  MINIMA_HD static float to_unit_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
  MINIMA_HD static double to_unit_double(uint32_t a, uint32_t b) {
    uint64_t x = (uint64_t(a) << 21) ^ uint64_t(b >> 11);
    return double(x & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
  // Element i of a draw: the word i%4 of the block at counter (offset + i/4, stream).
  MINIMA_HD static uint32_t word(uint64_t seed, uint64_t offset, uint64_t stream, uint64_t i) {
    return generate(seed, offset + i / 4, stream).v[i % 4];
  }
  // U[0,1) as double for element i (uses two words of the block: lanes 2*(i%2), 2*(i%2)+1).
  MINIMA_HD static double uniform(uint64_t seed, uint64_t offset, uint64_t i) {
    u32x4 r = generate(seed, offset + i / 2, 0);
    int l = int(i % 2) * 2;
    return to_unit_double(r.v[l], r.v[l + 1]);
  }
  // N(0,1) for element i by Box-Muller on one block (uses all four words).
  MINIMA_HD static double normal(uint64_t seed, uint64_t offset, uint64_t i) {
    u32x4 r = generate(seed, offset + i, 1);
    double u1 = to_unit_double(r.v[0], r.v[1]);
    double u2 = to_unit_double(r.v[2], r.v[3]);
    u1 = 1.0 - u1;  // (0, 1]
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// A seeded source of random draws. Copyable; its whole state is (seed, offset).
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserve `n` counters for one draw and return the first.
  uint64_t advance(uint64_t n) {
    uint64_t o = offset_;
    offset_ += n;
    return o;
  }
  // Host-side scalar draws (consume one counter each).
  // uniform() uses the block of the one counter it reserves (lanes 0-1), so it never shares a
  // block with a tensor draw, which reserves counters of its own on the same stream.
  double uniform() { return Philox::uniform(seed_, advance(1), 0); }
  double normal() { return Philox::normal(seed_, advance(1), 0); }
  // An integer in [0, n) (n > 0), unbiased by rejection.
  uint64_t below(uint64_t n);
  // Derive an independent generator (e.g. per epoch): hashes (seed, a, b) into a new seed.
  static uint64_t mix(uint64_t seed, uint64_t a, uint64_t b = 0);

 private:
  uint64_t seed_ = 0, offset_ = 0;
};

}  // namespace minima
