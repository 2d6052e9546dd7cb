// AVX-512F GEMM micro-kernel: an 8x32 tile in 16 zmm accumulators.
#include <immintrin.h>

#include "kernels/avx512_lanes.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

constexpr int MR = kGemmMrAvx512, NR = kGemmNrAvx512;

// C's NB registers a row (1 or 2 of the tile's two) over kc steps, in
// vacc0 (and vacc1).
template <int NB>
__attribute__((always_inline)) inline void multiply(int64_t kc, const float* a, const float* b, __m512* vacc0,
                                                    __m512* vacc1) {
  for (int i = 0; i < MR; ++i) vacc0[i] = vacc1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 vb0 = _mm512_loadu_ps(b + p * 32);
    const __m512 vb1 = NB == 2 ? _mm512_loadu_ps(b + p * 32 + 16) : vb0;
    const float* ap = a + p * MR;
    for (int i = 0; i < MR; ++i) {
      const __m512 va = _mm512_set1_ps(ap[i]);
      vacc0[i] = _mm512_fmadd_ps(va, vb0, vacc0[i]);
      if (NB == 2) vacc1[i] = _mm512_fmadd_ps(va, vb1, vacc1[i]);
    }
  }
}

// Always inlined into the tile loop: as a call (GCC's choice once the edge
// kernel below was added) vgg_s training ran 10-15% slower.
__attribute__((always_inline)) inline void ukernel(int64_t kc, const float* a, const float* b, float* c,
                                                   int64_t ldc, bool accumulate) {
  static_assert(kGemmNrAvx512 == 32, "the tile is two zmm wide");
  __m512 vacc0[MR], vacc1[MR];
  multiply<2>(kc, a, b, vacc0, vacc1);
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


using avx512::first_lanes;
using avx512::transpose16;

// A partial tile (rows <= MR, cols <= NR) straight into C through masked
// loads and stores; one zmm per row where cols <= 16, half the multiplies of
// the full tile (narrow GEMMs: Winograd's products on small images).
#define CPUCNN_HAVE_UKERNEL_EDGE 1
inline void ukernel_edge(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate,
                         int64_t rows, int64_t cols) {
  __m512 vacc0[MR], vacc1[MR];
  if (cols <= 16)
    multiply<1>(kc, a, b, vacc0, vacc1);
  else
    multiply<2>(kc, a, b, vacc0, vacc1);
  const __mmask16 m0 = first_lanes(cols), m1 = first_lanes(cols - 16);
  for (int64_t i = 0; i < rows && i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      vacc0[i] = _mm512_add_ps(vacc0[i], _mm512_maskz_loadu_ps(m0, ci));
      if (m1) vacc1[i] = _mm512_add_ps(vacc1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, vacc0[i]);
    if (m1) _mm512_mask_storeu_ps(ci + 16, m1, vacc1[i]);
  }
}

// One 32-wide panel of B from `cols` rows of B^T (each kc long, ldb apart),
// 16x16 blocks at a time through registers.
#define CPUCNN_HAVE_PACK_B_TRANS_PANEL 1
void pack_b_trans_panel(const float* bt, int64_t ldb, int64_t kc, int64_t cols, float* dst) {
  for (int half = 0; half < 2; ++half) {
    const int64_t j0 = 16 * half;
    for (int64_t p = 0; p < kc; p += 16) {
      const __mmask16 mp = first_lanes(kc - p);
      __m512 r[16];
      for (int j = 0; j < 16; ++j)
        r[j] = j0 + j < cols ? _mm512_maskz_loadu_ps(mp, bt + (j0 + j) * ldb + p) : _mm512_setzero_ps();
      transpose16(r);
      const int64_t rows = kc - p < 16 ? kc - p : 16;
      for (int64_t i = 0; i < rows; ++i) _mm512_storeu_ps(dst + (p + i) * NR + j0, r[i]);
    }
  }
}

// One MR-row panel of A from `rows` rows of A (each kc long, lda apart):
// 16 columns at a time through a register transpose (the plain loop reads
// one float per row per column, as slow as the GEMM it feeds).
#define CPUCNN_HAVE_PACK_A_PANEL 1
void pack_a_panel(const float* a, int64_t lda, int64_t kc, int64_t rows, float* dst) {
  static_assert(MR == 8, "a packed row of A is one ymm");
  for (int64_t p = 0; p < kc; p += 16) {
    const __mmask16 mp = first_lanes(kc - p);
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows && i < MR ? _mm512_maskz_loadu_ps(mp, a + i * lda + p) : _mm512_setzero_ps();
    transpose16(r);
    const int64_t cols = kc - p < 16 ? kc - p : 16;
    for (int64_t j = 0; j < cols; ++j) _mm256_storeu_ps(dst + (p + j) * MR, _mm512_castps512_ps256(r[j]));
  }
}

}  // namespace

#include "kernels/gemm/driver.inc"
#include "kernels/gemm/gemv.inc"

void gemm_tile_avx512(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp) {
  gemm_tile_impl(t, i0, mc, j0, nc, ap, bp);
}

void gemm_pack_a_avx512(const GemmTile& t, float* dst) { gemm_pack_a_impl(t, dst); }
void gemm_pack_b_avx512(const GemmTile& t, float* dst) { gemm_pack_b_impl(t, dst); }

void gemv_rows_avx512(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate) {
  gemv_rows_impl(w, ldw, x, k, y, n, accumulate);
}

}  // namespace cpucnn
