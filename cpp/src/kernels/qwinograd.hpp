// The int8 Winograd F(2x2, 3x3) kernels for quantized 3x3 stride-1 convolutions
// (ops/qwinograd.cc plans and calls them). Exact integer arithmetic: the result equals the
// direct int8 convolution's int32 sums bit for bit, so the requantisation (kernels/int8.hpp's
// QGemmOut) runs unchanged.
//
// With d a 4x4 patch of input codes (stride 2 between tiles; the padding reads the zero point,
// as on the direct paths) and g a 3x3 kernel of int8 weights:
//  - V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: |V| <= 4 * 127 -> int16;
//  - U = (2G) g (2G)^T, 2G = [2 0 0; 1 1 1; 1 -1 1; 0 0 2] (4x the textbook G g G^T, so
//    integers): |U| <= 9 * 127 -> int16, made once per parameter version (the op's packing);
//  - M[pos] = sum over input channels of U[pos] V[pos] for the 16 positions: int16 x int16 pairs
//    of channels into int32 (vpmaddwd: 16 multiply-adds an instruction, 16 products per 4
//    outputs instead of 36);
//  - Y' = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1]: 4x the direct sum exactly, so Y = Y' / 4.
// Every intermediate stays within int32 when cin * 127^2 * 146 < 2^31 (qwino_fits).
//
// Layouts (cin2 = ceil(cin / 2), channel cin of an odd count is 0 in U):
//  - U: per 4-row panel p of output channels, per position pos, per channel pair c2: 8 int16,
//    rows 0..3 each as the pair (U[row][2 c2], U[row][2 c2 + 1]):
//    u[((p * 16 + pos) * cin2 + c2) * 8 + 2 * row + (c & 1)];
//  - V: per group of 16 tiles, per position, per channel pair, 16 tiles of 2 int16 (what one step
//    of the products reads: contiguous, so the 16 positions' rows never collide in L1's sets):
//    v[(((j / 16) * 16 + pos) * cin2 + c2) * 32 + (j % 16) * 2 + (c & 1)].
// Tiles of a block are numbered j = i * tw + t (tile row i, tile column t).
#pragma once

#include <cstdint>

#include "kernels/int8.hpp"

namespace cpucnn {

constexpr int kQWinoTiles = 16;  // tiles a GEMM column group (and the AVX2 input transform's step)

// Whether |every intermediate| < 2^31 for cin input channels (the bound above, in 64 bits).
// (The largest |Y'| term by term: |U[p][q]| <= 127 a_p a_q with a = (2, 3, 3, 2) from 2G's rows;
// |V[p][q]| <= 2 * 127, 4 * 127 at (1, 1); an output sums 9 positions of M, so
// |Y'| <= cin * 127^2 * (2 * 8^2 + 2 * 3^2) = cin * 127^2 * 146 over every output; |M| and the
// partial sums of the transforms are smaller.)
inline bool qwino_fits(int64_t cin) {
  return cin > 0 && cin < (int64_t(1) << 20) && cin * 127 * 127 * 146 < (int64_t(1) << 31);
}

// int16 values of V for ntiles tiles of cin channels (whole groups).
inline int64_t qwino_v_size(int64_t ntiles, int64_t cin) {
  return (ntiles + kQWinoTiles - 1) / kQWinoTiles * 16 * ((cin + 1) / 2) * 32;
}

// V of trows x tw tiles of the padded image xpad: tile (i, t) of channel c reads the 4x4 bytes
// at xpad + c * plane + (2 i + r) * wp + 2 t + k. The caller leaves 64 readable bytes past every
// channel's last padded row (2 trows + 2 rows). Writes all of qwino_v_size(trows * tw, cin)
// (the last group's tiles past the block: defined, unused).
using QWinoInputFn = void (*)(const uint8_t* xpad, int64_t plane, int64_t wp, int64_t cin, int64_t trows, int64_t tw,
                              int16_t* v);
void qwino_input_scalar(const uint8_t* xpad, int64_t plane, int64_t wp, int64_t cin, int64_t trows, int64_t tw,
                        int16_t* v);
void qwino_input_avx2(const uint8_t* xpad, int64_t plane, int64_t wp, int64_t cin, int64_t trows, int64_t tw,
                      int16_t* v);

// Where the outputs of a block go: o.y8 / o.yf point at output channel 0 of the call's rows
// (o.ibias, o.mult, o.add likewise), planes o.row_stride apart; tile (i, t)'s output (a, b) is at
// 2 i + a rows of wo and column 2 t + b of that plane, written only where 2 i + a < rows and
// 2 t + b < wo.
struct QWinoOut {
  QGemmOut o;
  int64_t tw = 0, wo = 0, rows = 0;
};

// For output channels [0, m) (the panels at u) and tiles [0, ntiles) of V: M = U V per position,
// Y = A^T M A / 4, requantised (o) into the outputs. Allocates nothing, throws nothing.
using QWinoGemmFn = void (*)(const int16_t* u, int64_t m, int64_t cin2, const int16_t* v, int64_t ntiles,
                             const QWinoOut& out);
void qwino_gemm_scalar(const int16_t* u, int64_t m, int64_t cin2, const int16_t* v, int64_t ntiles,
                       const QWinoOut& out);
void qwino_gemm_avx2(const int16_t* u, int64_t m, int64_t cin2, const int16_t* v, int64_t ntiles, const QWinoOut& out);

// U of m x cin 3x3 kernels w (PyTorch order, integers in [-127, 127] as floats) in the layout
// above (ISA-independent, scalar).
void qwino_pack_weights(const float* w, int64_t m, int64_t cin, int16_t* u);

}  // namespace cpucnn
