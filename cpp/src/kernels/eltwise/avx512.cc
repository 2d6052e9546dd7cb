#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

void relu_fwd_avx512(const float* x, float* y, int64_t n) {
  const __m512 vzero = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_max_ps(vzero, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, tail, _mm512_max_ps(vzero, _mm512_maskz_loadu_ps(tail, x + i)));
  }
}

void relu_bwd_avx512(const float* y, const float* dy, float* dx, int64_t n) {
  const __m512 vzero = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), vzero, _CMP_GT_OQ);
    _mm512_storeu_ps(dx + i, _mm512_maskz_loadu_ps(pos, dy + i));
  }
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __mmask16 pos = _mm512_mask_cmp_ps_mask(tail, _mm512_maskz_loadu_ps(tail, y + i), vzero, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(dx + i, tail, _mm512_maskz_loadu_ps(pos, dy + i));
  }
}

double sum_avx512(const float* x, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  alignas(64) double lanes[8];  // (GCC 12's _mm512_reduce_add_pd trips -Wuninitialized)
  _mm512_store_pd(lanes, _mm512_add_pd(a0, a1));
  double acc = 0.0;
  for (double v : lanes) acc += v;
  return acc;
}

}  // namespace cpucnn
