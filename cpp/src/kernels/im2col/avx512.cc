// im2col / col2im for AVX-512. With stride 1 along W, each output row of a
// kernel tap is one masked load and one masked store per 16 columns: the
// mask covers the columns that read inside the input row, the rest are
// zeros. Other strides use the shared generic bodies (im2col.inc).
#include <immintrin.h>

#include <algorithm>
#include <vector>

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

namespace cpucnn {

namespace {

// A run of panel columns that are consecutive pixels of one output row.
struct Segment {
  int32_t dst;      // first column within the panel
  int32_t len;      // columns (<= 32)
  int64_t src;      // offset of the row's first pixel's input row base: sample*stride + oh*sh*w + ow0*sw
  int64_t oh, ow0;  // output row and column of the first pixel
};

}  // namespace

// Panels are kGemmNrAvx512 (32) columns wide. Rows p are taps (c, i, j);
// columns are pixels (sample, oh, ow). Stride 1 along W only.
void im2col_pack_avx512(const void* args, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  constexpr int64_t NR = kGemmNrAvx512;
  const Im2colPackArgs& a = *static_cast<const Im2colPackArgs*>(args);
  const ConvGeometry& g = *a.geo;
  const int64_t P = g.ho * g.wo, taps = g.kh * g.kw, hw = g.h * g.w;
  const int64_t panels = (nc + NR - 1) / NR;
  thread_local std::vector<Segment> segs;
  thread_local std::vector<int32_t> first;  // index of each panel's first segment, plus an end marker
  segs.clear();
  first.assign(panels + 1, 0);
  for (int64_t pn = 0; pn < panels; ++pn) {
    first[pn] = static_cast<int32_t>(segs.size());
    const int64_t cols = std::min(NR, nc - pn * NR);
    int64_t col = 0;
    while (col < cols) {
      const int64_t j = j0 + pn * NR + col;
      const int64_t sidx = j / P, q = j % P, oh = q / g.wo, ow = q % g.wo;
      const int64_t len = std::min(cols - col, g.wo - ow);
      segs.push_back(Segment{static_cast<int32_t>(col), static_cast<int32_t>(len), sidx * a.sample_stride, oh, ow});
      col += len;
    }
  }
  first[panels] = static_cast<int32_t>(segs.size());
  const __m512 vzero = _mm512_setzero_ps();
  for (int64_t p = p0; p < p0 + kc; ++p) {
    const int64_t c = p / taps, i = (p / g.kw) % g.kh, jj = p % g.kw;
    const Tap t = make_tap(g, i, jj);
    const float* xc = a.x + c * hw;
    for (int64_t pn = 0; pn < panels; ++pn) {
      float* d = dst + pn * kc * NR + (p - p0) * NR;
      // Columns beyond the last segment (a ragged last panel) are zero.
      _mm512_storeu_ps(d, vzero);
      _mm512_storeu_ps(d + 16, vzero);
      for (int32_t sg = first[pn]; sg < first[pn + 1]; ++sg) {
        const Segment& s = segs[sg];
        const int64_t ih = s.oh * g.sh + t.row0;
        if (ih < 0 || ih >= g.h) continue;  // stays zero
        const float* src = xc + s.src + ih * g.w + t.off;
        for (int64_t k = 0; k < s.len; k += 16) {
          const int64_t ow = s.ow0 + k;
          const __mmask16 store = range_mask(0, s.len - k);
          const __mmask16 load = static_cast<__mmask16>(store & range_mask(t.lo - ow, t.hi - ow));
          _mm512_mask_storeu_ps(d + s.dst + k, store, _mm512_mask_loadu_ps(vzero, load, src + ow));
        }
      }
    }
  }
}

}  // namespace cpucnn
