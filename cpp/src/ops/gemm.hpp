// Packed, cache-blocked single-precision GEMM over the dispatch table's
// micro-kernel:  C = op(A) * op(B) + beta * C,  beta in {0, 1},
// op(A) is M x K, op(B) is K x N, all row-major with leading dimensions.
#pragma once

#include <cstdint>

#include "kernels/kernels.hpp"

namespace cpucnn {

using GemmArgs = GemmTile;

// Runs on the calling thread.
void gemm(const GemmArgs& g);
// Splits C into independent tiles across `threads` OpenMP threads (opens one
// parallel region; the result does not depend on the thread count). Must not
// be called from inside a parallel region.
void gemm_parallel(const GemmArgs& g, int threads);

}  // namespace cpucnn
