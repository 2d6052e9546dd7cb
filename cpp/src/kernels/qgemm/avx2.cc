// int8 GEMM, AVX2: vpmaddubsw (u8 x s8 pairs into int16; exact because
// activations are 7-bit, see kernels/int8.hpp) then vpmaddwd by ones (pairs
// of int16 into int32).
#define QGEMM_NAME qgemm_avx2
#define QDOT(acc, x, w) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones))
#include "kernels/qgemm/ymm.inc"

namespace cpucnn {

// One column: 8 output rows in the lanes (two 4-row panels, 16 bytes each a group).
void qgemv_avx2(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o) {
  const __m256i ones = _mm256_set1_epi16(1);
  const float* xf = reinterpret_cast<const float*>(x);
  int64_t r0 = 0;
  for (; r0 + 8 <= m; r0 += 8) {
    const int8_t* p0 = a + (r0 / kQPanelRows) * k4 * 16;
    const int8_t* p1 = p0 + k4 * 16;
    __m256i vacc0 = _mm256_setzero_si256(), vacc1 = _mm256_setzero_si256();
    int64_t g = 0;
    for (; g + 2 <= k4; g += 2) {
      const __m256i w0 = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p1 + g * 16),
                                             reinterpret_cast<const __m128i*>(p0 + g * 16));
      const __m256i w1 = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p1 + g * 16 + 16),
                                             reinterpret_cast<const __m128i*>(p0 + g * 16 + 16));
      QDOT(vacc0, _mm256_castps_si256(_mm256_broadcast_ss(xf + g)), w0);
      QDOT(vacc1, _mm256_castps_si256(_mm256_broadcast_ss(xf + g + 1)), w1);
    }
    for (; g < k4; ++g) {
      const __m256i w0 = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p1 + g * 16),
                                             reinterpret_cast<const __m128i*>(p0 + g * 16));
      QDOT(vacc0, _mm256_castps_si256(_mm256_broadcast_ss(xf + g)), w0);
    }
    const __m256i acc = _mm256_add_epi32(_mm256_add_epi32(vacc0, vacc1),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.ibias + r0)));
    __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(o.mult + r0), _mm256_loadu_ps(o.add + r0));
    alignas(32) float t[8];
    alignas(32) int32_t q[8];
    if (o.y8) {
      v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(o.lo)), _mm256_set1_ps(o.hi));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q), _mm256_cvtps_epi32(v));
      for (int j = 0; j < 8; ++j) o.y8[(r0 + j) * o.row_stride] = static_cast<uint8_t>(q[j]);
    } else {
      if (o.relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
      _mm256_store_ps(t, v);
      for (int j = 0; j < 8; ++j) o.yf[(r0 + j) * o.row_stride] = t[j];
    }
  }
  if (r0 < m) {  // the last rows (fewer than 8): the reference
    QGemmOut rest = o;
    rest.ibias += r0;
    rest.mult += r0;
    rest.add += r0;
    if (rest.y8) rest.y8 += r0 * o.row_stride;
    if (rest.yf) rest.yf += r0 * o.row_stride;
    qgemv_scalar(a + (r0 / kQPanelRows) * k4 * 16, m - r0, k4, x, rest);
  }
}

}  // namespace cpucnn
