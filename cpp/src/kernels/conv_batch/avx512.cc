// Direct convolution with 16 images in the vector lanes, for AVX-512: thin
// layers (a few output channels) on small maps, where a register along an
// image row leaves lanes idle (rows of 10 or 14 pixels) and, for the full
// convolution that backward-data is, multiplies the padding around the
// input. Here every lane is an image: all do useful work whatever the
// width, taps outside the input are skipped by row exactly and by column
// per block of 4 pixels (at most the block's edge pixels read padding).
//
// Per group of 16 images: the input is transposed into a zero-padded buffer
// [ci][row][column][image], the output accumulated in [co][row][column][image]
// and transposed back into planes with the bias and ReLU. A missing image
// of the last group is a lane of zeros.
#include <immintrin.h>

#include <string.h>

#include "kernels/avx512_lanes.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

namespace {

using avx512::first_lanes;
using avx512::transpose16;

constexpr int kPx = 4;  // output pixels of a row per block
constexpr int kCo = 6;  // output channels per block (kCo x kPx accumulators)

// xb[ci][r + ph][c + pw][l] = x[image l][ci][r][c], zeros elsewhere.
void to_batch(const float* x, int64_t images, int64_t cin, const ConvGeometry& g, const PaddedPlane& pd, float* xb) {
  memset(xb, 0, static_cast<size_t>(cin * pd.hp * pd.wp * 16) * sizeof(float));
  const int64_t in_size = cin * g.h * g.w;
  for (int64_t ci = 0; ci < cin; ++ci) {
    for (int64_t r = 0; r < g.h; ++r) {
      for (int64_t c0 = 0; c0 < g.w; c0 += 16) {
        const __mmask16 m = first_lanes(g.w - c0);
        __m512 v[16];
        for (int l = 0; l < 16; ++l)
          v[l] = l < images ? _mm512_maskz_loadu_ps(m, x + l * in_size + (ci * g.h + r) * g.w + c0)
                            : _mm512_setzero_ps();
        transpose16(v);  // v[c]: column c0 + c of the 16 images
        float* dst = xb + ((ci * pd.hp + r + g.ph) * pd.wp + c0 + g.pw) * 16;
        const int64_t nc = imin(16, g.w - c0);
        for (int64_t c = 0; c < nc; ++c) _mm512_storeu_ps(dst + c * 16, v[c]);
      }
    }
  }
}

// y[image l][co] plane = yb[co][pixel][l] (+ bias, ReLU), images < `images`.
void from_batch(const float* yb, int64_t images, int64_t cout, int64_t pixels, const float* bias, bool relu,
                float* y) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t co = 0; co < cout; ++co) {
    const __m512 b = _mm512_set1_ps(bias ? bias[co] : 0.0f);
    for (int64_t p0 = 0; p0 < pixels; p0 += 16) {
      const int64_t np = imin(16, pixels - p0);
      __m512 v[16];
      for (int p = 0; p < 16; ++p) {
        v[p] = p < np ? _mm512_add_ps(_mm512_loadu_ps(yb + (co * pixels + p0 + p) * 16), b) : zero;
        if (relu) v[p] = _mm512_max_ps(zero, v[p]);
      }
      transpose16(v);  // v[l]: pixels p0.. of image l
      const __mmask16 m = first_lanes(np);
      for (int64_t l = 0; l < images; ++l) _mm512_mask_storeu_ps(y + (l * cout + co) * pixels + p0, m, v[l]);
    }
  }
}

// CO output channels from co0 x PX pixels from (oh, ow0): taps rows
// [i0, i1), columns [j0, j1).
template <int CO, int PX>
void block(const float* xb, const PaddedPlane& pd, const float* w, int64_t cin, const ConvGeometry& g, int64_t co0,
           int64_t oh, int64_t ow0, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* yb) {
  const int64_t taps = g.kh * g.kw, K = cin * taps, pixels = g.ho * g.wo;
  __m512 acc[CO][PX];
  for (int c = 0; c < CO; ++c)
    for (int p = 0; p < PX; ++p) acc[c][p] = _mm512_setzero_ps();
  for (int64_t ci = 0; ci < cin; ++ci) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* row = xb + ((ci * pd.hp + oh * g.sh + i * g.dh) * pd.wp + ow0) * 16;
      const float* wr = w + (co0 * cin + ci) * taps + i * g.kw;
      for (int64_t j = j0; j < j1; ++j) {
        __m512 xv[PX];
        for (int p = 0; p < PX; ++p) xv[p] = _mm512_loadu_ps(row + (p + j) * 16);
        for (int c = 0; c < CO; ++c) {
          const __m512 wv = _mm512_set1_ps(wr[c * K + j]);
          for (int p = 0; p < PX; ++p) acc[c][p] = _mm512_fmadd_ps(wv, xv[p], acc[c][p]);
        }
      }
    }
  }
  for (int c = 0; c < CO; ++c)
    for (int p = 0; p < PX; ++p) _mm512_storeu_ps(yb + ((co0 + c) * pixels + oh * g.wo + ow0 + p) * 16, acc[c][p]);
}

template <int PX>
void blocks(const float* xb, const PaddedPlane& pd, const float* w, int64_t cin, int64_t cout, const ConvGeometry& g,
            int64_t oh, int64_t ow0, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* yb) {
  for (int64_t co0 = 0; co0 < cout; co0 += kCo) {
    switch (imin(kCo, cout - co0)) {
#define CPUCNN_BLOCK(c) \
  case c: block<c, PX>(xb, pd, w, cin, g, co0, oh, ow0, i0, i1, j0, j1, yb); break;
      CPUCNN_BLOCK(6) CPUCNN_BLOCK(5) CPUCNN_BLOCK(4) CPUCNN_BLOCK(3) CPUCNN_BLOCK(2) CPUCNN_BLOCK(1)
#undef CPUCNN_BLOCK
      default: break;
    }
  }
}

// Weight gradient: dwb[co0 + c][ci][i][j][l] for CO output channels by
// the KW kernel columns of kernel row i, summed over the output pixels of a
// group (dyb: dy as [co][pixel][image]) and added to dwb: per-image
// partial sums, reduced across the lanes once at the end.
template <int CO, int KW>
void wblock(const float* xb, const PaddedPlane& pd, const float* dyb, float* dwb, int64_t cin, const ConvGeometry& g,
            int64_t co0, int64_t ci, int64_t i) {
  const int64_t pixels = g.ho * g.wo, taps = g.kh * KW;
  __m512 acc[CO][KW];
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KW; ++j) acc[c][j] = _mm512_loadu_ps(dwb + (((co0 + c) * cin + ci) * taps + i * KW + j) * 16);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const int64_t r = oh * g.sh + i * g.dh;  // padded row
    if (r < g.ph || r >= g.h + g.ph) continue;  // a row of padding adds nothing
    const float* row = xb + (ci * pd.hp + r) * pd.wp * 16;
    const float* d = dyb + (co0 * pixels + oh * g.wo) * 16;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      __m512 dv[CO];
      for (int c = 0; c < CO; ++c) dv[c] = _mm512_loadu_ps(d + (c * pixels + ow) * 16);
      for (int j = 0; j < KW; ++j) {
        const __m512 xv = _mm512_loadu_ps(row + (ow + j) * 16);
        for (int c = 0; c < CO; ++c) acc[c][j] = _mm512_fmadd_ps(dv[c], xv, acc[c][j]);
      }
    }
  }
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KW; ++j) _mm512_storeu_ps(dwb + (((co0 + c) * cin + ci) * taps + i * KW + j) * 16, acc[c][j]);
}

template <int KW>
void wblocks(const float* xb, const PaddedPlane& pd, const float* dyb, float* dwb, int64_t cin, int64_t cout,
             const ConvGeometry& g, int64_t ci, int64_t i) {
  constexpr int kMaxCo = 20 / KW;  // CO x KW accumulators + CO + 1 vectors within 32 registers
  for (int64_t co0 = 0; co0 < cout; co0 += kMaxCo) {
    switch (imin(kMaxCo, cout - co0)) {
#define CPUCNN_WBLOCK(c) \
  case c: if constexpr (c <= kMaxCo) wblock<c, KW>(xb, pd, dyb, dwb, cin, g, co0, ci, i); break;
      CPUCNN_WBLOCK(6) CPUCNN_WBLOCK(5) CPUCNN_WBLOCK(4) CPUCNN_WBLOCK(3) CPUCNN_WBLOCK(2) CPUCNN_WBLOCK(1)
#undef CPUCNN_WBLOCK
      default: break;
    }
  }
}

}  // namespace

void conv2d_batch_fwd_avx512(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t cin,
                             int64_t cout, const ConvGeometry& g, bool relu, float* scratch) {
  const PaddedPlane pd = padded_plane(g);
  float* xb = scratch;
  float* yb = scratch + cin * pd.hp * pd.wp * 16;
  const int64_t in_size = cin * g.h * g.w, out_size = cout * g.ho * g.wo;
  for (int64_t n0 = 0; n0 < n; n0 += 16) {
    const int64_t images = imin(16, n - n0);
    to_batch(x + n0 * in_size, images, cin, g, pd, xb);
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      // Kernel rows that land inside the input: 0 <= oh*sh + i*dh - ph < h.
      int64_t i0 = 0, i1 = g.kh;
      while (i0 < i1 && oh * g.sh + i0 * g.dh - g.ph < 0) ++i0;
      while (i1 > i0 && oh * g.sh + (i1 - 1) * g.dh - g.ph >= g.h) --i1;
      for (int64_t ow0 = 0; ow0 < g.wo; ow0 += kPx) {
        const int64_t px = imin(kPx, g.wo - ow0);
        // Kernel columns inside the input for some pixel of the block:
        // 0 <= ow + j - pw < w for ow in [ow0, ow0 + px).
        const int64_t j0 = imax(0, g.pw - (ow0 + px - 1));
        const int64_t j1 = imin(g.kw, g.w + g.pw - ow0);
        if (i0 >= i1 || j0 >= j1) {  // all padding: the bias alone
          for (int64_t co = 0; co < cout; ++co)
            for (int64_t p = 0; p < px; ++p)
              _mm512_storeu_ps(yb + (co * g.ho * g.wo + oh * g.wo + ow0 + p) * 16, _mm512_setzero_ps());
          continue;
        }
        switch (px) {
          case 4: blocks<4>(xb, pd, w, cin, cout, g, oh, ow0, i0, i1, j0, j1, yb); break;
          case 3: blocks<3>(xb, pd, w, cin, cout, g, oh, ow0, i0, i1, j0, j1, yb); break;
          case 2: blocks<2>(xb, pd, w, cin, cout, g, oh, ow0, i0, i1, j0, j1, yb); break;
          default: blocks<1>(xb, pd, w, cin, cout, g, oh, ow0, i0, i1, j0, j1, yb); break;
        }
      }
    }
    from_batch(yb, images, cout, g.ho * g.wo, bias, relu, y + n0 * out_size);
  }
}

}  // namespace cpucnn

namespace cpucnn {

void conv2d_batch_bwd_w_avx512(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                               const ConvGeometry& g, float* scratch) {
  const PaddedPlane pd = padded_plane(g);
  const int64_t pixels = g.ho * g.wo, wsize = cout * cin * g.kh * g.kw;
  float* xb = scratch;
  float* dyb = xb + cin * pd.hp * pd.wp * 16;
  float* dwb = dyb + cout * pixels * 16;
  memset(dwb, 0, static_cast<size_t>(wsize * 16) * sizeof(float));
  const int64_t in_size = cin * g.h * g.w, out_size = cout * pixels;
  // dy as a "convolution input" of cout planes, no padding.
  const ConvGeometry gy{g.ho, g.wo, g.ho, g.wo, 1, 1, 1, 1, 0, 0, 1, 1};
  const PaddedPlane pdy{g.ho, g.wo};
  for (int64_t n0 = 0; n0 < n; n0 += 16) {
    const int64_t images = imin(16, n - n0);
    to_batch(x + n0 * in_size, images, cin, g, pd, xb);
    to_batch(dy + n0 * out_size, images, cout, gy, pdy, dyb);  // missing images: zero lanes of dy
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t i = 0; i < g.kh; ++i) {
        if (g.kw == 3)
          wblocks<3>(xb, pd, dyb, dwb, cin, cout, g, ci, i);
        else
          wblocks<5>(xb, pd, dyb, dwb, cin, cout, g, ci, i);
      }
  }
  for (int64_t k = 0; k < wsize; ++k) {  // the lanes' sums, in lane order
    alignas(64) float l[16];
    _mm512_store_ps(l, _mm512_loadu_ps(dwb + k * 16));
    float sum = 0.0f;
    for (float v : l) sum += v;
    dw[k] = sum;
  }
}

}  // namespace cpucnn
