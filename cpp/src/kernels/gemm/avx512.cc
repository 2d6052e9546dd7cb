// AVX-512F GEMM micro-kernel: an 8x32 tile in 16 zmm accumulators.
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

constexpr int MR = kGemmMrAvx512, NR = kGemmNrAvx512;

inline void ukernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                         bool accumulate) {
  static_assert(kGemmNrAvx512 == 32, "the tile is two zmm wide");
  __m512 vacc0[MR], vacc1[MR];
  for (int i = 0; i < MR; ++i) vacc0[i] = vacc1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 vb0 = _mm512_loadu_ps(b + p * 32);
    const __m512 vb1 = _mm512_loadu_ps(b + p * 32 + 16);
    const float* ap = a + p * MR;
    for (int i = 0; i < MR; ++i) {
      const __m512 va = _mm512_set1_ps(ap[i]);
      vacc0[i] = _mm512_fmadd_ps(va, vb0, vacc0[i]);
      vacc1[i] = _mm512_fmadd_ps(va, vb1, vacc1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      vacc0[i] = _mm512_add_ps(vacc0[i], _mm512_loadu_ps(ci));
      vacc1[i] = _mm512_add_ps(vacc1[i], _mm512_loadu_ps(ci + 16));
    }
    _mm512_storeu_ps(ci, vacc0[i]);
    _mm512_storeu_ps(ci + 16, vacc1[i]);
  }
}

}  // namespace

#include "kernels/gemm/driver.inc"
#include "kernels/gemm/gemv.inc"

void gemm_tile_avx512(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp) {
  gemm_tile_impl(t, i0, mc, j0, nc, ap, bp);
}

void gemv_rows_avx512(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate) {
  gemv_rows_impl(w, ldw, x, k, y, n, accumulate);
}

}  // namespace cpucnn
