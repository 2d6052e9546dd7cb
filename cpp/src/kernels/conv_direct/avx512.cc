// Direct convolution (forward) for AVX-512, for layers whose GEMM would be
// too thin to pay for unfolding the input: few output channels or a short
// reduction (cin*kh*kw). No im2col and no packing: each output register
// holds 16 pixels of an output row; a block of up to 8 output channels by 2
// output rows is accumulated in 16 registers, so each input vector loaded is
// used for up to 8 FMAs and each weight broadcast for 2. Stride 1 along W,
// dilation 1 along W, groups 1 (the op checks).
#include <immintrin.h>

#include <algorithm>

#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

inline __mmask16 lanes(int64_t lo, int64_t hi) {  // lanes [lo, hi) of 0..15, clipped, branch-free
  const unsigned l = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(lo, 0), 16));
  const unsigned h = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(hi, 0), 16));
  return static_cast<__mmask16>(((1u << h) - 1u) & ~((1u << l) - 1u));
}

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
      if (relu) o = _mm512_max_ps(o, vzero);
      _mm512_mask_storeu_ps(y + (co0 + r) * P + (oh + v) * g.wo + ow, out_mask, o);
    }
  }
}

template <int V>
void rows(const float* x, const float* w, const float* bias, float* y, int64_t cin, int64_t cout,
          const ConvGeometry& g, int64_t oh, bool relu) {
  for (int64_t co0 = 0; co0 < cout; co0 += 8) {
    const int64_t r = std::min<int64_t>(8, cout - co0);
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

}  // namespace

void conv2d_direct_fwd_avx512(const float* x, const float* w, const float* bias, float* y, int64_t cin,
                              int64_t cout, const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu) {
  int64_t oh = oh0;
  for (; oh + 2 <= oh1; oh += 2) rows<2>(x, w, bias, y, cin, cout, g, oh, relu);
  if (oh < oh1) rows<1>(x, w, bias, y, cin, cout, g, oh, relu);
}

}  // namespace cpucnn
