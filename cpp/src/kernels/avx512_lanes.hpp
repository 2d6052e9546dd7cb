// Lane masks and permute indices shared by the AVX-512 kernels. Include only
// from kernels/<op>/avx512.cc (compiled with the AVX-512 flags). Everything
// here is a function, never a namespace-scope vector constant: those get a
// static initialiser that would run AVX-512 instructions when the library
// loads, on every CPU.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace cpucnn {
namespace avx512 {

// Lanes [lo, hi) of 0..15, clipped.
inline __mmask16 lanes(int64_t lo, int64_t hi) {
  const unsigned l = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(lo, 0), 16));
  const unsigned h = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(hi, 0), 16));
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

}  // namespace avx512
}  // namespace cpucnn
