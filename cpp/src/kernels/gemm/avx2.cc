// AVX2+FMA GEMM micro-kernel: a 6x16 tile in 12 ymm accumulators, with its
// C tile prefetched, and AVX2 packing of A (register transpose) and of B
// (row blocks). Single-threaded on 1024^3 and 512x4096x512 this ran at
// 80-88% of the measured AVX2 FMA peak on a shared AMD EPYC (Zen 3; best
// call, thread CPU time), from 60-66% before: benchmarks/bench_kernels.py
// --gemm-only.
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

constexpr int MR = kGemmMrAvx2, NR = kGemmNrAvx2;

// The C tile's rows are fetched while the products run: without it each
// tile's accumulate waited on up to 12 cache misses (C rows are ldc apart,
// and C is often out of L2 by the time a depth block comes back to it).
__attribute__((always_inline)) inline void prefetch_c(const float* c, int64_t ldc) {
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
}

__attribute__((always_inline)) inline void ukernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                   bool accumulate) {
  static_assert(kGemmNrAvx2 == 16, "the tile is two ymm wide");
  prefetch_c(c, ldc);
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

// One MR-row panel of A from `rows` (<= 6) rows of A (each kc long, lda
// apart), 8 columns at a time through a register transpose: the four top
// rows as a 4x8 transpose, the two bottom ones as pairs (the plain loop
// reads one float per row per column).
#define CPUCNN_HAVE_PACK_A_PANEL 1
void pack_a_panel(const float* a, int64_t lda, int64_t kc, int64_t rows, float* dst) {
  static_assert(MR == 6, "a packed column of A is 4 + 2 floats");
  const float* r[MR];
  for (int i = 0; i < MR; ++i) r[i] = a + (i < rows ? i : 0) * lda;
  int64_t p = 0;
  if (rows == MR) {
    for (; p + 8 <= kc; p += 8) {
      const __m256 v0 = _mm256_loadu_ps(r[0] + p), v1 = _mm256_loadu_ps(r[1] + p);
      const __m256 v2 = _mm256_loadu_ps(r[2] + p), v3 = _mm256_loadu_ps(r[3] + p);
      const __m256 v4 = _mm256_loadu_ps(r[4] + p), v5 = _mm256_loadu_ps(r[5] + p);
      const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);  // a0 b0 a1 b1 | a4 b4 a5 b5
      const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
      const __m256 ef0 = _mm256_unpacklo_ps(v4, v5), ef1 = _mm256_unpackhi_ps(v4, v5);  // e0 f0 e1 f1 | e4 ...
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);  // a0 b0 c0 d0 | ..4
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      float* d = dst + p * MR;
      const __m128 lo0 = _mm256_castps256_ps128(ef0), lo1 = _mm256_castps256_ps128(ef1);
      const __m128 hi0 = _mm256_extractf128_ps(ef0, 1), hi1 = _mm256_extractf128_ps(ef1, 1);
      _mm_storeu_ps(d + 0 * MR, _mm256_castps256_ps128(u0));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 0 * MR + 4), lo0);
      _mm_storeu_ps(d + 1 * MR, _mm256_castps256_ps128(u1));
      _mm_storeh_pi(reinterpret_cast<__m64*>(d + 1 * MR + 4), lo0);
      _mm_storeu_ps(d + 2 * MR, _mm256_castps256_ps128(u2));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 2 * MR + 4), lo1);
      _mm_storeu_ps(d + 3 * MR, _mm256_castps256_ps128(u3));
      _mm_storeh_pi(reinterpret_cast<__m64*>(d + 3 * MR + 4), lo1);
      _mm_storeu_ps(d + 4 * MR, _mm256_extractf128_ps(u0, 1));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 4 * MR + 4), hi0);
      _mm_storeu_ps(d + 5 * MR, _mm256_extractf128_ps(u1, 1));
      _mm_storeh_pi(reinterpret_cast<__m64*>(d + 5 * MR + 4), hi0);
      _mm_storeu_ps(d + 6 * MR, _mm256_extractf128_ps(u2, 1));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 6 * MR + 4), hi1);
      _mm_storeu_ps(d + 7 * MR, _mm256_extractf128_ps(u3, 1));
      _mm_storeh_pi(reinterpret_cast<__m64*>(d + 7 * MR + 4), hi1);
    }
  }
  for (; p < kc; ++p)
    for (int i = 0; i < MR; ++i) dst[p * MR + i] = i < rows ? r[i][p] : 0.0f;
}

// B[0:kc, 0:nc] (rows ldb apart) -> NR-column panels, 8 rows of B at a
// time: 8 sequential read streams, and 8 x NR contiguous floats written a
// panel (column-panel order read B one 64-byte piece a row, ldb apart, a
// cache and TLB miss each).
#define CPUCNN_HAVE_PACK_B_ROWS 1
void pack_b_rows(const float* b, int64_t ldb, int64_t kc, int64_t nc, float* dst) {
  constexpr int64_t kRows = 8;
  const int64_t full = nc / NR * NR;
  for (int64_t p0 = 0; p0 < kc; p0 += kRows) {
    const int64_t pn = kc - p0 < kRows ? kc - p0 : kRows;
    for (int64_t jr = 0; jr < full; jr += NR) {
      float* d = dst + jr * kc + p0 * NR;
      for (int64_t q = 0; q < pn; ++q) {
        const float* s = b + (p0 + q) * ldb + jr;
        _mm256_storeu_ps(d + q * NR, _mm256_loadu_ps(s));
        _mm256_storeu_ps(d + q * NR + 8, _mm256_loadu_ps(s + 8));
      }
    }
    if (full < nc) {
      const int64_t cols = nc - full;
      float* d = dst + full * kc + p0 * NR;
      for (int64_t q = 0; q < pn; ++q) {
        const float* s = b + (p0 + q) * ldb + full;
        for (int64_t j = 0; j < NR; ++j) d[q * NR + j] = j < cols ? s[j] : 0.0f;
      }
    }
  }
}

}  // namespace

#include "kernels/gemm/driver.inc"
#include "kernels/gemm/gemv.inc"

void gemm_tile_avx2(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp) {
  gemm_tile_impl(t, i0, mc, j0, nc, ap, bp);
}

void gemm_pack_a_avx2(const GemmTile& t, float* dst) { gemm_pack_a_impl(t, dst); }
void gemm_pack_b_avx2(const GemmTile& t, float* dst) { gemm_pack_b_impl(t, dst); }

void gemv_rows_avx2(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate) {
  gemv_rows_impl(w, ldw, x, k, y, n, accumulate);
}

}  // namespace cpucnn
