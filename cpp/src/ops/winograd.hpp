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
#include "ops/conv2d_shape.hpp"
#include "ops/scratch.hpp"

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

// One pass over a grid of tiles (ops/winograd.cc's business): its blocking
// and its offsets in the scratch layout that holds it.
struct WinogradPass {
  int64_t ci = 0, co = 0;     // channels transformed in, products out
  int64_t ub = 1, ld = 0;     // units per block, columns between rows
  int64_t units = 0, blocks = 0;
  int64_t parts = 1;          // forward: output-channel parts per block (fewer blocks than threads)
  int use = 1;                // threads
  int64_t v = 0, m = 0, dv = 0, kernel = 0, pack = 0;  // per-thread parts
  int64_t u = 0, up = 0;      // shared: transformed and packed weights
};

// A Winograd convolution planned for one layer shape and thread count:
// the variant, each pass's blocking, and every byte of scratch each call
// needs, so the calls allocate nothing (ops/scratch.hpp).
struct WinogradPlan {
  const KernelTable* table = nullptr;
  int tile = 2;  // F(tile x tile, 3x3)
  int threads = 1;
  Conv2dShape shape;
  WinogradPass fwd;           // forward: x -> y
  ScratchLayout forward;      // the forward, transforming the weights
  ScratchLayout prepared;     // the forward from prepared weights
  // Backward: the weight-gradient pass over (x, dy), fused with dx where
  // the ISA has the adjoint kernel; else dx as a forward pass over dy.
  WinogradPass bwd, dx_fwd;
  bool fused_dx = false;
  int64_t part_stride = 0, bias_at = 0, parts = 0;  // the weight-gradient partials (shared)
  ScratchLayout backward;
  // dx alone (a frozen layer: no weight gradient), as a forward pass over dy.
  WinogradPass dx_only;
  ScratchLayout backward_data;
};
// Chooses the variant for s now (the tile setting, the ISA, the shape).
WinogradPlan winograd_plan(const Conv2dShape& s, int threads);

// A layer's weights transformed and packed once for the forward (inference
// reuses them until the weights change), with the kernel table, variant and
// parameter version they were made from.
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
// Weights for plan p (its variant and table); allocates outside any region.
std::shared_ptr<const WinogradWeights> winograd_prepare(const WinogradPlan& p, const float* w, uint64_t version);
// Whether `w` was made for plan p from this version of the parameters.
bool winograd_prepared_for(const WinogradWeights& w, const WinogradPlan& p, uint64_t version);

// The passes, each inside a frame reserved from the plan's layout (the
// forward's, the prepared forward's, the backward's). n may be the plan's
// or fewer images (never more).
void winograd_forward(const WinogradPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* bias,
                      float* y, bool relu);
void winograd_forward_prepared(const WinogradPlan& p, const ScratchFrame& f, const float* x, const WinogradWeights& w,
                               const float* bias, float* y, bool relu);
// dx (may be null), dw and db (may be null) are overwritten. relu_x: dx is
// multiplied by [x > 0] (the backward of a ReLU that produced x). Returns
// whether it did that (else the caller must).
bool winograd_backward(const WinogradPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db, bool relu_x = false);
// dx alone, in a frame of the plan's backward_data layout; the same return.
bool winograd_backward_data(const WinogradPlan& p, const ScratchFrame& f, const float* x, const float* w,
                            const float* dy, float* dx, bool relu_x = false);

}  // namespace cpucnn
