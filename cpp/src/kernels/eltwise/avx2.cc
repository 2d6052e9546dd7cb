#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

void relu_fwd_avx2(const float* x, float* y, int64_t n) {
  const __m256 vzero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(_mm256_loadu_ps(x + i), vzero));
  for (; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_bwd_avx2(const float* y, const float* dy, float* dx, int64_t n) {
  const __m256 vzero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vmask = _mm256_cmp_ps(_mm256_loadu_ps(y + i), vzero, _CMP_GT_OQ);
    _mm256_storeu_ps(dx + i, _mm256_and_ps(vmask, _mm256_loadu_ps(dy + i)));
  }
  for (; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

float sum_avx2(const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
  float acc = 0.0f;
  for (float v : lanes) acc += v;
  for (; i < n; ++i) acc += x[i];
  return acc;
}

}  // namespace cpucnn
