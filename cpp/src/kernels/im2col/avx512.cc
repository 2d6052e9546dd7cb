// im2col / col2im for AVX-512. With stride 1 along W, each output row of a
// kernel tap is one masked load and one masked store per 16 columns: the
// mask covers the columns that read inside the input row, the rest are
// zeros. Other strides use the shared generic bodies (im2col.inc).
#include <immintrin.h>

#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

#include "kernels/im2col/im2col.inc"

namespace {

inline __mmask16 range_mask(int64_t lo, int64_t hi) {  // lanes [lo, hi) of 0..15, clipped
  if (lo < 0) lo = 0;
  if (hi > 16) hi = 16;
  if (hi <= lo) return 0;
  return static_cast<__mmask16>(((1u << (hi - lo)) - 1u) << lo);
}

}  // namespace

void im2col_avx512(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol) {
  if (g.sw != 1) return im2col_impl(x, g, channels, col, ldcol);
  const int64_t wo = g.wo;
  const __m512 vzero = _mm512_setzero_ps();
  for (int64_t i = 0; i < g.kh; ++i) {
    for (int64_t j = 0; j < g.kw; ++j) {
      const Tap t = make_tap(g, i, j);
      for (int64_t c = 0; c < channels; ++c) {
        const float* xc = x + c * g.h * g.w;
        float* row = col + ((c * g.kh + i) * g.kw + j) * ldcol;
        for (int64_t q = 0; q < t.oh_lo * wo; ++q) row[q] = 0.0f;
        for (int64_t q = t.oh_hi * wo; q < g.ho * wo; ++q) row[q] = 0.0f;
        for (int64_t oh = t.oh_lo; oh < t.oh_hi; ++oh) {
          float* d = row + oh * wo;
          const float* src = xc + (oh * g.sh + t.row0) * g.w + t.off;
          for (int64_t ow = 0; ow < wo; ow += 16) {
            const __mmask16 store = range_mask(0, wo - ow);
            const __mmask16 load = range_mask(t.lo - ow, t.hi - ow);
            // Masked-off lanes are not read, so src may point outside the row there.
            _mm512_mask_storeu_ps(d + ow, store, _mm512_mask_loadu_ps(vzero, load, src + ow));
          }
        }
      }
    }
  }
}

void col2im_avx512(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x) {
  if (g.sw != 1) return col2im_impl(col, ldcol, g, channels, x);
  const int64_t wo = g.wo;
  for (int64_t i = 0; i < g.kh; ++i) {
    for (int64_t j = 0; j < g.kw; ++j) {
      const Tap t = make_tap(g, i, j);
      if (t.oh_hi <= t.oh_lo || t.hi <= t.lo) continue;
      for (int64_t c = 0; c < channels; ++c) {
        float* xc = x + c * g.h * g.w;
        const float* row = col + ((c * g.kh + i) * g.kw + j) * ldcol;
        for (int64_t oh = t.oh_lo; oh < t.oh_hi; ++oh) {
          const float* s = row + oh * wo;
          float* d = xc + (oh * g.sh + t.row0) * g.w + t.off;
          for (int64_t ow = t.lo; ow < t.hi; ow += 16) {
            const __mmask16 m = range_mask(0, t.hi - ow);
            const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + ow), _mm512_maskz_loadu_ps(m, s + ow));
            _mm512_mask_storeu_ps(d + ow, m, v);
          }
        }
      }
    }
  }
}

}  // namespace cpucnn
