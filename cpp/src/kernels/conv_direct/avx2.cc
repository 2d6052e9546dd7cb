// Direct convolution (forward and weight gradient) for AVX2: the AVX-512
// design (conv_direct/avx512.cc) re-blocked for 16 ymm registers of 8
// lanes. Each output register holds 8 pixels of an output row; a block of R
// output channels by V output rows takes R x V accumulators, V input vectors
// and a broadcast weight (R x V + V + 1 <= 16): up to 6 channels by 2 rows,
// 4 by 3, 2 by 5 or 1 by 6. Columns outside the input (padding, the row's
// end) are masked loads, only in the blocks that reach them. Stride 1 and
// dilation 1 along W, groups 1 (the op checks).
#include <immintrin.h>

#include "kernels/avx2_lanes.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

namespace {

using avx2::hsum;
using avx2::lanes;
using avx2::store_first;

// Rows per block for R channels: R x V + V + 1 registers, at most 6 rows.
constexpr int rows_for(int r) { return 15 / (r + 1) < 6 ? 15 / (r + 1) : 6; }

// R output channels x V output rows, 8 columns from ow.
template <int R, int V>
void block(const float* x, const float* w, const float* bias, float* y, int64_t cin, const ConvGeometry& g,
           int64_t co0, int64_t oh, int64_t ow, bool relu) {
  const int64_t hw = g.h * g.w, taps = g.kh * g.kw, K = cin * taps, P = g.ho * g.wo;
  const int64_t nout = imin(8, g.wo - ow);
  __m256 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
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
        __m256 xv[V];
        if (iw0 >= 0 && iw0 + 8 <= g.w && nout == 8) {
          for (int v = 0; v < V; ++v) xv[v] = in[v] ? _mm256_loadu_ps(xc + ih[v] * g.w + iw0) : _mm256_setzero_ps();
        } else {  // lanes [-iw0, w - iw0) are inside the row, [0, nout) are outputs
          const __m256i m = lanes(-iw0, imin(g.w - iw0, nout));
          for (int v = 0; v < V; ++v)
            xv[v] = in[v] ? _mm256_maskload_ps(xc + ih[v] * g.w + iw0, m) : _mm256_setzero_ps();
        }
        for (int r = 0; r < R; ++r) {
          const __m256 wv = _mm256_broadcast_ss(wp + r * K + j);
          for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(wv, xv[v], acc[r][v]);
        }
      }
    }
  }
  const __m256 vzero = _mm256_setzero_ps();
  for (int r = 0; r < R; ++r) {
    const __m256 b = _mm256_set1_ps(bias ? bias[co0 + r] : 0.0f);
    for (int v = 0; v < V; ++v) {
      __m256 o = _mm256_add_ps(acc[r][v], b);
      if (relu) o = _mm256_max_ps(vzero, o);
      store_first(y + (co0 + r) * P + (oh + v) * g.wo + ow, o, nout);
    }
  }
}

// Output rows [oh0, oh1) of R channels from co0: blocks of rows_for(R) rows,
// then the rest one block.
template <int R>
void channels(const float* x, const float* w, const float* bias, float* y, int64_t cin, const ConvGeometry& g,
              int64_t co0, int64_t oh0, int64_t oh1, bool relu) {
  constexpr int kV = rows_for(R);
  for (int64_t oh = oh0; oh < oh1; oh += kV) {
    const int64_t v = imin(kV, oh1 - oh);
    for (int64_t ow = 0; ow < g.wo; ow += 8) {
      switch (v) {
#define CPUCNN_BLOCK(n) \
  case n: if constexpr (n <= kV) block<R, n>(x, w, bias, y, cin, g, co0, oh, ow, relu); break;
        CPUCNN_BLOCK(6) CPUCNN_BLOCK(5) CPUCNN_BLOCK(4) CPUCNN_BLOCK(3) CPUCNN_BLOCK(2) CPUCNN_BLOCK(1)
#undef CPUCNN_BLOCK
        default: break;
      }
    }
  }
}

// Weight gradient: R output channels x J consecutive kernel columns of
// input channel ci, kernel row i, summed over images [0, n) and all output
// pixels in R x J registers (8 pixels a lane), then across lanes. R x J
// accumulators, R dy vectors and an input vector: R (J + 1) + 1 <= 16.
template <int R, int J>
void wblock(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout, const ConvGeometry& g,
            int64_t ci, int64_t i, int64_t co0, int64_t j0, bool accumulate) {
  const int64_t hw = g.h * g.w, P = g.ho * g.wo, taps = g.kh * g.kw;
  __m256 acc[R][J];
  for (int r = 0; r < R; ++r)
    for (int jj = 0; jj < J; ++jj) acc[r][jj] = _mm256_setzero_ps();
  for (int64_t ow = 0; ow < g.wo; ow += 8) {
    const int64_t nout = imin(8, g.wo - ow);
    const int64_t iw = ow - g.pw + j0;  // input column of lane 0, column j0
    // Inside: every load of the block a full vector of the row.
    const bool inside = nout == 8 && iw >= 0 && iw + J - 1 + 8 <= g.w;
    const __m256i dmask = avx2::first_lanes(nout);
    __m256i m[J];  // the input lanes of column j0 + jj inside the row, of output pixels
    for (int jj = 0; jj < J; ++jj) m[jj] = lanes(-(iw + jj), imin(g.w - (iw + jj), nout));
    for (int64_t img = 0; img < n; ++img) {
      const float* xc = x + (img * cin + ci) * hw;
      const float* dyc = dy + (img * cout + co0) * P + ow;
      for (int64_t oh = 0; oh < g.ho; ++oh) {
        const int64_t ih = oh * g.sh - g.ph + i * g.dh;
        if (ih < 0 || ih >= g.h) continue;
        const float* xr = xc + ih * g.w + iw;
        __m256 d[R];
        if (inside) {
          for (int r = 0; r < R; ++r) d[r] = _mm256_loadu_ps(dyc + r * P + oh * g.wo);
          for (int jj = 0; jj < J; ++jj) {
            const __m256 xv = _mm256_loadu_ps(xr + jj);
            for (int r = 0; r < R; ++r) acc[r][jj] = _mm256_fmadd_ps(d[r], xv, acc[r][jj]);
          }
        } else {  // dy lanes past the row's end are zero, x lanes outside the input too
          for (int r = 0; r < R; ++r) d[r] = _mm256_maskload_ps(dyc + r * P + oh * g.wo, dmask);
          for (int jj = 0; jj < J; ++jj) {
            const __m256 xv = _mm256_maskload_ps(xr + jj, m[jj]);
            for (int r = 0; r < R; ++r) acc[r][jj] = _mm256_fmadd_ps(d[r], xv, acc[r][jj]);
          }
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int jj = 0; jj < J; ++jj) {
      const float sum = hsum(acc[r][jj]);
      float& out = dw[((co0 + r) * cin + ci) * taps + i * g.kw + j0 + jj];
      out = accumulate ? out + sum : sum;
    }
  }
}

template <int J>
void wblocks(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout, const ConvGeometry& g,
             int64_t ci, int64_t i, int64_t j0, bool accumulate) {
  constexpr int kMaxR = 15 / (J + 1) < 6 ? 15 / (J + 1) : 6;
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

void conv2d_direct_bwd_w_avx2(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                              const ConvGeometry& g, bool accumulate) {
  // Images in groups whose x and dy stay in L2 while every (channel, tap)
  // block sweeps over them; each block then adds its sums to dw.
  const int64_t in_size = cin * g.h * g.w, out_size = cout * g.ho * g.wo;
  const int64_t group = imax(1, (int64_t(1) << 17) / imax(1, in_size + out_size));
  for (int64_t n0 = 0; n0 < n; n0 += group) {
    const int64_t ng = imin(group, n - n0);
    const float* xg = x + n0 * in_size;
    const float* dyg = dy + n0 * out_size;
    const bool acc = accumulate || n0 > 0;
    for (int64_t ci = 0; ci < cin; ++ci) {
      for (int64_t i = 0; i < g.kh; ++i) {
        // Kernel columns 5 at a time (3 when the kernel is 3 or 6 wide).
        for (int64_t j0 = 0; j0 < g.kw;) {
          const int64_t left = g.kw - j0;
          const int64_t jn = left == 3 || left == 6 ? 3 : imin(5, left);
          switch (jn) {
            case 5: wblocks<5>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            case 4: wblocks<4>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            case 3: wblocks<3>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            case 2: wblocks<2>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
            default: wblocks<1>(xg, dyg, dw, ng, cin, cout, g, ci, i, j0, acc); break;
          }
          j0 += jn;
        }
      }
    }
  }
}

void conv2d_direct_fwd_avx2(const float* x, const float* w, const float* bias, float* y, int64_t cin, int64_t cout,
                            const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu) {
  // Up to 6 channels: one block of all of them (2 rows); more: blocks of 4
  // (3 rows), then the 1 to 3 left (3, 5 or 6 rows).
  const int64_t step = cout <= 6 ? cout : 4;
  for (int64_t co0 = 0; co0 < cout; co0 += step) {
    switch (imin(step, cout - co0)) {
#define CPUCNN_CHANNELS(r) \
  case r: channels<r>(x, w, bias, y, cin, g, co0, oh0, oh1, relu); break;
      CPUCNN_CHANNELS(6) CPUCNN_CHANNELS(5) CPUCNN_CHANNELS(4) CPUCNN_CHANNELS(3) CPUCNN_CHANNELS(2)
      CPUCNN_CHANNELS(1)
#undef CPUCNN_CHANNELS
      default: break;
    }
  }
}

}  // namespace cpucnn
