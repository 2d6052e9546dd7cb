// AVX2 max pooling for the common 2x2 / stride 2 / no padding case, 8
// outputs per step; other shapes, and the backward of rows narrower than 8
// outputs, use the scalar kernel. Bit-for-bit the
// scalar kernel's results: the first maximum in window order, NaN wins, the
// same argmax (ties and NaN included), and dx of +0 where dy is -0 (the
// scalar backward adds dy to a cleared dx).
#include <immintrin.h>

#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

namespace {

// The first n (0..8) lanes set: an integer mask for maskload.
inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Lanes whose argmax offset rel equals k, as a float mask.
inline __m256 take(__m256i rel, __m256i k) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(rel, k)); }

// Takes v (its window offset off) where it beats best: larger, or NaN while
// best is not. !(v <= best) is "v larger, or either NaN"; a NaN best stays.
inline void pick(__m256 v, __m256i off, __m256& best, __m256i& arg) {
  const __m256 wins = _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_NLE_UQ), _mm256_cmp_ps(best, best, _CMP_ORD_Q));
  best = _mm256_blendv_ps(best, v, wins);
  arg = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(arg), _mm256_castsi256_ps(off), wins));
}

// Even and odd elements of a 16-float row stretch (a = first 8, b = next 8),
// in the order shuffle_ps leaves them: outputs 0 1 4 5 | 2 3 6 7. The
// comparisons run in that order; the results are put back in order once.
inline __m256 evens(__m256 a, __m256 b) { return _mm256_shuffle_ps(a, b, 0x88); }
inline __m256 odds(__m256 a, __m256 b) { return _mm256_shuffle_ps(a, b, 0xDD); }
inline __m256 in_order(__m256 v) { return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8)); }
inline __m256i in_order(__m256i v) { return _mm256_permute4x64_epi64(v, 0xD8); }

// 8 outputs from rows r0, r1 (a0/a1: r0's 16 floats, b0/b1: r1's); off gets
// the argmax as an offset from the window's top-left pixel.
inline void window8(__m256 a0, __m256 a1, __m256 b0, __m256 b1, int64_t w, __m256& best, __m256i& off) {
  best = evens(a0, a1);
  off = _mm256_setzero_si256();
  pick(odds(a0, a1), _mm256_set1_epi32(1), best, off);
  pick(evens(b0, b1), _mm256_set1_epi32(static_cast<int>(w)), best, off);
  pick(odds(b0, b1), _mm256_set1_epi32(static_cast<int>(w + 1)), best, off);
  best = in_order(best);
  off = in_order(off);
}

void maxpool2x2_avx2(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  // Rows of >= 8 outputs: the last 8 of a row overlap the step before when
  // wo is no multiple of 8 (recomputing a few outputs, alike). Narrower
  // rows: one step of masked loads (no read past the 2*wo floats of each
  // input row), stored through a buffer.
  const bool wide = p.wo >= 8;
  const __m256i lo = first_lanes(2 * p.wo), hi = first_lanes(2 * p.wo - 8);
  for (int64_t c = 0; c < planes; ++c) {
    const float* xc = x + c * in_plane;
    float* yc = y + c * out_plane;
    int32_t* ac = argmax ? argmax + c * out_plane : nullptr;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      const float* r0 = xc + 2 * oh * p.w;
      const float* r1 = r0 + p.w;
      float* yr = yc + oh * p.wo;
      int32_t* ar = ac ? ac + oh * p.wo : nullptr;
      const int64_t row_base = 2 * oh * p.w;
      for (int64_t step = 0; step < p.wo; step += 8) {
        const int64_t ow = wide ? imin(step, p.wo - 8) : 0;
        __m256 best;
        __m256i off;
        if (wide)
          window8(_mm256_loadu_ps(r0 + 2 * ow), _mm256_loadu_ps(r0 + 2 * ow + 8), _mm256_loadu_ps(r1 + 2 * ow),
                  _mm256_loadu_ps(r1 + 2 * ow + 8), p.w, best, off);
        else
          window8(_mm256_maskload_ps(r0, lo), _mm256_maskload_ps(r0 + 8, hi), _mm256_maskload_ps(r1, lo),
                  _mm256_maskload_ps(r1 + 8, hi), p.w, best, off);
        // index = 2*oh*w + 2*ow + 2*lane + offset within the window
        const __m256i idx =
            _mm256_add_epi32(_mm256_add_epi32(off, lane2), _mm256_set1_epi32(static_cast<int>(row_base + 2 * ow)));
        if (wide) {
          _mm256_storeu_ps(yr + ow, best);
          if (ar) _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + ow), idx);
        } else {
          alignas(32) float vb[8];
          alignas(32) int32_t vi[8];
          _mm256_store_ps(vb, best);
          _mm256_store_si256(reinterpret_cast<__m256i*>(vi), idx);
          for (int64_t q = 0; q < p.wo; ++q) yr[q] = vb[q];
          if (ar)
            for (int64_t q = 0; q < p.wo; ++q) ar[q] = vi[q];
        }
      }
    }
  }
}

// dx from dy and the forward's argmax: every input pixel lies in at most one
// window, so each pair of input rows is written once, in full (no clearing
// pass and no scatter): lanes take dy where the argmax points at them.
// Rows of at least 8 outputs only (the last 8 of a row overlap the step
// before when wo is no multiple of 8, writing the same values again).
void maxpool2x2_bwd_avx2(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p) {
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), below = _mm256_set1_epi32(static_cast<int>(p.w));
  const __m256i below_right = _mm256_set1_epi32(static_cast<int>(p.w + 1));
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t c = 0; c < planes; ++c) {
    float* dxc = dx + c * in_plane;
    const float* dyc = dy + c * out_plane;
    const int32_t* ac = argmax + c * out_plane;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      float* top = dxc + 2 * oh * p.w;
      float* bottom = top + p.w;
      const float* dr = dyc + oh * p.wo;
      const int32_t* ar = ac + oh * p.wo;
      for (int64_t step = 0; step < p.wo; step += 8) {
        const int64_t ow = imin(step, p.wo - 8);
        const __m256 d = _mm256_loadu_ps(dr + ow);
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + ow));
        const __m256i base = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(2 * oh * p.w + 2 * ow)), lane2);
        const __m256i rel = _mm256_sub_epi32(a, base);
        // + 0: a -0 gradient lands as +0, as 0 + dy does in the scalar kernel
        const __m256 e0 = _mm256_add_ps(_mm256_and_ps(take(rel, _mm256_setzero_si256()), d), zero);
        const __m256 e1 = _mm256_add_ps(_mm256_and_ps(take(rel, one), d), zero);
        const __m256 e2 = _mm256_add_ps(_mm256_and_ps(take(rel, below), d), zero);
        const __m256 e3 = _mm256_add_ps(_mm256_and_ps(take(rel, below_right), d), zero);
        // zip: unpack works within 128-bit halves (outputs 0 1 | 4 5 and 2 3 | 6 7)
        const __m256 t_lo = _mm256_unpacklo_ps(e0, e1), t_hi = _mm256_unpackhi_ps(e0, e1);
        const __m256 b_lo = _mm256_unpacklo_ps(e2, e3), b_hi = _mm256_unpackhi_ps(e2, e3);
        _mm256_storeu_ps(top + 2 * ow, _mm256_permute2f128_ps(t_lo, t_hi, 0x20));
        _mm256_storeu_ps(top + 2 * ow + 8, _mm256_permute2f128_ps(t_lo, t_hi, 0x31));
        _mm256_storeu_ps(bottom + 2 * ow, _mm256_permute2f128_ps(b_lo, b_hi, 0x20));
        _mm256_storeu_ps(bottom + 2 * ow + 8, _mm256_permute2f128_ps(b_lo, b_hi, 0x31));
      }
      for (int64_t q = 2 * p.wo; q < p.w; ++q) top[q] = bottom[q] = 0.0f;  // a last odd column: no window
    }
    for (int64_t i = 2 * p.ho * p.w; i < in_plane; ++i) dxc[i] = 0.0f;  // a last odd row
  }
}

}  // namespace

void maxpool2d_fwd_avx2(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  if (p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0)
    return maxpool2x2_avx2(x, y, argmax, planes, p);
  maxpool2d_fwd_scalar(x, y, argmax, planes, p);
}

void maxpool2d_bwd_avx2(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p) {
  // Rows narrower than 8 outputs: the scalar kernel (a clear and a scatter) is as fast.
  if (p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0 && p.wo >= 8)
    return maxpool2x2_bwd_avx2(dy, argmax, dx, planes, p);
  maxpool2d_bwd_scalar(dy, argmax, dx, planes, p);
}

}  // namespace cpucnn
