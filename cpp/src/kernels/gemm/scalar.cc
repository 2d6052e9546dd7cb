// Reference GEMM micro-kernel: a 4x8 tile, plain C++ (the compiler may use
// the baseline SSE2 of x86-64 for the inner loop).
#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

constexpr int MR = kGemmMrScalar, NR = kGemmNrScalar;

inline void ukernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                         bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* ap = a + p * MR;
    const float* bp = b + p * NR;
    for (int i = 0; i < MR; ++i) {
      const float ai = ap[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      for (int j = 0; j < NR; ++j) ci[j] += acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = acc[i][j];
    }
  }
}

}  // namespace

#include "kernels/gemm/driver.inc"
#include "kernels/gemm/gemv.inc"

void gemm_tile_scalar(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp) {
  gemm_tile_impl(t, i0, mc, j0, nc, ap, bp);
}

void gemm_pack_a_scalar(const GemmTile& t, float* dst) { gemm_pack_a_impl(t, dst); }
void gemm_pack_b_scalar(const GemmTile& t, float* dst) { gemm_pack_b_impl(t, dst); }

void gemv_rows_scalar(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate) {
  gemv_rows_impl(w, ldw, x, k, y, n, accumulate);
}

}  // namespace cpucnn
