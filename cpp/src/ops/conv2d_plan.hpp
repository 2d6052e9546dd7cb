// How a convolution runs, decided once per (shape, thread count, kernel
// table, Winograd settings) before anything runs: the algorithm of each pass,
// the split over threads, and every byte of scratch (ops/scratch.hpp). The
// predicates and thresholds that make these choices live in conv2d_plan.cc
// and nowhere else; ops/conv2d.cc only carries a plan out.
#pragma once

#include <cstdint>

#include "ops/conv2d_shape.hpp"
#include "ops/scratch.hpp"
#include "ops/winograd.hpp"

namespace cpucnn {

struct KernelTable;

// Forward: Winograd; output channels in the lanes, any count (kernels/conv_oc/,
// thin layers); output channels in the lanes (kernels/conv_lanes/); 16
// images in the lanes (conv_batch/); along image rows (conv_direct/); or
// im2col + GEMM over chunks of samples, threads over chunks (kGemmChunks),
// over slabs of output rows (kGemmSlabs), or inside each GEMM (kGemmInner).
enum class ConvForwardAlgo { kWinograd, kOc, kLanes, kBatch, kDirect, kGemmChunks, kGemmSlabs, kGemmInner };
// Backward-data: in Winograd's pass; as a forward direct convolution over dy
// with the kernel flipped (kDirectBatch / kDirectRows); or by GEMM + col2im,
// in the same chunks as the GEMM weight gradient (which it then implies).
enum class ConvDataAlgo { kWinograd, kDirectBatch, kDirectRows, kGemm };
// Backward-weight (when dx is not computed by GEMM): Winograd, lanes,
// batch, direct, or GEMM.
enum class ConvWeightAlgo { kWinograd, kLanes, kBatch, kDirect, kGemm };

// The im2col + GEMM blocking.
struct ConvGemmPlan {
  int64_t cg = 0, mg = 0, k = 0, p = 0;  // in/out channels per group, GEMM depth, output pixels
  int64_t chunk = 1, chunks = 1;         // samples per chunk, chunks
  bool batch_parallel = false;           // threads over chunks (else inside each GEMM)
  bool direct = false;                   // 1x1, stride 1, no padding: the input is its own im2col
  bool implicit = false;                 // the GEMM unfolds while packing (no im2col buffer)
};

struct Conv2dPlan {
  Conv2dShape shape;
  const KernelTable* table = nullptr;
  int requested_threads = 1;
  int threads = 1;  // the team every region of the op uses (at most)
  int winograd_mode = 0, winograd_tile = 0;  // the settings it was made under
  ConvGemmPlan gemm;
  ConvForwardAlgo forward = ConvForwardAlgo::kGemmInner;
  ConvDataAlgo data = ConvDataAlgo::kGemm;
  ConvWeightAlgo weight = ConvWeightAlgo::kGemm;          // with dx by data
  ConvWeightAlgo weight_alone = ConvWeightAlgo::kGemm;    // without dx
  bool winograd = false;
  WinogradPlan wino;           // when winograd
  bool prepared_winograd = false;  // inference from prepared weights pays
  int64_t slabs = 1;           // kGemmSlabs / kDirect: output-row slabs per image
  int64_t dx_slabs = 1;        // kDirectRows: the same for dx

  // Scratch: forward, backward with and without dx, and dx alone (a
  // frozen layer); offsets in each.
  ScratchLayout fwd_scratch, bwd_scratch, bwd_alone_scratch, bwd_data_scratch;
  struct Offsets {
    int64_t col = 0, col2 = 0, tmp = 0, pack = 0, kernel = 0, dx_kernel = 0;  // per thread
    int64_t weights = 0, parts = 0;                            // shared
    int64_t part_stride = 0;
  } fwd_at, bwd_at, bwd_alone_at, bwd_data_at;
};

// The plan for s with `threads` threads, the current kernel table and the
// Winograd settings (ops/conv2d.hpp, ops/winograd.hpp). Throws ValueError
// only for an invalid ISA setting (kernels()).
Conv2dPlan plan_conv2d(const Conv2dShape& s, int threads);

// Whether plan p was made for s now (shape, threads, table, settings).
bool conv2d_plan_current(const Conv2dPlan& p, const Conv2dShape& s, int threads);

// The transposed problem that backward-data runs as a forward direct
// convolution (stride 1, dilation 1): dx = conv(dy, w') with w' flipped and
// its channel axes swapped.
Conv2dShape conv2d_dx_shape(const Conv2dShape& s);

}  // namespace cpucnn
