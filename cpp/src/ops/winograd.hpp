// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for 3x3 stride-1 layers:
// forward, backward-weight (the exact adjoint of the forward transform: dU =
// sum over tiles of dM . V with dM = A e A^T and V = B^T d B, then dW = G^T dU
// G) and backward-data in the same pass (dV = U^T dM, dx = overlap-add of
// B dV B^T; or, where there is no adjoint kernel - always for F(4x4) - a
// forward pass over dy with the kernel flipped and its channel axes swapped).
// 2.25x (F(2x2)) or 4x (F(4x4)) fewer multiply-adds than im2col + GEMM; the
// 16 or 36 products per tile run as GEMMs on the dispatch table's
// micro-kernel, the transforms on its winograd kernels. Blocks of tile rows sized for L2 are
// independent, so the forward result does not depend on the thread count;
// weight-gradient partials are summed in a fixed order.
#pragma once

#include <memory>
#include <vector>

#include "core/tensor.hpp"
#include "ops/conv2d.hpp"

namespace cpucnn {

struct KernelTable;

// Which variant runs: F(4x4, 3x3) where the ISA has it (AVX-512, AVX2) on
// maps of at least 8x8 outputs with at least a transform register's worth
// of its 4x4 tiles per thread (16 on AVX-512, 8 on AVX2), else
// F(2x2, 3x3) ('auto'); or one of them wherever Winograd runs (F(4x4) falls
// back to F(2x2) on ISAs without it).
enum class WinogradTile { kAuto, kF2, kF4 };
void set_winograd_tile(WinogradTile tile);
WinogradTile winograd_tile();

// Whether this layer can run as Winograd on the current ISA, and whether it
// pays (enough tiles per call to repay transforming the weights).
bool winograd_applicable(const Conv2dShape& s);
bool winograd_pays(const Conv2dShape& s);
// The same for weights already prepared (inference): no weight transform per
// call, so it pays from fewer tiles.
bool winograd_prepared_pays(const Conv2dShape& s);

// A layer's weights transformed and packed once for the forward (inference
// reuses them until the weights change), with the values and the kernel
// table they were made from.
struct WinogradWeights {
  const KernelTable* table = nullptr;
  int tile = 2;  // F(tile x tile, 3x3)
  int64_t cout = 0, cin = 0;
  uint64_t version = 0;   // of the parameters it was made from
  Tensor packed;
};
// How many times winograd_prepare has run in this process (tests check that
// inference prepares weights once per version, not once per call).
uint64_t winograd_prepared_count();
// The tile size (2 or 4) the forward pass would use for s now.
int winograd_tile_for(const Conv2dShape& s);
std::shared_ptr<const WinogradWeights> winograd_prepare(const Conv2dShape& s, const float* w, uint64_t version);
// Whether `p` was made from this version of the parameters for this layer
// shape, the variant s runs with now and the current kernel table.
bool winograd_prepared_for(const WinogradWeights& p, const Conv2dShape& s, uint64_t version);
void winograd_forward_prepared(const Conv2dShape& s, const float* x, const WinogradWeights& p, const float* bias,
                               float* y, bool relu, int threads);

void winograd_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                      int threads);
// dx (may be null), dw and db (may be null) are overwritten; `scratch`
// holds per-thread partials. relu_x: dx is multiplied by [x > 0] (the
// backward of a ReLU that produced x). Returns whether it did that (else the
// caller must).
bool winograd_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db, int threads, Tensor& scratch, bool relu_x = false);

}  // namespace cpucnn
