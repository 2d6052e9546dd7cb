// Lane masks and permute indices shared by the AVX-512 kernels. Include only
// from kernels/<op>/avx512.cc (compiled with the AVX-512 flags). Everything
// here is a function, never a namespace-scope vector constant: those get a
// static initialiser that would run AVX-512 instructions when the library
// loads, on every CPU. And everything has internal linkage (an anonymous
// namespace), so no weak copy of a helper is shared with other files (see
// kernels/minmax.hpp).
#pragma once

#include <immintrin.h>

#include <stdint.h>

#include "kernels/minmax.hpp"

namespace cpucnn {
namespace avx512 {
namespace {

// Lanes [lo, hi) of 0..15, clipped.
inline __mmask16 lanes(int64_t lo, int64_t hi) {
  const unsigned l = static_cast<unsigned>(imin(imax(lo, 0), 16));
  const unsigned h = static_cast<unsigned>(imin(imax(hi, 0), 16));
  return static_cast<__mmask16>(((1u << h) - 1u) & ~((1u << l) - 1u));
}

// The first n lanes (n clipped to 0..16).
inline __mmask16 first_lanes(int64_t n) { return lanes(0, n); }

// permutex2var indices over two registers (lanes 0..31): even and odd lanes
// (split interleaved pairs), and the inverse, zipping a and b lane by lane
// (low and high halves).
inline __m512i even_lanes() { return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); }
inline __m512i odd_lanes() { return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31); }
inline __m512i zip_lo() { return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23); }
inline __m512i zip_hi() { return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31); }

// GCC 12 reports its own _mm512_undefined_ps() inside the unpack and
// shuffle intrinsics as uninitialised once inlined (GCC bug 105593,
// fixed in 13); the transposes below read only initialised registers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"

// out[i][j] = r[j][i] for a 16x16 block held in 16 registers.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // rows 4k..4k+3
    const __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * k + 1]), d = _mm512_castps_pd(t[4 * k + 3]);
    u[4 * k + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));  // column 4L+0 of rows 4k..4k+3, lane L
    u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));  // column 4L+1
    u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));  // column 4L+2
    u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));  // column 4L+3
  }
  for (int q = 0; q < 4; ++q) {  // columns q, q+4, q+8, q+12
    const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xdd);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xdd);
    r[q] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[q + 8] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
    r[q + 4] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[q + 12] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
  }
}
#pragma GCC diagnostic pop

}  // namespace
}  // namespace avx512
}  // namespace cpucnn
