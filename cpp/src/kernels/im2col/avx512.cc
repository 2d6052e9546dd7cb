// im2col / col2im for AVX-512. With stride 1 along W, each output row of a
// kernel tap is one masked load and one masked store per 16 columns: the
// mask covers the columns that read inside the input row, the rest are
// zeros. Other strides use the shared generic bodies (im2col.inc).
#include <immintrin.h>

#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

#include "kernels/im2col/im2col.inc"

namespace {

// Lanes [lo, hi) of 0..15, clipped; branch-free (clamps become cmovs).
inline __mmask16 range_mask(int64_t lo, int64_t hi) {
  const unsigned l = static_cast<unsigned>(imin(imax(lo, 0), 16));
  const unsigned h = static_cast<unsigned>(imin(imax(hi, 0), 16));
  return static_cast<__mmask16>(((1u << h) - 1u) & ~((1u << l) - 1u));
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

namespace cpucnn {

namespace {

// A run of panel columns that are consecutive pixels of one output row.
struct Segment {
  int64_t dst;      // first column within the panel
  int64_t len;      // columns (<= 32)
  int64_t src;      // sample offset + the input column of ow0 (before the tap's shift)
  int64_t oh;       // output row
  int64_t ow0;      // output column of the first pixel
};

constexpr int64_t kMaxPackRows = kGemmKc;

}  // namespace

// Panels are kGemmNrAvx512 (32) columns wide. Rows p are taps (c, i, j);
// columns are pixels (sample, oh, ow). Stride 1 along W only. The taps of
// the block are resolved once, each panel's segments once, then every
// (tap, segment) is one or two masked moves.
void im2col_pack_avx512(const void* args, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  constexpr int64_t NR = kGemmNrAvx512;
  const Im2colPackArgs& a = *static_cast<const Im2colPackArgs*>(args);
  const ConvGeometry& g = *a.geo;
  const int64_t P = g.ho * g.wo, taps = g.kh * g.kw, hw = g.h * g.w;
  Tap tap[kMaxPackRows];
  int64_t chan[kMaxPackRows];
  for (int64_t r = 0; r < kc; ++r) {
    const int64_t p = p0 + r;
    tap[r] = make_tap(g, (p / g.kw) % g.kh, p % g.kw);
    chan[r] = (p / taps) * hw;
  }
  const __m512 vzero = _mm512_setzero_ps();
  for (int64_t pn = 0; pn * NR < nc; ++pn) {
    Segment seg[NR];
    int nseg = 0;
    const int64_t cols = imin(NR, nc - pn * NR);
    for (int64_t col = 0; col < cols;) {
      const int64_t j = j0 + pn * NR + col;
      const int64_t sidx = j / P, q = j % P, oh = q / g.wo, ow = q % g.wo;
      const int64_t len = imin(cols - col, g.wo - ow);
      seg[nseg++] = Segment{col, len, sidx * a.sample_stride, oh, ow};
      col += len;
    }
    float* panel = dst + pn * kc * NR;
    for (int64_t r = 0; r < kc; ++r) {
      const Tap& t = tap[r];
      float* d = panel + r * NR;
      if (cols < NR) {  // ragged last panel: zero columns past the data
        _mm512_storeu_ps(d, vzero);
        _mm512_storeu_ps(d + 16, vzero);
      }
      const float* xc = a.x + chan[r];
      for (int s = 0; s < nseg; ++s) {
        const Segment& sg = seg[s];
        const int64_t ih = sg.oh * g.sh + t.row0;
        const bool row_in = ih >= 0 && ih < g.h;
        const float* src = xc + sg.src + ih * g.w + t.off;
        for (int64_t k = 0; k < sg.len; k += 16) {
          const int64_t ow = sg.ow0 + k;
          const __mmask16 store = range_mask(0, sg.len - k);
          const __mmask16 load = row_in ? static_cast<__mmask16>(store & range_mask(t.lo - ow, t.hi - ow)) : 0;
          _mm512_mask_storeu_ps(d + sg.dst + k, store, _mm512_maskz_loadu_ps(load, src + ow));
        }
      }
    }
  }
}

}  // namespace cpucnn
