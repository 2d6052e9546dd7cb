// Every kernel of every ISA, declared once. dispatch/ picks among them.
// Naming: <op>_<isa>. Each ISA's definitions live in kernels/<op>/<isa>.cc,
// compiled with that ISA's flags only.
#pragma once

#include <cstdint>

#include "kernels/params.hpp"

namespace cpucnn {

// GEMM: C (+)= op(A) * op(B), all row-major with leading dimensions.
struct GemmTile {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;  // beta = 1 (else 0)
  // When set, B is never read directly: packed panels of rows [p0, p0+kc)
  // and columns [j0, j0+nc) come from this instead (implicit im2col).
  void (*pack_b_fn)(const void* ctx, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) = nullptr;
  const void* pack_b_ctx = nullptr;
  // When set, A is never read directly: it is already packed (GemmPackAFn),
  // MR-row panels over all of K, panel i at packed_a + i * k * MR.
  const float* packed_a = nullptr;
  // When set, B is never read directly: it is already packed (GemmPackBFn),
  // NR-column panels over all of K, panel j at packed_b + j * k * NR (tiles
  // then start at multiples of NR columns).
  const float* packed_b = nullptr;
};
constexpr int64_t kGemmKc = 256;  // depth of a packed block (a B micro-panel stays in L1)
constexpr int64_t kGemmMc = 192;  // rows of A packed at once (in L2); a multiple of every MR
// One C tile [i0, i0+mc) x [j0, j0+nc) over all of K: each depth block of B
// is packed once for the whole tile, A kGemmMc rows at a time. `ap` and `bp`
// are packing buffers of at least min(k, kGemmKc) * round_up(min(mc, kGemmMc), MR)
// and min(k, kGemmKc) * round_up(nc, NR) floats.
using GemmTileFn = void (*)(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp);
void gemm_tile_scalar(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp);
void gemm_tile_avx2(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp);
void gemm_tile_avx512(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp);
// Packs all of op(A) (m x k) into MR-row panels for GemmTile::packed_a:
// round_up(m, MR) * k floats.
using GemmPackAFn = void (*)(const GemmTile& t, float* dst);
void gemm_pack_a_scalar(const GemmTile& t, float* dst);
void gemm_pack_a_avx2(const GemmTile& t, float* dst);
void gemm_pack_a_avx512(const GemmTile& t, float* dst);
// Packs all of op(B) (k x n) into NR-column panels for GemmTile::packed_b:
// round_up(n, NR) * k floats (a Dense layer's weights, once per version).
using GemmPackBFn = void (*)(const GemmTile& t, float* dst);
void gemm_pack_b_scalar(const GemmTile& t, float* dst);
void gemm_pack_b_avx2(const GemmTile& t, float* dst);
void gemm_pack_b_avx512(const GemmTile& t, float* dst);
// y[j] (+)= dot(w row j, x), j < n (rows ldw apart, k long).
using GemvRowsFn = void (*)(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate);
void gemv_rows_scalar(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate);
void gemv_rows_avx2(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate);
void gemv_rows_avx512(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate);
constexpr int kGemmMrScalar = 4, kGemmNrScalar = 8;
// The FMA peak probe (benchmarks only): `iters` rounds of independent FMA
// chains acc = acc * m + a (use 0 < m < 1 so the values settle); their sum
// goes to *sink. Returns the FLOPs done (an FMA counts 2 a lane).
int64_t fma_chains_avx2(int64_t iters, float m, float a, float* sink);
int64_t fma_chains_avx512(int64_t iters, float m, float a, float* sink);
constexpr int kGemmMrAvx2 = 6, kGemmNrAvx2 = 16;
constexpr int kGemmMrAvx512 = 8, kGemmNrAvx512 = 32;

// im2col / col2im for one image (see kernels/im2col.hpp for the layout).
struct ConvGeometry;
// Implicit im2col straight into GEMM B panels (NR columns wide) for
// `samples` images whose unfolded columns sit side by side (sample-major).
struct Im2colPackArgs {
  const float* x;            // first image's first channel of the group
  int64_t sample_stride;     // floats between images
  int64_t channels;          // channels of the group
  const ConvGeometry* geo;
};
// Direct convolution forward of one image, output rows [oh0, oh1), all
// output channels; bias may be null; relu applies max(0, .). Stride 1 and
// dilation 1 along W, groups 1.
using ConvDirectFwdFn = void (*)(const float* x, const float* w, const float* bias, float* y, int64_t cin,
                                 int64_t cout, const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu);
void conv2d_direct_fwd_avx2(const float* x, const float* w, const float* bias, float* y, int64_t cin, int64_t cout,
                            const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu);
void conv2d_direct_fwd_avx512(const float* x, const float* w, const float* bias, float* y, int64_t cin,
                              int64_t cout, const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu);
// Direct weight gradient of images [0, n): dw[co][ci][i][j] (+)= sum of
// dy[img][co] x the input window (tap i, j). Stride 1 and dilation 1 along
// W, groups 1.
using ConvDirectBwdWFn = void (*)(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                                  const ConvGeometry& g, bool accumulate);
void conv2d_direct_bwd_w_avx2(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                              const ConvGeometry& g, bool accumulate);
void conv2d_direct_bwd_w_avx512(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                                const ConvGeometry& g, bool accumulate);
// Direct convolution forward with 16 images in the vector lanes, for thin
// layers (any output channel count; meant for a few): images [0, n), w as
// given ([cout][cin][kh][kw]), bias may be null. Stride 1 and dilation 1
// along W, groups 1. `scratch`: the conv2d_batch_scratch floats of one thread.
int64_t conv2d_batch_scratch(int64_t cin, int64_t cout, const ConvGeometry& g);
using ConvBatchFwdFn = void (*)(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t cin,
                                int64_t cout, const ConvGeometry& g, bool relu, float* scratch);
void conv2d_batch_fwd_avx2(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t cin,
                           int64_t cout, const ConvGeometry& g, bool relu, float* scratch);
void conv2d_batch_fwd_avx512(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t cin,
                             int64_t cout, const ConvGeometry& g, bool relu, float* scratch);
// Its weight gradient of images [0, n) into dw ([cout][cin][kh][kw],
// overwritten); kw 3 or 5.
using ConvBatchBwdWFn = void (*)(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                                 const ConvGeometry& g, float* scratch);
void conv2d_batch_bwd_w_avx2(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                             const ConvGeometry& g, float* scratch);
void conv2d_batch_bwd_w_avx512(const float* x, const float* dy, float* dw, int64_t n, int64_t cin, int64_t cout,
                               const ConvGeometry& g, float* scratch);
// Convolution with the output channels in the vector lanes (16 a register)
// for thin layers with a multiple of 16 output channels: forward of images
// [0, n) with the weights as wl[ci][i][j][co] (bias may be null), and the
// weight gradient of images [0, n) into dwl (same layout, overwritten; kw 3
// or 5).
// Stride 1 and dilation 1 along W, groups 1. `scratch`: the
// conv2d_lanes_scratch floats of one thread.
int64_t conv2d_lanes_scratch(int64_t cin, int64_t cout, const ConvGeometry& g);
using ConvLanesFwdFn = void (*)(const float* x, const float* wl, const float* bias, float* y, int64_t n, int64_t cin,
                                int64_t cout, const ConvGeometry& g, bool relu, float* scratch);
void conv2d_lanes_fwd_avx2(const float* x, const float* wl, const float* bias, float* y, int64_t n, int64_t cin,
                           int64_t cout, const ConvGeometry& g, bool relu, float* scratch);
void conv2d_lanes_fwd_avx512(const float* x, const float* wl, const float* bias, float* y, int64_t n, int64_t cin,
                             int64_t cout, const ConvGeometry& g, bool relu, float* scratch);
using ConvLanesBwdWFn = void (*)(const float* x, const float* dy, float* dwl, int64_t n, int64_t cin, int64_t cout,
                                 const ConvGeometry& g, float* scratch);
void conv2d_lanes_bwd_w_avx2(const float* x, const float* dy, float* dwl, int64_t n, int64_t cin, int64_t cout,
                             const ConvGeometry& g, float* scratch);
void conv2d_lanes_bwd_w_avx512(const float* x, const float* dy, float* dwl, int64_t n, int64_t cin, int64_t cout,
                               const ConvGeometry& g, float* scratch);
// Forward with the output channels in the vector lanes, 8 a register and any
// count of them (kernels/conv_oc/): one image, output rows [oh0, oh1), any
// stride, padding and dilation, groups 1. wl: the weights as
// [cout / 8 rounded up][cin * kh * kw][8], zero-padded channels; bl: the bias
// padded the same way (zeros when the layer has none). `scratch`: the
// conv2d_oc_scratch floats of one thread.
int64_t conv2d_oc_scratch(int64_t cin, int64_t cout, const ConvGeometry& g);
using ConvOcFwdFn = void (*)(const float* x, const float* wl, const float* bl, float* y, int64_t cin, int64_t cout,
                             const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu, float* scratch);
void conv2d_oc_fwd_avx2(const float* x, const float* wl, const float* bl, float* y, int64_t cin, int64_t cout,
                        const ConvGeometry& g, int64_t oh0, int64_t oh1, bool relu, float* scratch);
using Im2colPackFn = void (*)(const void* args, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst);
void im2col_pack_avx2(const void* args, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst);
void im2col_pack_avx512(const void* args, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst);
using Im2colFn = void (*)(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol);
using Col2imFn = void (*)(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x);
void im2col_scalar(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol);
void col2im_scalar(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x);
void im2col_avx2(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol);
void col2im_avx2(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x);
void im2col_avx512(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol);
void col2im_avx512(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x);

// Winograd F(2x2, 3x3) transforms over units [u0, u1) of tile rows (layout:
// kernels/winograd.hpp). input: V = B^T d B of `channels` planes of x;
// `scratch`: the winograd_input_scratch floats of one thread.
// output: planes of y from M = A^T m A (+ bias, may be null; ReLU). grad_output:
// dM = A e A^T of `channels` planes of dy. image_stride: floats between images.
struct WinogradGeometry;
int64_t winograd_input_scratch(int64_t channels, const WinogradGeometry& g);
using WinogradInputFn = void (*)(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                 int64_t u0, int64_t u1, float* v, int64_t ldv, float* scratch);
using WinogradOutputFn = void (*)(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                                  const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride);
using WinogradGradOutputFn = void (*)(const float* dy, int64_t channels, int64_t image_stride,
                                      const WinogradGeometry& g, int64_t u0, int64_t u1, float* dm, int64_t ldm);
// dx planes += B dV B^T of every tile of units [u0, u1): the adjoint of the
// input transform (positions outside the planes are dropped). Units of an
// image must come in order; once a row of dx has all its terms it is
// multiplied by [relu_y > 0] when relu_y (laid out as dx) is given: a ReLU
// before the convolution, backward. Optional.
using WinogradInputAdjointFn = void (*)(const float* dv, int64_t ldv, int64_t channels, const WinogradGeometry& g,
                                        int64_t u0, int64_t u1, float* dx, int64_t image_stride,
                                        const float* relu_y);
void winograd_input_adjoint_avx512(const float* dv, int64_t ldv, int64_t channels, const WinogradGeometry& g,
                                   int64_t u0, int64_t u1, float* dx, int64_t image_stride, const float* relu_y);
// U[xi][r][c] = G k G^T for kernels k(r, c) at src + r * rs + c * cs (rotated
// 180 degrees when flip), r < rows, c < cols.
using WinogradWeightsFn = void (*)(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                                   float* u);
#define CPUCNN_DECLARE_WINOGRAD(isa)                                                                              \
  void winograd_input_##isa(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,   \
                            int64_t u0, int64_t u1, float* v, int64_t ldv, float* scratch);                       \
  void winograd_output_##isa(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,        \
                             const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride); \
  void winograd_grad_output_##isa(const float* dy, int64_t channels, int64_t image_stride,                        \
                                  const WinogradGeometry& g, int64_t u0, int64_t u1, float* dm, int64_t ldm);     \
  void winograd_weights_##isa(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,    \
                              float* u);
CPUCNN_DECLARE_WINOGRAD(avx2)
CPUCNN_DECLARE_WINOGRAD(avx512)
#undef CPUCNN_DECLARE_WINOGRAD
// The same for Winograd F(4x4, 3x3): 6x6 patches, 36 xi planes, 4x4 tiles.
void winograd4_input_avx2(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                          int64_t u0, int64_t u1, float* v, int64_t ldv, float* scratch);
void winograd4_input_avx512(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                            int64_t u0, int64_t u1, float* v, int64_t ldv, float* scratch);
// Its output also takes relu_y (may be null): y is multiplied by [relu_y > 0]
// (relu_y laid out as y), the backward of a ReLU before the convolution when
// this pass computes dx.
using WinogradMaskedOutputFn = void (*)(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                                        const WinogradGeometry& g, int64_t u0, int64_t u1, float* y,
                                        int64_t image_stride, const float* relu_y);
void winograd4_output_avx2(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                           const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride,
                           const float* relu_y);
void winograd4_grad_output_avx2(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                int64_t u0, int64_t u1, float* dm, int64_t ldm);
void winograd4_input_adjoint_avx2(const float* dv, int64_t ldv, int64_t channels, const WinogradGeometry& g,
                                  int64_t u0, int64_t u1, float* dx, int64_t image_stride, const float* relu_y);
void winograd4_weights_avx2(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                            float* u);
void winograd4_output_avx512(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                             const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride,
                             const float* relu_y);
void winograd4_grad_output_avx512(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                  int64_t u0, int64_t u1, float* dm, int64_t ldm);
void winograd4_weights_avx512(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                              float* u);

// Element-wise activations. Forward may run in place (x == y).
using UnaryFn = void (*)(const float* x, float* y, int64_t n);
// Backward from the forward output y: dx = dy * f'(.)
using UnaryBwdFn = void (*)(const float* y, const float* dy, float* dx, int64_t n);
void relu_fwd_scalar(const float* x, float* y, int64_t n);
void relu_bwd_scalar(const float* y, const float* dy, float* dx, int64_t n);
void relu_fwd_avx2(const float* x, float* y, int64_t n);
void relu_bwd_avx2(const float* y, const float* dy, float* dx, int64_t n);
void relu_fwd_avx512(const float* x, float* y, int64_t n);
void relu_bwd_avx512(const float* y, const float* dy, float* dx, int64_t n);

// Sum of n floats in double precision (bias gradients: sums of many terms
// that often nearly cancel, e.g. before a BatchNorm). Vector ISAs sum in
// lanes, then across.
using SumFn = double (*)(const float* x, int64_t n);
double sum_scalar(const float* x, int64_t n);
double sum_avx2(const float* x, int64_t n);
double sum_avx512(const float* x, int64_t n);

// Max pooling over `planes` planes. Forward stores the argmax (index within
// the input plane) for the backward pass when `argmax` is non-null.
using MaxPoolFwdFn = void (*)(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
using MaxPoolBwdFn = void (*)(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);
void maxpool2d_fwd_scalar(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
void maxpool2d_bwd_scalar(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);
// 2x2 stride-2 windows vectorised; other shapes delegate to the scalar kernel.
void maxpool2d_fwd_avx2(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
void maxpool2d_bwd_avx2(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);
void maxpool2d_fwd_avx512(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
void maxpool2d_bwd_avx512(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);

// Optimizer updates over n parameters.
using SgdFn = void (*)(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
using AdamFn = void (*)(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);
// buf is null unless momentum > 0; grad_avg is null unless centered.
using RmspropFn = void (*)(float* w, const float* g, float* square_avg, float* buf, float* grad_avg, int64_t n,
                           const RmspropParams& p);
void rmsprop_update_scalar(float* w, const float* g, float* square_avg, float* buf, float* grad_avg, int64_t n,
                           const RmspropParams& p);
void sgd_update_scalar(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
void adam_update_scalar(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);
void sgd_update_avx2(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
void adam_update_avx2(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);
void sgd_update_avx512(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
void adam_update_avx512(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);

// aarch64 NEON (ASIMD) kernels: kernels/<op>/neon.cc, built only for aarch64 (CMakeLists.txt),
// in the table make_neon() (dispatch/dispatch.cc). The GEMM tile is 8 rows x 12 columns.
constexpr int kGemmMrNeon = 8, kGemmNrNeon = 12;
void gemm_tile_neon(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp);
void gemm_pack_a_neon(const GemmTile& t, float* dst);
void gemm_pack_b_neon(const GemmTile& t, float* dst);
void gemv_rows_neon(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate);
void im2col_neon(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol);
void col2im_neon(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x);
void winograd_input_neon(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                         int64_t u0, int64_t u1, float* v, int64_t ldv, float* scratch);
void winograd_output_neon(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                          const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride);
void winograd_grad_output_neon(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                               int64_t u0, int64_t u1, float* dm, int64_t ldm);
void winograd_weights_neon(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip, float* u);
void relu_fwd_neon(const float* x, float* y, int64_t n);
void relu_bwd_neon(const float* y, const float* dy, float* dx, int64_t n);
double sum_neon(const float* x, int64_t n);
void maxpool2d_fwd_neon(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
void maxpool2d_bwd_neon(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);
void sgd_update_neon(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
void adam_update_neon(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);

}  // namespace cpucnn
