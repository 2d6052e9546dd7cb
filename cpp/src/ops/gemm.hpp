// Packed, cache-blocked single-precision GEMM over the dispatch table's
// micro-kernel:  C = op(A) * op(B) + beta * C,  beta in {0, 1},
// op(A) is M x K, op(B) is K x N, all row-major with leading dimensions.
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

struct GemmArgs : GemmTile {
  // The packing buffers, planned by the caller (gemm_packing_floats per
  // thread): gemm() uses `packing`, gemm_parallel()'s thread t uses
  // packing + t * packing_stride. Null: the GEMM reserves a scratch frame
  // of its own (ops/scratch.hpp) before it runs.
  float* packing = nullptr;
  int64_t packing_stride = 0;
};

// Floats of packing buffer one thread needs for a GEMM of this size (an
// upper bound for any split of it), with the current kernel table.
int64_t gemm_packing_floats(int64_t m, int64_t n, int64_t k);

// op(B) of a GEMM (k x n) packed once for GemmTile::packed_b (a Dense
// layer's weights for inference, remade when they change): valid only with
// the kernel table that packed it.
struct PackedGemmB {
  const void* table = nullptr;  // the KernelTable
  int64_t n = 0, k = 0;
  Tensor panels;
};
// Packs op(g.b) (allocates; call outside any parallel region).
std::shared_ptr<const PackedGemmB> gemm_pack_b(const GemmArgs& g);
// Whether p holds op(B) of this shape packed by the current kernel table.
bool gemm_packed_b_current(const PackedGemmB& p, int64_t n, int64_t k);

// Runs on the calling thread.
void gemm(const GemmArgs& g);
// Splits C into independent tiles across `threads` OpenMP threads (opens one
// parallel region; the result does not depend on the thread count). Must not
// be called from inside a parallel region.
void gemm_parallel(const GemmArgs& g, int threads);

}  // namespace cpucnn
