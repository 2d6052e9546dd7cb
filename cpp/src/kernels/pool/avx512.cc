// AVX-512 max pooling for the common 2x2 / stride 2 / no padding case, 16
// outputs per step; other shapes use the scalar kernel. Same tie-breaking as
// the scalar reference: the first maximum in window order, NaN wins.
#include <immintrin.h>

#include "kernels/avx512_lanes.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

using avx512::first_lanes;

// Takes v when it beats best: larger, or NaN while best is not.
inline void pick(__m512 v, int k, __m512& best, __m512i& arg) {
  const __mmask16 nan_best = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
  const __mmask16 take = static_cast<__mmask16>(
      (_mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) & ~nan_best);
  best = _mm512_mask_mov_ps(best, take, v);
  arg = _mm512_mask_mov_epi32(arg, take, _mm512_set1_epi32(k));
}

void maxpool2x2_avx512(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  const __m512i even = avx512::even_lanes(), odd = avx512::odd_lanes();
  const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
  for (int64_t c = 0; c < planes; ++c) {
    const float* xc = x + c * in_plane;
    float* yc = y + c * out_plane;
    int32_t* ac = argmax ? argmax + c * out_plane : nullptr;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      const float* r0 = xc + 2 * oh * p.w;
      const float* r1 = r0 + p.w;
      for (int64_t ow = 0; ow < p.wo; ow += 16) {
        const int64_t m = p.wo - ow;
        const __mmask16 mo = first_lanes(m);
        const __mmask16 mlo = first_lanes(2 * m), mhi = first_lanes(2 * m - 16);
        const __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ow + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ow + 16);
        __m512 best = _mm512_permutex2var_ps(a0, even, a1);
        __m512i arg = _mm512_setzero_si512();
        pick(_mm512_permutex2var_ps(a0, odd, a1), 1, best, arg);
        pick(_mm512_permutex2var_ps(b0, even, b1), 2, best, arg);
        pick(_mm512_permutex2var_ps(b0, odd, b1), 3, best, arg);
        _mm512_mask_storeu_ps(yc + oh * p.wo + ow, mo, best);
        if (ac) {
          // index = (2*oh + k/2) * w + 2*ow + 2*lane + k%2
          const __m512i row = _mm512_srli_epi32(arg, 1), colbit = _mm512_and_si512(arg, _mm512_set1_epi32(1));
          __m512i idx = _mm512_mullo_epi32(_mm512_add_epi32(row, _mm512_set1_epi32(static_cast<int>(2 * oh))),
                                           _mm512_set1_epi32(static_cast<int>(p.w)));
          idx = _mm512_add_epi32(idx, _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(2 * ow)), lane2));
          idx = _mm512_add_epi32(idx, colbit);
          _mm512_mask_storeu_epi32(ac + oh * p.wo + ow, mo, idx);
        }
      }
    }
  }
}

// dx from dy and the forward's argmax: every input pixel lies in at most one
// window, so each pair of input rows is written once, in full (no clearing
// pass and no scatter): lanes take dy where the argmax points at them.
void maxpool2x2_bwd_avx512(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p) {
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  const __m512i zip_lo = avx512::zip_lo(), zip_hi = avx512::zip_hi();
  const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
  const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32(static_cast<int>(p.w));
  const __m512i below_right = _mm512_set1_epi32(static_cast<int>(p.w + 1));
  for (int64_t c = 0; c < planes; ++c) {
    float* dxc = dx + c * in_plane;
    const float* dyc = dy + c * out_plane;
    const int32_t* ac = argmax + c * out_plane;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      float* top = dxc + 2 * oh * p.w;
      float* bottom = top + p.w;
      for (int64_t ow = 0; ow < p.wo; ow += 16) {
        const int64_t m = p.wo - ow;
        const __mmask16 mo = first_lanes(m);
        const __mmask16 mlo = first_lanes(2 * m), mhi = first_lanes(2 * m - 16);
        const __m512 d = _mm512_maskz_loadu_ps(mo, dyc + oh * p.wo + ow);
        const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(2 * oh * p.w + 2 * ow)), lane2);
        const __m512i rel = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(mo, ac + oh * p.wo + ow), base);
        const __m512 e0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, _mm512_setzero_si512()), d);
        const __m512 e1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, one), d);
        const __m512 e2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, below), d);
        const __m512 e3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(rel, below_right), d);
        _mm512_mask_storeu_ps(top + 2 * ow, mlo, _mm512_permutex2var_ps(e0, zip_lo, e1));
        _mm512_mask_storeu_ps(top + 2 * ow + 16, mhi, _mm512_permutex2var_ps(e0, zip_hi, e1));
        _mm512_mask_storeu_ps(bottom + 2 * ow, mlo, _mm512_permutex2var_ps(e2, zip_lo, e3));
        _mm512_mask_storeu_ps(bottom + 2 * ow + 16, mhi, _mm512_permutex2var_ps(e2, zip_hi, e3));
      }
      for (int64_t q = 2 * p.wo; q < p.w; ++q) top[q] = bottom[q] = 0.0f;  // a last odd column: no window
    }
    for (int64_t i = 2 * p.ho * p.w; i < in_plane; ++i) dxc[i] = 0.0f;  // a last odd row
  }
}

}  // namespace

void maxpool2d_bwd_avx512(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p) {
  if (p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0)
    return maxpool2x2_bwd_avx512(dy, argmax, dx, planes, p);
  maxpool2d_bwd_scalar(dy, argmax, dx, planes, p);
}

void maxpool2d_fwd_avx512(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  if (p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0)
    return maxpool2x2_avx512(x, y, argmax, planes, p);
  maxpool2d_fwd_scalar(x, y, argmax, planes, p);
}

}  // namespace cpucnn
