// Direct convolution (forward) for AVX-512, for layers whose GEMM would be
// too thin to pay for unfolding the input: few output channels or a short
// reduction (cin*kh*kw). No im2col and no packing: each output register
// holds 16 pixels of an output row; a block of up to 8 output channels by 3
// output rows (or 6 by 4) is accumulated in 24 registers, so each input vector loaded is
// used for up to 8 FMAs and each weight broadcast for up to 4. Stride 1 along W,
// dilation 1 along W, groups 1 (the op checks).
#include <immintrin.h>

#include "kernels/avx512_lanes.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

namespace {

using avx512::lanes;

// R output channels x V output rows, 16 columns from ow.
template <int R, int V>
inline void block(const float* x, const float* w, const float* bias, float* y, int64_t cin, const ConvGeometry& g,
                  int64_t co0, int64_t oh, int64_t ow, bool relu) {
  const int64_t hw = g.h * g.w, taps = g.kh * g.kw, K = cin * taps, P = g.ho * g.wo;
  const __mmask16 out_mask = lanes(0, g.wo - ow);
  __m512 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t ci = 0; ci < cin; ++ci) {
    const float* xc = x + ci * hw;
    for (int64_t i = 0; i < g.kh; ++i) {
      int64_t ih[V];
      bool in[V];
      bool any = false;
      for (int v = 0; v < V; ++v) {
        ih[v] = (oh + v) * g.sh - g.ph + i * g.dh;
        in[v] = ih[v] >= 0 && ih[v] < g.h;
        any |= in[v];
      }
      if (!any) continue;
      const float* wp = w + (co0 * cin + ci) * taps + i * g.kw;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t iw0 = ow - g.pw + j;  // input column of lane 0
        const __mmask16 m = static_cast<__mmask16>(out_mask & lanes(-iw0, g.w - iw0));
        __m512 xv[V];
        for (int v = 0; v < V; ++v)
          xv[v] = in[v] ? _mm512_maskz_loadu_ps(m, xc + ih[v] * g.w + iw0) : _mm512_setzero_ps();
        for (int r = 0; r < R; ++r) {
          const __m512 wv = _mm512_set1_ps(wp[r * K + j]);
          for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
        }
      }
    }
  }
  const __m512 vzero = _mm512_setzero_ps();
  for (int r = 0; r < R; ++r) {
    const __m512 b = _mm512_set1_ps(bias ? bias[co0 + r] : 0.0f);
    for (int v = 0; v < V; ++v) {
      __m512 o = _mm512_add_ps(acc[r][v], b);
      if (relu) o = _mm512_max_ps(vzero, o);
      _mm512_mask_storeu_ps(y + (co0 + r) * P + (oh + v) * g.wo + ow, out_mask, o);
    }
  }
}

template <int V>
void rows(const float* x, const float* w, const float* bias, float* y, int64_t cin, int64_t cout,
          const ConvGeometry& g, int64_t oh, bool relu) {
  for (int64_t co0 = 0; co0 < cout; co0 += 8) {
    const int64_t r = imin(8, cout - co0);
    for (int64_t ow = 0; ow < g.wo; ow += 16) {
      switch (r) {
        case 8: block<8, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        case 7: block<7, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        case 6: block<6, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        case 5: block<5, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        case 4: block<4, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        case 3: block<3, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        case 2: block<2, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        default: block<1, V>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
      }
    }
  }
}

// Weight gradient: R output channels x J consecutive kernel columns of
// input channel ci, kernel row i, summed over images [0, n) and all output
// pixels in R x J registers (16 pixels a lane), then across lanes.
template <int R, int J>
void wblock(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout, const ConvGeometry& g,
            int64_t ci, int64_t i, int64_t co0, int64_t j0, bool accumulate) {
  const int64_t hw = g.h * g.w, P = g.ho * g.wo, taps = g.kh * g.kw;
  __m512 acc[R][J];
  for (int r = 0; r < R; ++r)
    for (int jj = 0; jj < J; ++jj) acc[r][jj] = _mm512_setzero_ps();
  for (int64_t ow = 0; ow < g.wo; ow += 16) {
    const __mmask16 out_mask = lanes(0, g.wo - ow);
    __mmask16 m[J];
    for (int jj = 0; jj < J; ++jj) {
      const int64_t iw0 = ow - g.pw + j0 + jj;  // input column of lane 0
      m[jj] = static_cast<__mmask16>(out_mask & lanes(-iw0, g.w - iw0));
    }
    const int64_t iw = ow - g.pw + j0;
    for (int64_t img = 0; img < n; ++img) {
      const float* xc = x + (img * cin + ci) * hw;
      const float* dyc = dy + (img * cout + co0) * P + ow;
      for (int64_t oh = 0; oh < g.ho; ++oh) {
        const int64_t ih = oh * g.sh - g.ph + i * g.dh;
        if (ih < 0 || ih >= g.h) continue;
        __m512 d[R];
        for (int r = 0; r < R; ++r) d[r] = _mm512_maskz_loadu_ps(out_mask, dyc + r * P + oh * g.wo);
        const float* xr = xc + ih * g.w + iw;
        for (int jj = 0; jj < J; ++jj) {
          const __m512 xv = _mm512_maskz_loadu_ps(m[jj], xr + jj);
          for (int r = 0; r < R; ++r) acc[r][jj] = _mm512_fmadd_ps(d[r], xv, acc[r][jj]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int jj = 0; jj < J; ++jj) {
      alignas(64) float l[16];  // (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized)
      _mm512_store_ps(l, acc[r][jj]);
      float sum = 0.0f;
      for (float v : l) sum += v;
      float& out = dw[((co0 + r) * cin + ci) * taps + i * g.kw + j0 + jj];
      out = accumulate ? out + sum : sum;
    }
  }
}

template <int J>
void wblocks(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout, const ConvGeometry& g,
             int64_t ci, int64_t i, int64_t j0, bool accumulate) {
  constexpr int kMaxR = 24 / J < 6 ? 24 / J : 6;  // R x J accumulators + R dy vectors fit the 32 registers
  for (int64_t co0 = 0; co0 < cout; co0 += kMaxR) {
    switch (imin(kMaxR, cout - co0)) {
#define CPUCNN_WBLOCK(r) \
  case r: if constexpr (r <= kMaxR) wblock<r, J>(x, dy, dw, n, cin, cout, g, ci, i, co0, j0, accumulate); break;
      CPUCNN_WBLOCK(6) CPUCNN_WBLOCK(5) CPUCNN_WBLOCK(4) CPUCNN_WBLOCK(3) CPUCNN_WBLOCK(2) CPUCNN_WBLOCK(1)
#undef CPUCNN_WBLOCK
      default: break;
    }
  }
}

}  // namespace

void conv2d_direct_bwd_w_avx512(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                                const ConvGeometry& g, bool accumulate) {
  // Images in groups whose x and dy stay in L2 while every (channel, tap)
  // block sweeps over them; each block then adds its sums to dw.
  const int64_t in_size = cin * g.h * g.w, out_size = cout * g.ho * g.wo;
  const int64_t group = imax(1, (int64_t(1) << 18) / imax(1, in_size + out_size));
  for (int64_t n0 = 0; n0 < n; n0 += group) {
    const int64_t ng = imin(group, n - n0);
    const float* xg = x + n0 * in_size;
    const float* dyg = dy + n0 * out_size;
    const bool acc = accumulate || n0 > 0;
    for (int64_t ci = 0; ci < cin; ++ci) {
      for (int64_t i = 0; i < g.kh; ++i) {
        for (int64_t j0 = 0; j0 < g.kw; j0 += 5) {
          switch (imin(5, g.kw - j0)) {
            case 5: wblocks<5>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            case 4: wblocks<4>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            case 3: wblocks<3>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            case 2: wblocks<2>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            default: wblocks<1>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
          }
        }
      }
    }
  }
}

void conv2d_direct_fwd_avx512(const float* x, const float* w, const float* bias, float* y, int64_t cin,
                              int64_t cout, const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu) {
  // As many output rows per block as the 32 registers allow (R x V
  // accumulators plus V input vectors): each weight broadcast then feeds V
  // FMAs. Up to 6 channels a block: 4 rows; up to 8: 3 rows.
  int64_t oh = oh0;
  if (cout <= 6)
    for (; oh + 4 <= oh1; oh += 4) rows<4>(x, w, bias, y, cin, cout, g, oh, relu);
  else
    for (; oh + 3 <= oh1; oh += 3) rows<3>(x, w, bias, y, cin, cout, g, oh, relu);
  for (; oh + 2 <= oh1; oh += 2) rows<2>(x, w, bias, y, cin, cout, g, oh, relu);
  if (oh < oh1) rows<1>(x, w, bias, y, cin, cout, g, oh, relu);
}

}  // namespace cpucnn
