// Seeded, portable random numbers (the same stream on every platform and
// compiler, unlike std::uniform_real_distribution).
#pragma once

#include <cstdint>

namespace cpucnn {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A counter-based uniform in [0, 1): the same value for the same
// (key, index) whichever thread asks, so dropout masks do not depend on the
// thread count.
inline float hash_uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(splitmix64(key ^ splitmix64(index)) >> 40) * (1.0f / 16777216.0f);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++ * 0x2545F4914F6CDD1Dull + 1); }
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) {
    const double u = static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
    return static_cast<float>(lo + (hi - lo) * u);
  }

 private:
  uint64_t state_;
};

}  // namespace cpucnn
