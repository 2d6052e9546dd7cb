// Convolution with the output channels in the vector lanes, for AVX-512:
// thin layers with 16 or 32 output channels and a short reduction (lenet5
// conv2: 6 in, 5x5; the 1- and 3-channel first layers), where im2col costs
// more than the GEMM it feeds and the direct kernels leave lanes idle on
// narrow rows. Each output pixel is one register per 16 channels; every
// input value is broadcast from memory into an FMA against a register of
// 16 weights, so all lanes do useful work whatever the image width.
//
// Per image: the input is copied into a zero-padded buffer (no bounds checks
// in the loops), results go through a pixel-major buffer (pixel, channel)
// and are turned back into channel planes by 16x16 register transposes.
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

// xp (cin planes of hp x wp) = x with ph rows and pw columns of zeros before.
void pad_image(const float* x, int64_t cin, const ConvGeometry& g, const PaddedPlane& p, float* xp) {
  memset(xp, 0, static_cast<size_t>(cin * p.hp * p.wp) * sizeof(float));
  for (int64_t c = 0; c < cin; ++c)
    for (int64_t r = 0; r < g.h; ++r)
      memcpy(xp + (c * p.hp + r + g.ph) * p.wp + g.pw, x + (c * g.h + r) * g.w,
             static_cast<size_t>(g.w) * sizeof(float));
}

// planes (channels x pixels, channels a multiple of 16) -> rows (pixel-major,
// `channels` floats a pixel), 16 x 16 blocks through registers.
void planes_to_rows(const float* planes, int64_t channels, int64_t pixels, float* rows) {
  for (int64_t c0 = 0; c0 < channels; c0 += 16) {
    for (int64_t p0 = 0; p0 < pixels; p0 += 16) {
      const __mmask16 m = first_lanes(pixels - p0);
      __m512 r[16];
      for (int c = 0; c < 16; ++c) r[c] = _mm512_maskz_loadu_ps(m, planes + (c0 + c) * pixels + p0);
      transpose16(r);
      const int64_t np = imin(16, pixels - p0);
      for (int64_t p = 0; p < np; ++p) _mm512_storeu_ps(rows + (p0 + p) * channels + c0, r[p]);
    }
  }
}

// The inverse, adding the bias and applying the ReLU on the way.
void rows_to_planes(const float* rows, int64_t channels, int64_t pixels, const float* bias, bool relu,
                    float* planes) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < channels; c0 += 16) {
    for (int64_t p0 = 0; p0 < pixels; p0 += 16) {
      const int64_t np = imin(16, pixels - p0);
      __m512 r[16];
      for (int p = 0; p < 16; ++p) r[p] = p < np ? _mm512_loadu_ps(rows + (p0 + p) * channels + c0) : zero;
      transpose16(r);
      const __mmask16 m = first_lanes(np);
      for (int c = 0; c < 16; ++c) {
        __m512 v = r[c];
        if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[c0 + c]));
        if (relu) v = _mm512_max_ps(zero, v);
        _mm512_mask_storeu_ps(planes + (c0 + c) * pixels + p0, m, v);
      }
    }
  }
}

// Forward: CB registers of channels (16 CB channels from c0) x NP output
// pixels ow0.. of output row oh, over all input channels and taps.
template <int CB, int NP>
void fwd_block(const float* xp, const PaddedPlane& pd, const float* wl, int64_t cin, int64_t cout, const ConvGeometry& g,
               int64_t c0, int64_t oh, int64_t ow0, float* out) {
  __m512 acc[NP][CB];
  for (int p = 0; p < NP; ++p)
    for (int b = 0; b < CB; ++b) acc[p][b] = _mm512_setzero_ps();
  for (int64_t ci = 0; ci < cin; ++ci) {
    for (int64_t i = 0; i < g.kh; ++i) {
      const float* row = xp + (ci * pd.hp + oh * g.sh + i * g.dh) * pd.wp + ow0;
      const float* wr = wl + ((ci * g.kh + i) * g.kw) * cout + c0;
      for (int64_t j = 0; j < g.kw; ++j) {
        __m512 wv[CB];
        for (int b = 0; b < CB; ++b) wv[b] = _mm512_loadu_ps(wr + j * cout + 16 * b);
        for (int p = 0; p < NP; ++p) {
          const __m512 xv = _mm512_set1_ps(row[p + j]);
          for (int b = 0; b < CB; ++b) acc[p][b] = _mm512_fmadd_ps(xv, wv[b], acc[p][b]);
        }
      }
    }
  }
  for (int p = 0; p < NP; ++p)
    for (int b = 0; b < CB; ++b) _mm512_storeu_ps(out + (oh * g.wo + ow0 + p) * cout + c0 + 16 * b, acc[p][b]);
}

template <int CB, int MaxNP>
void fwd_row(const float* xp, const PaddedPlane& pd, const float* wl, int64_t cin, int64_t cout, const ConvGeometry& g,
             int64_t c0, int64_t oh, float* out) {
  for (int64_t ow0 = 0; ow0 < g.wo; ow0 += MaxNP) {
    switch (imin(MaxNP, g.wo - ow0)) {
#define CPUCNN_FWD(np) \
  case np: if constexpr (np <= MaxNP) fwd_block<CB, np>(xp, pd, wl, cin, cout, g, c0, oh, ow0, out); break;
      CPUCNN_FWD(24) CPUCNN_FWD(23) CPUCNN_FWD(22) CPUCNN_FWD(21) CPUCNN_FWD(20) CPUCNN_FWD(19)
      CPUCNN_FWD(18) CPUCNN_FWD(17) CPUCNN_FWD(16) CPUCNN_FWD(15) CPUCNN_FWD(14) CPUCNN_FWD(13)
      CPUCNN_FWD(12) CPUCNN_FWD(11) CPUCNN_FWD(10) CPUCNN_FWD(9) CPUCNN_FWD(8) CPUCNN_FWD(7)
      CPUCNN_FWD(6) CPUCNN_FWD(5) CPUCNN_FWD(4) CPUCNN_FWD(3) CPUCNN_FWD(2) CPUCNN_FWD(1)
#undef CPUCNN_FWD
      default: break;
    }
  }
}

// Weight gradient: dwl[ci][i0 + r][j][c0 + 16 b] for RB kernel rows by KW
// columns by CB registers, summed over every output pixel of one image
// (dyr: dy pixel-major) and added to dwl.
template <int CB, int KW, int RB>
void wgrad_block(const float* xp, const PaddedPlane& pd, const float* dyr, float* dwl, int64_t cout,
                 const ConvGeometry& g, int64_t ci, int64_t i0, int64_t c0) {
  __m512 acc[RB][KW][CB];
  float* base = dwl + ((ci * g.kh + i0) * KW) * cout + c0;
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < KW; ++j)
      for (int b = 0; b < CB; ++b) acc[r][j][b] = _mm512_loadu_ps(base + (r * KW + j) * cout + 16 * b);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float* rows[RB];
    for (int r = 0; r < RB; ++r) rows[r] = xp + (ci * pd.hp + oh * g.sh + (i0 + r) * g.dh) * pd.wp;
    const float* d = dyr + oh * g.wo * cout + c0;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      __m512 dv[CB];
      for (int b = 0; b < CB; ++b) dv[b] = _mm512_loadu_ps(d + ow * cout + 16 * b);
      for (int r = 0; r < RB; ++r) {
        for (int j = 0; j < KW; ++j) {
          const __m512 xv = _mm512_set1_ps(rows[r][ow + j]);
          for (int b = 0; b < CB; ++b) acc[r][j][b] = _mm512_fmadd_ps(xv, dv[b], acc[r][j][b]);
        }
      }
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < KW; ++j)
      for (int b = 0; b < CB; ++b) _mm512_storeu_ps(base + (r * KW + j) * cout + 16 * b, acc[r][j][b]);
}

// All kernel rows of input channel ci, RB at a time (as many as the
// registers hold: RB x KW x CB accumulators, at most 24).
template <int CB, int KW>
void wgrad_channel(const float* xp, const PaddedPlane& pd, const float* dyr, float* dwl, int64_t cout,
                   const ConvGeometry& g, int64_t ci, int64_t c0) {
  constexpr int kMaxRB = 24 / (KW * CB);
  for (int64_t i0 = 0; i0 < g.kh; i0 += kMaxRB) {
    switch (imin(kMaxRB, g.kh - i0)) {
#define CPUCNN_WG(rb) \
  case rb: if constexpr (rb <= kMaxRB) wgrad_block<CB, KW, rb>(xp, pd, dyr, dwl, cout, g, ci, i0, c0); break;
      CPUCNN_WG(8) CPUCNN_WG(7) CPUCNN_WG(6) CPUCNN_WG(5) CPUCNN_WG(4) CPUCNN_WG(3) CPUCNN_WG(2) CPUCNN_WG(1)
#undef CPUCNN_WG
      default: break;
    }
  }
}

}  // namespace

void conv2d_lanes_fwd_avx512(const float* x, const float* wl, const float* bias, float* y, int64_t n, int64_t cin,
                             int64_t cout, const ConvGeometry& g, bool relu, float* scratch) {
  const PaddedPlane pd = padded_plane(g);
  float* xp = scratch;
  float* out = scratch + cin * pd.hp * pd.wp;
  const int64_t in_size = cin * g.h * g.w, pixels = g.ho * g.wo;
  for (int64_t img = 0; img < n; ++img) {
    pad_image(x + img * in_size, cin, g, pd, xp);
    for (int64_t c0 = 0; c0 < cout; c0 += 32) {
      const bool two = cout - c0 >= 32;  // two registers of channels a pixel, else one
      for (int64_t oh = 0; oh < g.ho; ++oh) {
        if (two)
          fwd_row<2, 12>(xp, pd, wl, cin, cout, g, c0, oh, out);
        else
          fwd_row<1, 24>(xp, pd, wl, cin, cout, g, c0, oh, out);
      }
    }
    rows_to_planes(out, cout, pixels, bias, relu, y + img * cout * pixels);
  }
}

void conv2d_lanes_bwd_w_avx512(const float* x, const float* dy, float* dwl, int64_t n, int64_t cin, int64_t cout,
                               const ConvGeometry& g, float* scratch) {
  const PaddedPlane pd = padded_plane(g);
  float* xp = scratch;
  float* dyr = scratch + cin * pd.hp * pd.wp;
  const int64_t in_size = cin * g.h * g.w, pixels = g.ho * g.wo;
  memset(dwl, 0, static_cast<size_t>(cin * g.kh * g.kw * cout) * sizeof(float));
  for (int64_t img = 0; img < n; ++img) {
    pad_image(x + img * in_size, cin, g, pd, xp);
    planes_to_rows(dy + img * cout * pixels, cout, pixels, dyr);
    for (int64_t ci = 0; ci < cin; ++ci) {
      for (int64_t c0 = 0; c0 < cout; c0 += 32) {
        const bool two = cout - c0 >= 32;
        if (g.kw == 3) {
          if (two)
            wgrad_channel<2, 3>(xp, pd, dyr, dwl, cout, g, ci, c0);
          else
            wgrad_channel<1, 3>(xp, pd, dyr, dwl, cout, g, ci, c0);
        } else {
          if (two)
            wgrad_channel<2, 5>(xp, pd, dyr, dwl, cout, g, ci, c0);
          else
            wgrad_channel<1, 5>(xp, pd, dyr, dwl, cout, g, ci, c0);
        }
      }
    }
  }
}

}  // namespace cpucnn
