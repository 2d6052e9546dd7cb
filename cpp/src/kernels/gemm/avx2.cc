// AVX2+FMA GEMM micro-kernel: a 6x16 tile in 12 ymm accumulators.
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

constexpr int MR = kGemmMrAvx2, NR = kGemmNrAvx2;

inline void ukernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       bool accumulate) {
  static_assert(kGemmNrAvx2 == 16, "the tile is two ymm wide");
  __m256 vacc0[MR], vacc1[MR];
  for (int i = 0; i < MR; ++i) vacc0[i] = vacc1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 vb0 = _mm256_loadu_ps(b + p * 16);
    const __m256 vb1 = _mm256_loadu_ps(b + p * 16 + 8);
    const float* ap = a + p * MR;
    for (int i = 0; i < MR; ++i) {
      const __m256 va = _mm256_broadcast_ss(ap + i);
      vacc0[i] = _mm256_fmadd_ps(va, vb0, vacc0[i]);
      vacc1[i] = _mm256_fmadd_ps(va, vb1, vacc1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      vacc0[i] = _mm256_add_ps(vacc0[i], _mm256_loadu_ps(ci));
      vacc1[i] = _mm256_add_ps(vacc1[i], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, vacc0[i]);
    _mm256_storeu_ps(ci + 8, vacc1[i]);
  }
}

}  // namespace

#include "kernels/gemm/driver.inc"
#include "kernels/gemm/gemv.inc"

void gemm_tile_avx2(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp) {
  gemm_tile_impl(t, i0, mc, j0, nc, ap, bp);
}

void gemm_pack_a_avx2(const GemmTile& t, float* dst) { gemm_pack_a_impl(t, dst); }

void gemv_rows_avx2(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate) {
  gemv_rows_impl(w, ldw, x, k, y, n, accumulate);
}

}  // namespace cpucnn
