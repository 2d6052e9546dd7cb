// aarch64 NEON GEMM micro-kernel: an 8x12 tile of C in 24 of the 32 128-bit
// registers (8 rows x 3 vectors of 4 floats), the 12 B values of a depth step
// in 3 more, and the 8 A values in 2 (each row's value is taken by lane: FMLA
// by element, so A is never broadcast). 29 registers live, none spilled.
// Per depth step: 24 FMLA (192 FLOPs) for 5 vector loads. Theoretical: FMA-bound
// at 2 x 4 lanes x 2 FLOPs = 16 FLOPs/cycle on cores with two 128-bit FMA pipes
// (Cortex-A72/A76, Neoverse N1), 32 with four (Neoverse V1/V2); the 24 FMLAs
// are independent chains, enough to cover a 4-cycle FMA latency on 4 pipes
// (4 x 4 = 16 in flight needed). Not measured on hardware here (qemu only).
// Packing of A (4x4 register transposes) and of B (row blocks) in NEON too.
#include <arm_neon.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

constexpr int MR = kGemmMrNeon, NR = kGemmNrNeon;

__attribute__((always_inline)) inline void ukernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                   bool accumulate) {
  static_assert(MR == 8 && NR == 12, "the tile is 8 rows x 3 vectors");
  float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
  float32x4_t c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
  float32x4_t c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
  float32x4_t c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
  for (int64_t p = 0; p < kc; ++p) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
    c00 = vfmaq_laneq_f32(c00, b0, a0, 0);
    c01 = vfmaq_laneq_f32(c01, b1, a0, 0);
    c02 = vfmaq_laneq_f32(c02, b2, a0, 0);
    c10 = vfmaq_laneq_f32(c10, b0, a0, 1);
    c11 = vfmaq_laneq_f32(c11, b1, a0, 1);
    c12 = vfmaq_laneq_f32(c12, b2, a0, 1);
    c20 = vfmaq_laneq_f32(c20, b0, a0, 2);
    c21 = vfmaq_laneq_f32(c21, b1, a0, 2);
    c22 = vfmaq_laneq_f32(c22, b2, a0, 2);
    c30 = vfmaq_laneq_f32(c30, b0, a0, 3);
    c31 = vfmaq_laneq_f32(c31, b1, a0, 3);
    c32 = vfmaq_laneq_f32(c32, b2, a0, 3);
    c40 = vfmaq_laneq_f32(c40, b0, a1, 0);
    c41 = vfmaq_laneq_f32(c41, b1, a1, 0);
    c42 = vfmaq_laneq_f32(c42, b2, a1, 0);
    c50 = vfmaq_laneq_f32(c50, b0, a1, 1);
    c51 = vfmaq_laneq_f32(c51, b1, a1, 1);
    c52 = vfmaq_laneq_f32(c52, b2, a1, 1);
    c60 = vfmaq_laneq_f32(c60, b0, a1, 2);
    c61 = vfmaq_laneq_f32(c61, b1, a1, 2);
    c62 = vfmaq_laneq_f32(c62, b2, a1, 2);
    c70 = vfmaq_laneq_f32(c70, b0, a1, 3);
    c71 = vfmaq_laneq_f32(c71, b1, a1, 3);
    c72 = vfmaq_laneq_f32(c72, b2, a1, 3);
    a += MR;
    b += NR;
  }
  const float32x4_t acc[MR][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32},
                                  {c40, c41, c42}, {c50, c51, c52}, {c60, c61, c62}, {c70, c71, c72}};
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int v = 0; v < 3; ++v) {
      float32x4_t r = acc[i][v];
      if (accumulate) r = vaddq_f32(r, vld1q_f32(ci + 4 * v));
      vst1q_f32(ci + 4 * v, r);
    }
  }
}

// One MR-row panel of A from `rows` (<= 8) rows of A (each kc long, lda
// apart), 4 columns at a time through two 4x4 register transposes.
#define CPUCNN_HAVE_PACK_A_PANEL 1
void pack_a_panel(const float* a, int64_t lda, int64_t kc, int64_t rows, float* dst) {
  const float* r[MR];
  for (int i = 0; i < MR; ++i) r[i] = a + (i < rows ? i : 0) * lda;
  int64_t p = 0;
  if (rows == MR) {
    for (; p + 4 <= kc; p += 4) {
      float* d = dst + p * MR;
      for (int half = 0; half < 2; ++half) {
        const float* const* rr = r + 4 * half;
        const float32x4x2_t t01 = vtrnq_f32(vld1q_f32(rr[0] + p), vld1q_f32(rr[1] + p));  // a0 b0 a2 b2 | a1 b1 a3 b3
        const float32x4x2_t t23 = vtrnq_f32(vld1q_f32(rr[2] + p), vld1q_f32(rr[3] + p));
        const float32x4_t col0 = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
        const float32x4_t col1 = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
        const float32x4_t col2 = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
        const float32x4_t col3 = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
        vst1q_f32(d + 0 * MR + 4 * half, col0);
        vst1q_f32(d + 1 * MR + 4 * half, col1);
        vst1q_f32(d + 2 * MR + 4 * half, col2);
        vst1q_f32(d + 3 * MR + 4 * half, col3);
      }
    }
  }
  for (; p < kc; ++p)
    for (int i = 0; i < MR; ++i) dst[p * MR + i] = i < rows ? r[i][p] : 0.0f;
}

// B[0:kc, 0:nc] (rows ldb apart) -> NR-column panels, 8 rows of B at a time
// (8 sequential read streams; 8 x NR contiguous floats written a panel).
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
        vst1q_f32(d + q * NR, vld1q_f32(s));
        vst1q_f32(d + q * NR + 4, vld1q_f32(s + 4));
        vst1q_f32(d + q * NR + 8, vld1q_f32(s + 8));
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

void gemm_tile_neon(const GemmTile& t, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float* ap, float* bp) {
  gemm_tile_impl(t, i0, mc, j0, nc, ap, bp);
}

void gemm_pack_a_neon(const GemmTile& t, float* dst) { gemm_pack_a_impl(t, dst); }

void gemm_pack_b_neon(const GemmTile& t, float* dst) { gemm_pack_b_impl(t, dst); }

void gemv_rows_neon(const float* w, int64_t ldw, const float* x, int64_t k, float* y, int64_t n, bool accumulate) {
  gemv_rows_impl(w, ldw, x, k, y, n, accumulate);
}

}  // namespace cpucnn
