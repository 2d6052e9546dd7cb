// Direct convolution with 16 images in the vector lanes, for AVX2: the
// AVX-512 design (conv_batch/avx512.cc; read its notes) with each group of
// 16 images held as two halves of 8, one ymm register each. The buffers are
// laid out as there ([ci][row][column][16 images], the same scratch), and
// every block runs once per half: R x PX accumulators of 8 images, PX input
// vectors and a broadcast weight within the 16 registers.
//
// Per group of 16 images: the input is transposed (8x8 register blocks) into
// a zero-padded buffer, the output accumulated in [co][row][column][image]
// and transposed back into planes with the bias and ReLU. A missing image of
// the last group is a lane of zeros.
#include <immintrin.h>

#include <string.h>

#include "kernels/avx2_lanes.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

namespace {

using avx2::load_first;
using avx2::store_first;
using avx2::transpose8;

constexpr int kPx = 3;  // output pixels of a row per block, more than 6 channels (pixels_for)
constexpr int kCo = 4;  // output channels per block then (kCo x kPx accumulators)

// xb[ci][r + ph][c + pw][l] = x[image l][ci][r][c], zeros elsewhere.
void to_batch(const float* x, int64_t images, int64_t cin, const ConvGeometry& g, const PaddedPlane& pd, float* xb) {
  memset(xb, 0, static_cast<size_t>(cin * pd.hp * pd.wp * 16) * sizeof(float));
  const int64_t in_size = cin * g.h * g.w;
  for (int64_t ci = 0; ci < cin; ++ci) {
    for (int64_t r = 0; r < g.h; ++r) {
      for (int64_t c0 = 0; c0 < g.w; c0 += 8) {
        const int64_t nc = imin(8, g.w - c0);
        float* dst = xb + ((ci * pd.hp + r + g.ph) * pd.wp + c0 + g.pw) * 16;
        for (int64_t h = 0; h < 2 && 8 * h < images; ++h) {
          __m256 v[8];
          for (int l = 0; l < 8; ++l)
            v[l] = 8 * h + l < images ? load_first(x + (8 * h + l) * in_size + (ci * g.h + r) * g.w + c0, nc)
                                      : _mm256_setzero_ps();
          transpose8(v);  // v[c]: column c0 + c of images 8h..8h+7
          for (int64_t c = 0; c < nc; ++c) _mm256_storeu_ps(dst + c * 16 + 8 * h, v[c]);
        }
      }
    }
  }
}

// y[image l][co] plane = yb[co][pixel][l] (+ bias, ReLU), images < `images`.
void from_batch(const float* yb, int64_t images, int64_t cout, int64_t pixels, const float* bias, bool relu,
                float* y) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t co = 0; co < cout; ++co) {
    const __m256 b = _mm256_set1_ps(bias ? bias[co] : 0.0f);
    for (int64_t p0 = 0; p0 < pixels; p0 += 8) {
      const int64_t np = imin(8, pixels - p0);
      for (int64_t h = 0; h < 2 && 8 * h < images; ++h) {
        __m256 v[8];
        for (int p = 0; p < 8; ++p) {
          v[p] = p < np ? _mm256_add_ps(_mm256_loadu_ps(yb + (co * pixels + p0 + p) * 16 + 8 * h), b) : zero;
          if (relu) v[p] = _mm256_max_ps(zero, v[p]);
        }
        transpose8(v);  // v[l]: pixels p0.. of image 8h + l
        const int64_t nl = imin(8, images - 8 * h);
        for (int64_t l = 0; l < nl; ++l) store_first(y + ((8 * h + l) * cout + co) * pixels + p0, v[l], np);
      }
    }
  }
}

// CO output channels from co0 x PX pixels from (oh, ow0), images 8h..8h+7
// (lanes 8h.. of the buffers): taps rows [i0, i1), columns [j0, j1).
template <int CO, int PX>
void block(const float* xb, const PaddedPlane& pd, const float* w, int64_t cin, const ConvGeometry& g, int64_t co0,
           int64_t oh, int64_t ow0, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t h, float* yb) {
  const int64_t taps = g.kh * g.kw, K = cin * taps, pixels = g.ho * g.wo;
  __m256 acc[CO][PX];
  for (int c = 0; c < CO; ++c)
    for (int p = 0; p < PX; ++p) acc[c][p] = _mm256_setzero_ps();
  for (int64_t ci = 0; ci < cin; ++ci) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* row = xb + ((ci * pd.hp + oh * g.sh + i * g.dh) * pd.wp + ow0) * 16 + 8 * h;
      const float* wr = w + (co0 * cin + ci) * taps + i * g.kw;
      for (int64_t j = j0; j < j1; ++j) {
        __m256 xv[PX];
        for (int p = 0; p < PX; ++p) xv[p] = _mm256_loadu_ps(row + (p + j) * 16);
        for (int c = 0; c < CO; ++c) {
          const __m256 wv = _mm256_broadcast_ss(wr + c * K + j);
          for (int p = 0; p < PX; ++p) acc[c][p] = _mm256_fmadd_ps(wv, xv[p], acc[c][p]);
        }
      }
    }
  }
  for (int c = 0; c < CO; ++c)
    for (int p = 0; p < PX; ++p)
      _mm256_storeu_ps(yb + ((co0 + c) * pixels + oh * g.wo + ow0 + p) * 16 + 8 * h, acc[c][p]);
}

// Channels a block for PX pixels: CO x PX accumulators, PX input vectors
// and a broadcast weight within the 16 registers (at most 6).
constexpr int max_co(int px) { return (15 - px) / px < 6 ? (15 - px) / px : 6; }

template <int PX>
void blocks(const float* xb, const PaddedPlane& pd, const float* w, int64_t cin, int64_t cout, const ConvGeometry& g,
            int64_t oh, int64_t ow0, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t halves, float* yb) {
  // All the channels in one block where they fit, else blocks of up to kCo.
  constexpr int kMax = max_co(PX);
  const int64_t step = cout <= kMax ? cout : imin(kCo, kMax);
  for (int64_t co0 = 0; co0 < cout; co0 += step) {
    for (int64_t h = 0; h < halves; ++h) {
      switch (imin(step, cout - co0)) {
#define CPUCNN_BLOCK(c) \
  case c: if constexpr (c <= kMax) block<c, PX>(xb, pd, w, cin, g, co0, oh, ow0, i0, i1, j0, j1, h, yb); break;
        CPUCNN_BLOCK(6) CPUCNN_BLOCK(5) CPUCNN_BLOCK(4) CPUCNN_BLOCK(3) CPUCNN_BLOCK(2) CPUCNN_BLOCK(1)
#undef CPUCNN_BLOCK
        default: break;
      }
    }
  }
}

// Pixels a block for `cout` channels: enough accumulators (CO x PX, 7 to
// 16) to cover the FMA latency however few the channels (the full
// convolution of dx often has 1 or 3).
inline int64_t pixels_for(int64_t cout) {
  switch (cout) {
    case 1: return 7;
    case 2: return 5;
    case 3:
    case 4: return 3;
    case 5:
    case 6: return 2;
    default: return kPx;  // blocks of kCo channels
  }
}

// Weight gradient: dwb[co0 + c][ci][i][j][8h + l] for CO output channels by
// the KW kernel columns of kernel row i, summed over the output pixels of a
// group (dyb: dy as [co][pixel][image]) and added to dwb: per-image
// partial sums, reduced across the lanes once at the end. CO x KW
// accumulators, CO dy vectors and an input vector within 16 registers.
template <int CO, int KW>
void wblock(const float* xb, const PaddedPlane& pd, const float* dyb, float* dwb, int64_t cin, const ConvGeometry& g,
            int64_t co0, int64_t ci, int64_t i, int64_t h) {
  const int64_t pixels = g.ho * g.wo, taps = g.kh * KW;
  __m256 acc[CO][KW];
  float* out = dwb + ((co0 * cin + ci) * taps + i * KW) * 16 + 8 * h;
  const int64_t co_stride = cin * taps * 16;
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KW; ++j) acc[c][j] = _mm256_loadu_ps(out + c * co_stride + j * 16);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const int64_t r = oh * g.sh + i * g.dh;  // padded row
    if (r < g.ph || r >= g.h + g.ph) continue;  // a row of padding adds nothing
    const float* row = xb + (ci * pd.hp + r) * pd.wp * 16 + 8 * h;
    const float* d = dyb + (co0 * pixels + oh * g.wo) * 16 + 8 * h;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      __m256 dv[CO];
      for (int c = 0; c < CO; ++c) dv[c] = _mm256_loadu_ps(d + (c * pixels + ow) * 16);
      for (int j = 0; j < KW; ++j) {
        const __m256 xv = _mm256_loadu_ps(row + (ow + j) * 16);
        for (int c = 0; c < CO; ++c) acc[c][j] = _mm256_fmadd_ps(dv[c], xv, acc[c][j]);
      }
    }
  }
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KW; ++j) _mm256_storeu_ps(out + c * co_stride + j * 16, acc[c][j]);
}

template <int KW>
void wblocks(const float* xb, const PaddedPlane& pd, const float* dyb, float* dwb, int64_t cin, int64_t cout,
             const ConvGeometry& g, int64_t ci, int64_t i, int64_t halves) {
  constexpr int kMaxCo = 15 / (KW + 1);  // CO (KW + 1) + 1 <= 16: 3 for KW 3, 2 for KW 5
  for (int64_t co0 = 0; co0 < cout; co0 += kMaxCo) {
    for (int64_t h = 0; h < halves; ++h) {
      switch (imin(kMaxCo, cout - co0)) {
#define CPUCNN_WBLOCK(c) \
  case c: if constexpr (c <= kMaxCo) wblock<c, KW>(xb, pd, dyb, dwb, cin, g, co0, ci, i, h); break;
        CPUCNN_WBLOCK(3) CPUCNN_WBLOCK(2) CPUCNN_WBLOCK(1)
#undef CPUCNN_WBLOCK
        default: break;
      }
    }
  }
}

}  // namespace

void conv2d_batch_fwd_avx2(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t cin,
                           int64_t cout, const ConvGeometry& g, bool relu, float* scratch) {
  const PaddedPlane pd = padded_plane(g);
  float* xb = scratch;
  float* yb = scratch + cin * pd.hp * pd.wp * 16;
  const int64_t in_size = cin * g.h * g.w, out_size = cout * g.ho * g.wo;
  for (int64_t n0 = 0; n0 < n; n0 += 16) {
    const int64_t images = imin(16, n - n0);
    const int64_t halves = images > 8 ? 2 : 1;  // a half of missing images is not computed
    to_batch(x + n0 * in_size, images, cin, g, pd, xb);
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      // Kernel rows that land inside the input: 0 <= oh*sh + i*dh - ph < h.
      int64_t i0 = 0, i1 = g.kh;
      while (i0 < i1 && oh * g.sh + i0 * g.dh - g.ph < 0) ++i0;
      while (i1 > i0 && oh * g.sh + (i1 - 1) * g.dh - g.ph >= g.h) --i1;
      const int64_t kp = pixels_for(cout);
      for (int64_t ow0 = 0; ow0 < g.wo; ow0 += kp) {
        const int64_t px = imin(kp, g.wo - ow0);
        // Kernel columns inside the input for some pixel of the block:
        // 0 <= ow + j - pw < w for ow in [ow0, ow0 + px).
        const int64_t j0 = imax(0, g.pw - (ow0 + px - 1));
        const int64_t j1 = imin(g.kw, g.w + g.pw - ow0);
        if (i0 >= i1 || j0 >= j1) {  // all padding: the bias alone
          for (int64_t co = 0; co < cout; ++co)
            for (int64_t p = 0; p < px; ++p)
              for (int64_t h = 0; h < 2; ++h)
                _mm256_storeu_ps(yb + (co * g.ho * g.wo + oh * g.wo + ow0 + p) * 16 + 8 * h, _mm256_setzero_ps());
          continue;
        }
        switch (px) {
#define CPUCNN_BLOCKS(p) \
  case p: blocks<p>(xb, pd, w, cin, cout, g, oh, ow0, i0, i1, j0, j1, halves, yb); break;
          CPUCNN_BLOCKS(7) CPUCNN_BLOCKS(6) CPUCNN_BLOCKS(5) CPUCNN_BLOCKS(4) CPUCNN_BLOCKS(3) CPUCNN_BLOCKS(2)
#undef CPUCNN_BLOCKS
          default: blocks<1>(xb, pd, w, cin, cout, g, oh, ow0, i0, i1, j0, j1, halves, yb); break;
        }
      }
    }
    from_batch(yb, images, cout, g.ho * g.wo, bias, relu, y + n0 * out_size);
  }
}

void conv2d_batch_bwd_w_avx2(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
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
    const int64_t halves = images > 8 ? 2 : 1;  // the other half's lanes of dwb stay zero
    to_batch(x + n0 * in_size, images, cin, g, pd, xb);
    to_batch(dy + n0 * out_size, images, cout, gy, pdy, dyb);  // missing images: zero lanes of dy
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t i = 0; i < g.kh; ++i) {
        if (g.kw == 3)
          wblocks<3>(xb, pd, dyb, dwb, cin, cout, g, ci, i, halves);
        else
          wblocks<5>(xb, pd, dyb, dwb, cin, cout, g, ci, i, halves);
      }
  }
  for (int64_t k = 0; k < wsize; ++k) {  // the lanes' sums, in lane order
    alignas(32) float l[16];
    _mm256_store_ps(l, _mm256_loadu_ps(dwb + k * 16));
    _mm256_store_ps(l + 8, _mm256_loadu_ps(dwb + k * 16 + 8));
    float sum = 0.0f;
    for (float v : l) sum += v;
    dw[k] = sum;
  }
}

}  // namespace cpucnn
