// Convolution with the output channels in the vector lanes, for AVX2: the
// AVX-512 design (conv_lanes/avx512.cc; read its notes) with 8 channels a
// register. 16 or 32 output channels are taken 16 at a time (two registers
// a pixel): the forward keeps 6 pixels x 2 registers of accumulators, the
// two weight registers and a broadcast input within the 16 registers; the
// weight gradient 2 kernel rows x 3 columns (3-wide kernels) or 1 x 5
// (5-wide) x 2 registers.
//
// Per image: the input is copied into a zero-padded buffer (no bounds checks
// in the loops), results go through a pixel-major buffer (pixel, channel)
// and are turned back into channel planes by 8x8 register transposes. The
// buffers are those of the AVX-512 kernels (conv2d_lanes_scratch).
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

constexpr int kCb = 2;  // registers of channels a pass (16 channels)

// xp (cin planes of hp x wp) = x with ph rows and pw columns of zeros before.
void pad_image(const float* x, int64_t cin, const ConvGeometry& g, const PaddedPlane& p, float* xp) {
  memset(xp, 0, static_cast<size_t>(cin * p.hp * p.wp) * sizeof(float));
  for (int64_t c = 0; c < cin; ++c)
    for (int64_t r = 0; r < g.h; ++r)
      memcpy(xp + (c * p.hp + r + g.ph) * p.wp + g.pw, x + (c * g.h + r) * g.w,
             static_cast<size_t>(g.w) * sizeof(float));
}

// planes (channels x pixels, channels a multiple of 8) -> rows (pixel-major,
// `channels` floats a pixel), 8 x 8 blocks through registers.
void planes_to_rows(const float* planes, int64_t channels, int64_t pixels, float* rows) {
  for (int64_t c0 = 0; c0 < channels; c0 += 8) {
    for (int64_t p0 = 0; p0 < pixels; p0 += 8) {
      const int64_t np = imin(8, pixels - p0);
      __m256 r[8];
      for (int c = 0; c < 8; ++c) r[c] = load_first(planes + (c0 + c) * pixels + p0, np);
      transpose8(r);
      for (int64_t p = 0; p < np; ++p) _mm256_storeu_ps(rows + (p0 + p) * channels + c0, r[p]);
    }
  }
}

// The inverse, adding the bias and applying the ReLU on the way.
void rows_to_planes(const float* rows, int64_t channels, int64_t pixels, const float* bias, bool relu,
                    float* planes) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t c0 = 0; c0 < channels; c0 += 8) {
    for (int64_t p0 = 0; p0 < pixels; p0 += 8) {
      const int64_t np = imin(8, pixels - p0);
      __m256 r[8];
      for (int p = 0; p < 8; ++p) r[p] = p < np ? _mm256_loadu_ps(rows + (p0 + p) * channels + c0) : zero;
      transpose8(r);
      for (int c = 0; c < 8; ++c) {
        __m256 v = r[c];
        if (bias) v = _mm256_add_ps(v, _mm256_set1_ps(bias[c0 + c]));
        if (relu) v = _mm256_max_ps(zero, v);
        store_first(planes + (c0 + c) * pixels + p0, v, np);
      }
    }
  }
}

// Forward: CB registers of channels (8 CB channels from c0) x NP output
// pixels ow0.. of output row oh, over all input channels and taps.
template <int CB, int NP>
void fwd_block(const float* xp, const PaddedPlane& pd, const float* wl, int64_t cin, int64_t cout, const ConvGeometry& g,
               int64_t c0, int64_t oh, int64_t ow0, float* out) {
  __m256 acc[NP][CB];
  for (int p = 0; p < NP; ++p)
    for (int b = 0; b < CB; ++b) acc[p][b] = _mm256_setzero_ps();
  for (int64_t ci = 0; ci < cin; ++ci) {
    for (int64_t i = 0; i < g.kh; ++i) {
      const float* row = xp + (ci * pd.hp + oh * g.sh + i * g.dh) * pd.wp + ow0;
      const float* wr = wl + ((ci * g.kh + i) * g.kw) * cout + c0;
      for (int64_t j = 0; j < g.kw; ++j) {
        __m256 wv[CB];
        for (int b = 0; b < CB; ++b) wv[b] = _mm256_loadu_ps(wr + j * cout + 8 * b);
        for (int p = 0; p < NP; ++p) {
          const __m256 xv = _mm256_broadcast_ss(row + p + j);
          for (int b = 0; b < CB; ++b) acc[p][b] = _mm256_fmadd_ps(xv, wv[b], acc[p][b]);
        }
      }
    }
  }
  for (int p = 0; p < NP; ++p)
    for (int b = 0; b < CB; ++b) _mm256_storeu_ps(out + (oh * g.wo + ow0 + p) * cout + c0 + 8 * b, acc[p][b]);
}

template <int CB, int MaxNP>
void fwd_row(const float* xp, const PaddedPlane& pd, const float* wl, int64_t cin, int64_t cout, const ConvGeometry& g,
             int64_t c0, int64_t oh, float* out) {
  for (int64_t ow0 = 0; ow0 < g.wo; ow0 += MaxNP) {
    switch (imin(MaxNP, g.wo - ow0)) {
#define CPUCNN_FWD(np) \
  case np: if constexpr (np <= MaxNP) fwd_block<CB, np>(xp, pd, wl, cin, cout, g, c0, oh, ow0, out); break;
      CPUCNN_FWD(6) CPUCNN_FWD(5) CPUCNN_FWD(4) CPUCNN_FWD(3) CPUCNN_FWD(2) CPUCNN_FWD(1)
#undef CPUCNN_FWD
      default: break;
    }
  }
}

// Weight gradient: dwl[ci][i0 + r][j][c0 + 8 b] for RB kernel rows by KW
// columns by CB registers, summed over every output pixel of one image
// (dyr: dy pixel-major) and added to dwl.
template <int CB, int KW, int RB>
void wgrad_block(const float* xp, const PaddedPlane& pd, const float* dyr, float* dwl, int64_t cout,
                 const ConvGeometry& g, int64_t ci, int64_t i0, int64_t c0) {
  __m256 acc[RB][KW][CB];
  float* base = dwl + ((ci * g.kh + i0) * KW) * cout + c0;
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < KW; ++j)
      for (int b = 0; b < CB; ++b) acc[r][j][b] = _mm256_loadu_ps(base + (r * KW + j) * cout + 8 * b);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float* rows[RB];
    for (int r = 0; r < RB; ++r) rows[r] = xp + (ci * pd.hp + oh * g.sh + (i0 + r) * g.dh) * pd.wp;
    const float* d = dyr + oh * g.wo * cout + c0;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      __m256 dv[CB];
      for (int b = 0; b < CB; ++b) dv[b] = _mm256_loadu_ps(d + ow * cout + 8 * b);
      for (int r = 0; r < RB; ++r) {
        for (int j = 0; j < KW; ++j) {
          const __m256 xv = _mm256_broadcast_ss(rows[r] + ow + j);
          for (int b = 0; b < CB; ++b) acc[r][j][b] = _mm256_fmadd_ps(xv, dv[b], acc[r][j][b]);
        }
      }
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < KW; ++j)
      for (int b = 0; b < CB; ++b) _mm256_storeu_ps(base + (r * KW + j) * cout + 8 * b, acc[r][j][b]);
}

// All kernel rows of input channel ci, RB at a time (RB x KW x CB
// accumulators, at most 12, with CB dy registers and a broadcast).
template <int CB, int KW>
void wgrad_channel(const float* xp, const PaddedPlane& pd, const float* dyr, float* dwl, int64_t cout,
                   const ConvGeometry& g, int64_t ci, int64_t c0) {
  constexpr int kMaxRB = 12 / (KW * CB) > 0 ? 12 / (KW * CB) : 1;
  for (int64_t i0 = 0; i0 < g.kh; i0 += kMaxRB) {
    switch (imin(kMaxRB, g.kh - i0)) {
#define CPUCNN_WG(rb) \
  case rb: if constexpr (rb <= kMaxRB) wgrad_block<CB, KW, rb>(xp, pd, dyr, dwl, cout, g, ci, i0, c0); break;
      CPUCNN_WG(2) CPUCNN_WG(1)
#undef CPUCNN_WG
      default: break;
    }
  }
}

}  // namespace

void conv2d_lanes_fwd_avx2(const float* x, const float* wl, const float* bias, float* y, int64_t n, int64_t cin,
                           int64_t cout, const ConvGeometry& g, bool relu, float* scratch) {
  const PaddedPlane pd = padded_plane(g);
  float* xp = scratch;
  float* out = scratch + cin * pd.hp * pd.wp;
  const int64_t in_size = cin * g.h * g.w, pixels = g.ho * g.wo;
  for (int64_t img = 0; img < n; ++img) {
    pad_image(x + img * in_size, cin, g, pd, xp);
    for (int64_t c0 = 0; c0 < cout; c0 += 8 * kCb)  // cout is a multiple of 16
      for (int64_t oh = 0; oh < g.ho; ++oh) fwd_row<kCb, 6>(xp, pd, wl, cin, cout, g, c0, oh, out);
    rows_to_planes(out, cout, pixels, bias, relu, y + img * cout * pixels);
  }
}

void conv2d_lanes_bwd_w_avx2(const float* x, const float* dy, float* dwl, int64_t n, int64_t cin, int64_t cout,
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
      for (int64_t c0 = 0; c0 < cout; c0 += 8 * kCb) {
        if (g.kw == 3)
          wgrad_channel<kCb, 3>(xp, pd, dyr, dwl, cout, g, ci, c0);
        else
          wgrad_channel<kCb, 5>(xp, pd, dyr, dwl, cout, g, ci, c0);
      }
    }
  }
}

}  // namespace cpucnn
