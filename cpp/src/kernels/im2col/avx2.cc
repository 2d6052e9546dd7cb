// im2col / col2im compiled for avx2 (the bodies are shared: im2col.inc), and
// the implicit im2col that packs GEMM B panels straight from the image.
#include <immintrin.h>

#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

#include "kernels/im2col/im2col.inc"

void im2col_avx2(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol) {
  im2col_impl(x, g, channels, col, ldcol);
}

void col2im_avx2(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x) {
  col2im_impl(col, ldcol, g, channels, x);
}

namespace {

// A run of panel columns that are consecutive pixels of one output row.
struct Segment {
  int64_t dst;  // first column within the panel
  int64_t len;  // columns (<= 16)
  int64_t src;  // sample offset + the input column of ow0 (before the tap's shift)
  int64_t oh;   // output row
  int64_t ow0;  // output column of the first pixel
};

constexpr int64_t kMaxPackRows = kGemmKc;

// Lanes [lo, hi) of 0..7 set, as an integer mask for maskload / maskstore.
inline __m256i range_mask(int64_t lo, int64_t hi) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int l = static_cast<int>(imin(imax(lo, 0), 8)), h = static_cast<int>(imin(imax(hi, 0), 8));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(l), lane),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(h), lane));
}

}  // namespace

// Panels are kGemmNrAvx2 (16) columns wide. Rows p are taps (c, i, j);
// columns are pixels (sample, oh, ow). Stride 1 along W only. The taps of
// the block are resolved once, each panel's segments once, then every
// (tap, segment) is a load and a store per 8 columns. No masked stores
// (slow on some CPUs): a store writes 8 lanes even past the segment, into
// columns the next segment (or the next panel row, packed later) overwrites;
// only the very last row of the block, whose overflow would leave the
// buffer, stores exactly. Masked loads where a store's 8 lanes would read
// outside the input row, or past the data of a ragged last panel (whose
// columns past the data must be zeros).
void im2col_pack_avx2(const void* args, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  constexpr int64_t NR = kGemmNrAvx2;
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
  const __m256 vzero = _mm256_setzero_ps();
  const int64_t panels = (nc + NR - 1) / NR;
  for (int64_t pn = 0; pn < panels; ++pn) {
    Segment seg[NR];
    int nseg = 0;
    const int64_t cols = imin(NR, nc - pn * NR);
    const bool ragged = cols < NR;
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
      const bool exact = pn == panels - 1 && r == kc - 1;  // overflow would leave the buffer
      if (ragged) {  // zero columns past the data
        _mm256_storeu_ps(d, vzero);
        _mm256_storeu_ps(d + 8, vzero);
      }
      const float* xc = a.x + chan[r];
      for (int s = 0; s < nseg; ++s) {
        const Segment& sg = seg[s];
        const int64_t ih = sg.oh * g.sh + t.row0;
        const bool row_in = ih >= 0 && ih < g.h;
        const float* src = xc + sg.src + ih * g.w + t.off;
        for (int64_t k = 0; k < sg.len; k += 8) {
          const int64_t ow = sg.ow0 + k, n = sg.len - k;
          __m256 v;
          if (!row_in) {
            v = vzero;
          } else if (ow >= t.lo && ow + 8 <= t.hi && (n >= 8 || !ragged)) {
            v = _mm256_loadu_ps(src + ow);  // inside the row; lanes past n are overwritten later
          } else {
            // Masked-off lanes are not read, so src may point outside the row there.
            v = _mm256_maskload_ps(src + ow, range_mask(t.lo - ow, imin(t.hi - ow, n)));
          }
          if (exact && n < 8)
            _mm256_maskstore_ps(d + sg.dst + k, range_mask(0, n), v);
          else
            _mm256_storeu_ps(d + sg.dst + k, v);
        }
      }
    }
  }
}

}  // namespace cpucnn
