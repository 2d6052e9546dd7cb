// Forward convolution with the output channels in the vector lanes, 8 a
// register and any count of them (padded to a multiple of 8), for thin
// layers on AVX2: few input channels (the 1- and 3-channel first layers of
// convnet_s and vgg_s) or few output channels (lenet5). The design of the
// NCHW-input convolution of onnxruntime's MLAS (its NCHWc kernels), written
// for NCHW in and out:
//
// - per image, the input is copied into a zero-padded buffer when the layer
//   pads (no bounds checks in the loops; otherwise it is read in place);
// - a block of NP consecutive output pixels of a row x NB registers of
//   channels (NB * NP accumulators, at most 12) runs over every tap
//   (input channel, kernel row, kernel column) from a table of input
//   offsets: per tap NB weight loads, NP broadcast input pixels and
//   NB * NP FMAs. 16 channels a pass (6 pixels) or, for at most 8 channels,
//   8 channels a pass (12 pixels). The rows are split into near-equal
//   blocks (28 = 10 + 9 + 9), so no block is left with too few
//   accumulators to hide the FMA latency;
// - accumulators start at the bias and end with the ReLU, are stored
//   pixel-major into a small tile (a few rows, in L1), and the tile is
//   turned into channel planes by 8x8 register transposes.
//
// The accumulators are named variables through a fixed-size array indexed
// only by template constants in a single tap loop, which GCC keeps in
// registers (nested tap loops made it spill them to the stack every tap).
#include <immintrin.h>

#include <string.h>

#include "kernels/avx2_lanes.hpp"
#include "kernels/conv_oc/layout.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {

namespace {

using avx2::store_first;
using avx2::transpose8;

// NB registers of channels (from block cb) x NP pixels from `in` (the
// input at the block's first pixel, pixels sw apart), over all taps.
template <int NB, int NP>
inline void block(const float* in, int64_t sw, const int32_t* off, int64_t taps, const float* wl, int64_t wstride,
                  const float* bl, bool relu, float* out, int64_t ostride) {
  __m256 acc[NB * NP];
  for (int b = 0; b < NB; ++b) {
    const __m256 bv = _mm256_loadu_ps(bl + 8 * b);
    for (int p = 0; p < NP; ++p) acc[b * NP + p] = bv;
  }
  if (sw == 1) {
    for (int64_t t = 0; t < taps; ++t) {
      const float* x = in + off[t];
      __m256 w[NB];
      for (int b = 0; b < NB; ++b) w[b] = _mm256_loadu_ps(wl + b * wstride + 8 * t);
      for (int p = 0; p < NP; ++p) {
        const __m256 xv = _mm256_broadcast_ss(x + p);
        for (int b = 0; b < NB; ++b) acc[b * NP + p] = _mm256_fmadd_ps(xv, w[b], acc[b * NP + p]);
      }
    }
  } else {
    for (int64_t t = 0; t < taps; ++t) {
      const float* x = in + off[t];
      __m256 w[NB];
      for (int b = 0; b < NB; ++b) w[b] = _mm256_loadu_ps(wl + b * wstride + 8 * t);
      for (int p = 0; p < NP; ++p) {
        const __m256 xv = _mm256_broadcast_ss(x + p * sw);
        for (int b = 0; b < NB; ++b) acc[b * NP + p] = _mm256_fmadd_ps(xv, w[b], acc[b * NP + p]);
      }
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int b = 0; b < NB; ++b)
    for (int p = 0; p < NP; ++p) {
      __m256 v = acc[b * NP + p];
      if (relu) v = _mm256_max_ps(zero, v);
      _mm256_storeu_ps(out + p * ostride + 8 * b, v);
    }
}

template <int NB>
void block_n(int64_t np, const float* in, int64_t sw, const int32_t* off, int64_t taps, const float* wl,
             int64_t wstride, const float* bl, bool relu, float* out, int64_t ostride) {
  switch (np) {
#define CPUCNN_OC(n)                                                                      \
  case n:                                                                                 \
    if constexpr (NB * n <= 12) block<NB, n>(in, sw, off, taps, wl, wstride, bl, relu, out, ostride); \
    break;
    CPUCNN_OC(1) CPUCNN_OC(2) CPUCNN_OC(3) CPUCNN_OC(4) CPUCNN_OC(5) CPUCNN_OC(6)
    CPUCNN_OC(7) CPUCNN_OC(8) CPUCNN_OC(9) CPUCNN_OC(10) CPUCNN_OC(11) CPUCNN_OC(12)
#undef CPUCNN_OC
    default:
      break;
  }
}

// tile (pixels x cpad, pixel-major) -> channel planes of y from pixel q0.
void tile_to_planes(const float* tile, int64_t cpad, int64_t cout, int64_t pixels, float* y, int64_t plane,
                    int64_t q0) {
  for (int64_t c0 = 0; c0 < cout; c0 += 8) {
    const int64_t nc = imin(8, cout - c0);
    for (int64_t p0 = 0; p0 < pixels; p0 += 8) {
      const int64_t np = imin(8, pixels - p0);
      __m256 r[8];
      for (int p = 0; p < 8; ++p) r[p] = _mm256_loadu_ps(tile + (p0 + (p < np ? p : 0)) * cpad + c0);
      transpose8(r);
      for (int64_t c = 0; c < nc; ++c) store_first(y + (c0 + c) * plane + q0 + p0, r[c], np);
    }
  }
}

}  // namespace

void conv2d_oc_fwd_avx2(const float* x, const float* wl, const float* bl, float* y, int64_t cin, int64_t cout,
                        const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu, float* scratch) {
  const OcLayout l = oc_layout(cin, cout, g);
  float* xp = scratch;
  int32_t* off = reinterpret_cast<int32_t*>(scratch + (l.copy ? cin * l.hp * l.wp : 0));
  float* tile = scratch + (l.copy ? cin * l.hp * l.wp : 0) + (l.taps + 15) / 16 * 16;
  const float* in = x;
  if (l.copy) {
    memset(xp, 0, static_cast<size_t>(cin * l.hp * l.wp) * sizeof(float));
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t r = 0; r < g.h; ++r)
        memcpy(xp + (c * l.hp + r + g.ph) * l.wp + g.pw, x + (c * g.h + r) * g.w, static_cast<size_t>(g.w) * sizeof(float));
    in = xp;
  }
  for (int64_t c = 0, t = 0; c < cin; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j, ++t) off[t] = static_cast<int32_t>((c * l.hp + i * g.dh) * l.wp + j * g.dw);
  const int64_t plane = g.ho * g.wo, wstride = 8 * l.taps;
  const int nb = l.cpad > 8 ? 2 : 1;
  const int64_t max_np = nb == 2 ? 6 : 12;
  const int64_t blocks = (g.wo + max_np - 1) / max_np;  // per row, of near-equal widths
  for (int64_t r0 = oh0; r0 < oh1; r0 += l.tile_rows) {
    const int64_t r1 = imin(oh1, r0 + l.tile_rows);
    for (int64_t oh = r0; oh < r1; ++oh) {
      const float* row = in + oh * g.sh * l.wp;
      float* trow = tile + (oh - r0) * g.wo * l.cpad;
      for (int64_t k = 0; k < blocks; ++k) {
        const int64_t ow0 = g.wo * k / blocks, ow1 = g.wo * (k + 1) / blocks;
        const float* bin = row + ow0 * g.sw;
        float* bout = trow + ow0 * l.cpad;
        int64_t cb = 0;
        for (; cb + 2 <= l.cpad / 8; cb += 2)
          block_n<2>(ow1 - ow0, bin, g.sw, off, l.taps, wl + cb * wstride, wstride, bl + 8 * cb, relu, bout + 8 * cb,
                     l.cpad);
        if (cb < l.cpad / 8) {
          if (nb == 1) {
            block_n<1>(ow1 - ow0, bin, g.sw, off, l.taps, wl + cb * wstride, wstride, bl + 8 * cb, relu,
                       bout + 8 * cb, l.cpad);
          } else {  // an odd last register of channels: 6-pixel pieces
            for (int64_t p = ow0; p < ow1; p += 6)
              block_n<1>(imin(6, ow1 - p), row + p * g.sw, g.sw, off, l.taps, wl + cb * wstride, wstride,
                         bl + 8 * cb, relu, trow + p * l.cpad + 8 * cb, l.cpad);
          }
        }
      }
    }
    tile_to_planes(tile, l.cpad, cout, (r1 - r0) * g.wo, y, plane, r0 * g.wo);
  }
}

}  // namespace cpucnn
