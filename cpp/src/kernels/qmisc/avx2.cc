// Quantize / dequantize / 2x2 stride-2 u8 max pooling on AVX2 (other pool
// shapes, and rows under 4 outputs: the scalar kernel). Equal to the scalar
// references bit for bit.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8.hpp"
#include "kernels/params.hpp"

namespace cpucnn {

void quantize_u7_avx2(const float* x, uint8_t* q, int64_t n, float scale, float zp) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(127.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 v0 = _mm256_div_ps(_mm256_loadu_ps(x + i), s), v1 = _mm256_div_ps(_mm256_loadu_ps(x + i + 8), s);
    v0 = _mm256_add_ps(_mm256_round_ps(v0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
    v1 = _mm256_add_ps(_mm256_round_ps(v1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
    const __m256i q0 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v0, lo), hi));
    const __m256i q1 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v1, lo), hi));
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i),
                     _mm_packus_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)));
  }
  if (i < n) quantize_u7_scalar(x + i, q + i, n - i, scale, zp);
}

void dequantize_u8_avx2(const uint8_t* q, float* x, int64_t n, float scale, float zp) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_sub_ps(v, z), s));
  }
  if (i < n) dequantize_u8_scalar(q + i, x + i, n - i, scale, zp);
}

namespace {

// 2x2 stride-2 maximum of outputs [ow, ow + 16) / [ow, ow + 8) / [ow, ow + 4) of one output row
// from input rows r0, r1 (reading input columns [2 ow, 2 ow + 2 * width) only).
inline void pool2x2_16(const uint8_t* r0, const uint8_t* r1, int64_t ow, uint8_t* yr) {
  const __m256i v = _mm256_max_epu8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + 2 * ow)),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + 2 * ow)));
  const __m256i m = _mm256_max_epu16(_mm256_and_si256(v, _mm256_set1_epi16(0x00FF)), _mm256_srli_epi16(v, 8));
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(m, m), 0xD8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(yr + ow), _mm256_castsi256_si128(packed));
}

inline __m128i pool2x2_pairs(__m128i v) {
  return _mm_max_epu16(_mm_and_si128(v, _mm_set1_epi16(0x00FF)), _mm_srli_epi16(v, 8));
}

inline void pool2x2_8(const uint8_t* r0, const uint8_t* r1, int64_t ow, uint8_t* yr) {
  const __m128i v = _mm_max_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + 2 * ow)),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + 2 * ow)));
  const __m128i m = pool2x2_pairs(v);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(yr + ow), _mm_packus_epi16(m, m));
}

inline void pool2x2_4(const uint8_t* r0, const uint8_t* r1, int64_t ow, uint8_t* yr) {
  const __m128i v = _mm_max_epu8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + 2 * ow)),
                                 _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + 2 * ow)));
  const __m128i m = pool2x2_pairs(v);
  const int32_t four = _mm_cvtsi128_si32(_mm_packus_epi16(m, m));
  std::memcpy(yr + ow, &four, 4);
}

}  // namespace

void qmaxpool2d_avx2(const uint8_t* x, uint8_t* y, int64_t planes, const Pool2dParams& p) {
  if (p.kh != 2 || p.kw != 2 || p.sh != 2 || p.sw != 2 || p.ph != 0 || p.pw != 0 || p.wo < 4)
    return qmaxpool2d_scalar(x, y, planes, p);
  // Narrow rows too (convnet_s's 24 -> 12, LeNet's 28 -> 14 and 10 -> 5): the last chunk of a row
  // overlaps the one before it (the same values written twice) instead of a scalar tail.
  for (int64_t c = 0; c < planes; ++c) {
    const uint8_t* xp = x + c * p.h * p.w;
    uint8_t* yp = y + c * p.ho * p.wo;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      const uint8_t* r0 = xp + 2 * oh * p.w;
      const uint8_t* r1 = r0 + p.w;
      uint8_t* yr = yp + oh * p.wo;
      if (p.wo >= 16) {
        int64_t ow = 0;
        for (; ow + 16 <= p.wo; ow += 16) pool2x2_16(r0, r1, ow, yr);
        if (ow < p.wo) pool2x2_16(r0, r1, p.wo - 16, yr);
      } else if (p.wo >= 8) {
        pool2x2_8(r0, r1, 0, yr);
        pool2x2_8(r0, r1, p.wo - 8, yr);
      } else {
        pool2x2_4(r0, r1, 0, yr);
        pool2x2_4(r0, r1, p.wo - 4, yr);
      }
    }
  }
}

}  // namespace cpucnn
