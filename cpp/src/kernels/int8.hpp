// The int8 inference kernels (quantized Conv2D / Dense): declarations, one
// place. dispatch/ picks among them (KernelTable::qgemm...).
//
// The scheme, the same on every ISA so a quantized model gives bit-identical
// outputs whatever runs it:
//  - weights: symmetric int8 in [-127, 127], one scale per output channel;
//  - activations: unsigned, 7 bits: q in [0, 127] with a per-tensor scale
//    and zero point (x = (q - zp) * scale).
// Why 7-bit activations: AVX2's vpmaddubsw multiplies u8 x s8 pairs and
// adds each pair into a *saturating* int16. With q <= 127 and |w| <= 127 a
// pair sum is at most 2 * 127 * 127 = 32258 < 32767, so it never saturates
// and AVX2 equals the scalar reference (and VNNI's vpdpbusd, which has no
// int16 step) exactly. Full 8-bit activations would need the slower
// widen-to-int16 + vpmaddwd route; 7 bits cost ~0.1% accuracy here.
// Sums are int32: K (taps x input channels) is limited to kQMaxK so that
// K * 127 * 127 plus the zero-point correction cannot overflow.
//
// Layouts (k4 = ceil(K / 4); bytes past K or past the last row/column are 0):
//  - packed weights: ceil(M / 4) panels of 4 rows; panel p, group g holds
//    rows 4p..4p+3, each as the 4 bytes w[row][4g .. 4g+3]: 16 bytes a group;
//  - packed activations (B): one panel of `nr` columns (the table's qgemm_nr);
//    group g holds, for each column j, the 4 bytes x[4g .. 4g+3][j].
// Each int32 lane of a product then sums 4 consecutive k: vpdpbusd, or
// vpmaddubsw + vpmaddwd(ones).
#pragma once

#include <cstdint>

namespace cpucnn {

constexpr int kQPanelRows = 4;
constexpr int64_t kQActMax = 127;
constexpr int64_t kQMaxK = int64_t(1) << 16;

// Requantisation of rows [0, m) of one output panel, fused with the bias and
// ReLU: v = fma(float(acc + ibias[r]), mult[r], add[r]) (one rounding, a
// fused multiply-add on every ISA: the compiler may contract a separate
// multiply and add in vector code, so the reference fuses it too), then
//  - u8 output (y8): q = rint(min(max(v, lo), hi)) (round half to even);
//    ReLU is lo = the output zero point;
//  - float output (yf): v, or max(v, 0) with relu.
// Output element (r, j) is at y[r * row_stride + j * col_stride].
struct QGemmOut {
  const int32_t* ibias = nullptr;
  const float* mult = nullptr;
  const float* add = nullptr;
  float lo = 0.0f, hi = 127.0f;
  bool relu = false;
  uint8_t* y8 = nullptr;
  float* yf = nullptr;
  int64_t row_stride = 0, col_stride = 1;
};

// C (m x nc) = A (packed weights, m rows, k4 groups) x B (one packed panel,
// nc <= nr valid columns), requantised into o. Allocates nothing, throws nothing.
using QGemmFn = void (*)(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
void qgemm_scalar(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
void qgemm_avx2(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
void qgemm_avxvnni(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
void qgemm_avx512vnni(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
constexpr int kQgemmNrScalar = 8, kQgemmNrAvx2 = 16, kQgemmNrAvx512 = 32;
// aarch64: plain NEON (ARMv8.0: SMULL/SMLAL + SADALP) and the dot-product variant (SDOT, HWCAP
// asimddp); both 4 x 16 tiles.
void qgemm_neon(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
void qgemm_neondot(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o);
constexpr int kQgemmNrNeon = 16;
// One column (Dense at batch 1..few): y = A x for rows [0, m) (m a multiple of 8 or the
// whole matrix; A packed as above), x u8 with k4 * 4 bytes (zeros past k), requantised into
// o (column 0). The output rows sit in the vector lanes, so no lane is wasted on absent columns.
using QGemvFn = void (*)(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o);
void qgemv_scalar(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o);
void qgemv_avx2(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o);
void qgemv_neondot(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o);

// Packing (ISA-independent, scalar).
// Weights: w holds m x k integer values in [-127, 127] (as floats).
void qpack_weights(const float* w, int64_t m, int64_t k, int8_t* a);
// Conv: columns [p0, p0 + nc) of the im2col matrix of one u8 image (cin, h, w)
// into a B panel of nr columns; taps outside the image read `zp`.
struct QConvGeo {
  int64_t cin, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo;
};
void qpack_conv_cols(const uint8_t* x, const QConvGeo& g, uint8_t zp, int64_t p0, int64_t nc, int64_t nr, int64_t k4,
                     uint8_t* b);
// Faster conv packing in two steps: im2col of columns [c0, c0 + nc) of one u8 image
// into col (K rows, ldcol bytes apart; byte runs copied whole), then 4-row
// interleaving of col's first `cols` columns (a multiple of nr) into
// cols / nr consecutive B panels.
void qim2col_block(const uint8_t* x, const QConvGeo& g, uint8_t zp, int64_t c0, int64_t nc, uint8_t* col,
                   int64_t ldcol);
void qinterleave(const uint8_t* col, int64_t ldcol, int64_t k, int64_t cols, int64_t nr, int64_t k4, uint8_t* b);
// Stride-1 convolutions without im2col: on an image padded with its zero point (planes of
// hp x wp), tap k of output "wide" position q (q = oh * wp + ow, ow < wp) reads xpad[koff[k] + q],
// so row k of B is a contiguous run. Packs wide columns [q0, q0 + nr) (bytes past the padded
// image must be readable: the caller leaves nr + wp bytes of slack).
void qpack_shifted(const uint8_t* xpad, const int64_t* koff, int64_t k, int64_t q0, int64_t nr, int64_t k4,
                   uint8_t* b);
// The same without junk columns: panel column j reads position delta[s] + j of each shifted
// run, s the segment holding j (segments [start[s], start[s + 1]), start[0] = 0, the last one
// reaching nr), so a panel of compact output positions spanning several output rows packs
// straight from the padded image. The caller leaves readable slack: 64 bytes before xpad and
// nr + wp + 64 after the padded image.
constexpr int kQMaxSegs = 8;
struct QShiftSegs {
  int n = 0;
  int64_t start[kQMaxSegs] = {};
  int64_t delta[kQMaxSegs] = {};
};
void qpack_shifted_segs(const uint8_t* xpad, const int64_t* koff, int64_t k, const QShiftSegs& segs, int64_t nr,
                        int64_t k4, uint8_t* b);
// Channel-interleaved ("c4") stride-1 convolutions, for cin a multiple of 4: the padded image
// holds, per group of 4 channels, planes of hp x wp positions of 4 bytes (the 4 channels), and
// K runs tap-major (k = tap * cin + c), so a group of 4 k is 4 channels of one tap and its B row
// for column j is the 4 bytes at position q_j + the tap's offset: the panel's group is a copy of
// runs of the image, not a byte interleave. qpad_c4_row writes one padded row (wp positions)
// of 4 channels: channel rows x, x + chan_stride, ... (w bytes each) at positions [pw, pw + w),
// zp elsewhere. qpack_c4 packs one panel: group g's column j (segment s) is the 4 bytes at
// xpad4 + goff[g] + 4 * (segs.delta[s] + j) (slack as for qpack_shifted_segs, times 4).
void qpad_c4_row(const uint8_t* x, int64_t chan_stride, int64_t w, int64_t pw, int64_t wp, uint8_t zp, uint8_t* dst);
void qpack_c4(const uint8_t* xpad4, const int64_t* goff, int64_t k4, const QShiftSegs& segs, int64_t nr,
              uint8_t* b);
// Dense: rows [j0, j0 + nc) of x (rows ldx bytes apart, k long) as the columns of a B panel.
void qpack_rows(const uint8_t* x, int64_t ldx, int64_t k, int64_t j0, int64_t nc, int64_t nr, int64_t k4, uint8_t* b);

// q = min(max(rint(x / scale) + zp, 0), 127) (ONNX QuantizeLinear's rounding, 7-bit range).
using QuantizeFn = void (*)(const float* x, uint8_t* q, int64_t n, float scale, float zp);
void quantize_u7_scalar(const float* x, uint8_t* q, int64_t n, float scale, float zp);
void quantize_u7_avx2(const float* x, uint8_t* q, int64_t n, float scale, float zp);
void quantize_u7_neon(const float* x, uint8_t* q, int64_t n, float scale, float zp);
// x = (q - zp) * scale.
using DequantizeFn = void (*)(const uint8_t* q, float* x, int64_t n, float scale, float zp);
void dequantize_u8_scalar(const uint8_t* q, float* x, int64_t n, float scale, float zp);
void dequantize_u8_avx2(const uint8_t* q, float* x, int64_t n, float scale, float zp);
void dequantize_u8_neon(const uint8_t* q, float* x, int64_t n, float scale, float zp);
// Max pooling of u8 planes (padding never wins: it reads as 0, the smallest code).
struct Pool2dParams;
using QMaxPoolFn = void (*)(const uint8_t* x, uint8_t* y, int64_t planes, const Pool2dParams& p);
void qmaxpool2d_scalar(const uint8_t* x, uint8_t* y, int64_t planes, const Pool2dParams& p);
void qmaxpool2d_avx2(const uint8_t* x, uint8_t* y, int64_t planes, const Pool2dParams& p);
// y = max(x, lo) (ReLU on codes: lo is the zero point); may run in place.
void qrelu_u8(const uint8_t* x, uint8_t* y, int64_t n, uint8_t lo);

}  // namespace cpucnn
