// int8 GEMM, AVX-512 VNNI: vpdpbusd on 512-bit registers, 4 rows x 32
// columns a tile (8 accumulators). Compiled with -mavx512vnni; run only where
// CPUID says so.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8.hpp"

namespace cpucnn {

namespace {

inline void store_row(__m512i v0, __m512i v1, int64_t r, int64_t nc, const QGemmOut& o) {
  const __m512i ib = _mm512_set1_epi32(o.ibias[r]);
  const __m512 mu = _mm512_set1_ps(o.mult[r]), ad = _mm512_set1_ps(o.add[r]);
  __m512 f0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(v0, ib)), mu, ad);
  __m512 f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(v1, ib)), mu, ad);
  const int64_t base = r * o.row_stride;
  if (o.y8) {
    const __m512 lo = _mm512_set1_ps(o.lo), hi = _mm512_set1_ps(o.hi);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(f0, lo), hi));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(f1, lo), hi));
    if (o.col_stride == 1) {
      const int64_t n0 = nc < 16 ? nc : 16, n1 = nc - n0;
      _mm_mask_storeu_epi8(o.y8 + base, static_cast<__mmask16>((1u << n0) - 1), _mm512_cvtepi32_epi8(q0));
      if (n1 > 0)
        _mm_mask_storeu_epi8(o.y8 + base + 16, static_cast<__mmask16>((1u << n1) - 1), _mm512_cvtepi32_epi8(q1));
    } else {
      alignas(64) int32_t t[32];
      _mm512_store_si512(t, q0);
      _mm512_store_si512(t + 16, q1);
      for (int64_t j = 0; j < nc; ++j) o.y8[base + j * o.col_stride] = static_cast<uint8_t>(t[j]);
    }
  } else {
    if (o.relu) {
      f0 = _mm512_max_ps(f0, _mm512_setzero_ps());
      f1 = _mm512_max_ps(f1, _mm512_setzero_ps());
    }
    if (o.col_stride == 1) {
      const int64_t n0 = nc < 16 ? nc : 16, n1 = nc - n0;
      _mm512_mask_storeu_ps(o.yf + base, static_cast<__mmask16>((1u << n0) - 1), f0);
      if (n1 > 0) _mm512_mask_storeu_ps(o.yf + base + 16, static_cast<__mmask16>((1u << n1) - 1), f1);
    } else {
      alignas(64) float t[32];
      _mm512_store_ps(t, f0);
      _mm512_store_ps(t + 16, f1);
      for (int64_t j = 0; j < nc; ++j) o.yf[base + j * o.col_stride] = t[j];
    }
  }
}

}  // namespace

void qgemm_avx512vnni(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o) {
  constexpr int64_t nr = 32;
  for (int64_t r0 = 0; r0 < m; r0 += kQPanelRows) {
    const int8_t* ap = a + (r0 / kQPanelRows) * k4 * 16;
    __m512i vacc00 = _mm512_setzero_si512(), vacc01 = _mm512_setzero_si512();
    __m512i vacc10 = _mm512_setzero_si512(), vacc11 = _mm512_setzero_si512();
    __m512i vacc20 = _mm512_setzero_si512(), vacc21 = _mm512_setzero_si512();
    __m512i vacc30 = _mm512_setzero_si512(), vacc31 = _mm512_setzero_si512();
    const uint8_t* bp = b;
    for (int64_t g = 0; g < k4; ++g, ap += 16, bp += nr * 4) {
      const __m512i vb0 = _mm512_loadu_si512(bp);
      const __m512i vb1 = _mm512_loadu_si512(bp + 64);
      const float* wf = reinterpret_cast<const float*>(ap);
      const __m512i va0 = _mm512_castps_si512(_mm512_set1_ps(wf[0]));
      const __m512i va1 = _mm512_castps_si512(_mm512_set1_ps(wf[1]));
      const __m512i va2 = _mm512_castps_si512(_mm512_set1_ps(wf[2]));
      const __m512i va3 = _mm512_castps_si512(_mm512_set1_ps(wf[3]));
      vacc00 = _mm512_dpbusd_epi32(vacc00, vb0, va0);
      vacc01 = _mm512_dpbusd_epi32(vacc01, vb1, va0);
      vacc10 = _mm512_dpbusd_epi32(vacc10, vb0, va1);
      vacc11 = _mm512_dpbusd_epi32(vacc11, vb1, va1);
      vacc20 = _mm512_dpbusd_epi32(vacc20, vb0, va2);
      vacc21 = _mm512_dpbusd_epi32(vacc21, vb1, va2);
      vacc30 = _mm512_dpbusd_epi32(vacc30, vb0, va3);
      vacc31 = _mm512_dpbusd_epi32(vacc31, vb1, va3);
    }
    const int64_t rows = m - r0 < kQPanelRows ? m - r0 : kQPanelRows;
    store_row(vacc00, vacc01, r0, nc, o);
    if (rows > 1) store_row(vacc10, vacc11, r0 + 1, nc, o);
    if (rows > 2) store_row(vacc20, vacc21, r0 + 2, nc, o);
    if (rows > 3) store_row(vacc30, vacc31, r0 + 3, nc, o);
  }
}

}  // namespace cpucnn
