// Lane masks, partial loads and stores, and the 8x8 transpose shared by the
// AVX2 kernels. Include only from kernels/<op>/avx2.cc (compiled with the
// AVX2 flags). As in avx512_lanes.hpp: functions only (no namespace-scope
// vector constants, whose static initialisers would run AVX2 instructions at
// load time on every CPU), all with internal linkage.
//
// AVX2 has no mask registers: a mask is a vector whose active lanes have the
// sign bit set (what _mm256_maskload_ps / _mm256_maskstore_ps read), and
// masked-off lanes of a maskload read nothing (no fault past a buffer's end).
#pragma once

#include <immintrin.h>

#include <stdint.h>

#include "kernels/minmax.hpp"

namespace cpucnn {
namespace avx2 {
namespace {

// Lanes [lo, hi) of 0..7, clipped.
inline __m256i lanes(int64_t lo, int64_t hi) {
  const int l = static_cast<int>(imin(imax(lo, 0), 8));
  const int h = static_cast<int>(imin(imax(hi, 0), 8));
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  // l <= lane < h: (lane > l - 1) and (h > lane)
  return _mm256_and_si256(_mm256_cmpgt_epi32(iota, _mm256_set1_epi32(l - 1)),
                          _mm256_cmpgt_epi32(_mm256_set1_epi32(h), iota));
}

// The first n lanes (n clipped to 0..8).
inline __m256i first_lanes(int64_t n) { return lanes(0, n); }

// The first n floats at p (n clipped to 0..8), zeros after; reads nothing else.
inline __m256 load_first(const float* p, int64_t n) {
  if (n >= 8) return _mm256_loadu_ps(p);
  return _mm256_maskload_ps(p, first_lanes(n));
}

// Stores the first n lanes of v at p (n clipped to 0..8); writes nothing else.
// The tail goes through the stack: a masked store is slow on some AMD cores.
inline void store_first(float* p, __m256 v, int64_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t i = 0; i < n; ++i) p[i] = t[i];
}

// The sum of the 8 lanes, in lane order.
inline float hsum(__m256 v) {
  alignas(32) float l[8];
  _mm256_store_ps(l, v);
  float s = 0.0f;
  for (float x : l) s += x;
  return s;
}

// out[i][j] = r[j][i] for an 8x8 block held in 8 registers.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);      // r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] ...
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);  // r0[2] r1[2] r0[3] r1[3] | ...
  }
  for (int k = 0; k < 2; ++k) {  // rows 4k..4k+3
    const __m256 a = t[4 * k], b = t[4 * k + 2], c = t[4 * k + 1], d = t[4 * k + 3];
    u[4 * k + 0] = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0));  // column 0 (and 4) of the 4 rows
    u[4 * k + 1] = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2));  // column 1 (and 5)
    u[4 * k + 2] = _mm256_shuffle_ps(c, d, _MM_SHUFFLE(1, 0, 1, 0));  // column 2 (and 6)
    u[4 * k + 3] = _mm256_shuffle_ps(c, d, _MM_SHUFFLE(3, 2, 3, 2));  // column 3 (and 7)
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
  }
}

}  // namespace
}  // namespace avx2
}  // namespace cpucnn
