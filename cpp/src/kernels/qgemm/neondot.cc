// int8 GEMM / GEMV, NEON with the dot-product extension (ARMv8.2-A DotProd, HWCAP asimddp): SDOT
// sums 4 int8 x int8 products into each int32 lane. Activations are 7-bit codes (0..127, see
// kernels/int8.hpp), so reading the u8 B panel as int8 is exact and signed SDOT on both operands
// gives the scalar reference's integers. Compiled with -march=armv8.2-a+dotprod (this file only);
// the table picks it only where the CPU reports asimddp.
//
// Micro-kernel: 4 rows (one A panel) x 16 columns (the B panel, nr = 16). Per group of 4 k: one
// 16-byte A load (the 4 rows' 4 bytes), four 16-byte B loads (4 columns each), 16 SDOT by element
// (vdotq_laneq_s32: lane r of A = row r): 256 MACs. Registers: 16 accumulators + 4 B + 1 A = 21 of 32.
#include "kernels/qgemm/neon_store.inc"

#include <cmath>
#include <cstring>

namespace cpucnn {

void qgemm_neondot(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o) {
  constexpr int64_t nr = kQgemmNrNeon;
  const int8_t* bs = reinterpret_cast<const int8_t*>(b);
  for (int64_t r0 = 0; r0 < m; r0 += kQPanelRows) {
    const int8_t* ap = a + (r0 / kQPanelRows) * k4 * 16;
    const int64_t rows = m - r0 < kQPanelRows ? m - r0 : kQPanelRows;
    int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c02 = c00, c03 = c00;
    int32x4_t c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    int32x4_t c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    int32x4_t c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    const int8_t* bp = bs;
    for (int64_t g = 0; g < k4; ++g, bp += nr * 4) {
      const int8x16_t va = vld1q_s8(ap + g * 16);
      const int8x16_t b0 = vld1q_s8(bp), b1 = vld1q_s8(bp + 16), b2 = vld1q_s8(bp + 32), b3 = vld1q_s8(bp + 48);
#define CPUCNN_QROW(r)                           \
  c##r##0 = vdotq_laneq_s32(c##r##0, b0, va, r); \
  c##r##1 = vdotq_laneq_s32(c##r##1, b1, va, r); \
  c##r##2 = vdotq_laneq_s32(c##r##2, b2, va, r); \
  c##r##3 = vdotq_laneq_s32(c##r##3, b3, va, r);
      CPUCNN_QROW(0)
      CPUCNN_QROW(1)
      CPUCNN_QROW(2)
      CPUCNN_QROW(3)
#undef CPUCNN_QROW
    }
    const int32x4_t res[4][4] = {
        {c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
    for (int64_t r = 0; r < rows; ++r) qstore_row_neon(res[r], r0 + r, nc, o);
  }
}

// One column: the 4 rows of a panel in the 4 lanes (SDOT of the group's 16 weight bytes with the
// 4 activation bytes of that group, by element; 4 groups a step in 4 accumulators). The requantisation is the
// scalar one per row (fmaf, nearbyintf: the C functions, so this file, built with +dotprod, emits no
// weak copy of an inline std:: overload that plain code could end up calling).
void qgemv_neondot(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o) {
  const int8_t* xs = reinterpret_cast<const int8_t*>(x);
  for (int64_t r0 = 0; r0 < m; r0 += kQPanelRows) {
    const int8_t* ap = a + (r0 / kQPanelRows) * k4 * 16;
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t g = 0;
    for (; g + 4 <= k4; g += 4) {
      const int8x16_t xv = vld1q_s8(xs + 4 * g);
      acc0 = vdotq_laneq_s32(acc0, vld1q_s8(ap + g * 16), xv, 0);
      acc1 = vdotq_laneq_s32(acc1, vld1q_s8(ap + g * 16 + 16), xv, 1);
      acc2 = vdotq_laneq_s32(acc2, vld1q_s8(ap + g * 16 + 32), xv, 2);
      acc3 = vdotq_laneq_s32(acc3, vld1q_s8(ap + g * 16 + 48), xv, 3);
    }
    for (; g < k4; ++g) {
      int32_t x4;
      std::memcpy(&x4, xs + 4 * g, 4);
      acc0 = vdotq_s32(acc0, vld1q_s8(ap + g * 16), vreinterpretq_s8_s32(vdupq_n_s32(x4)));
    }
    int32_t t[4];
    vst1q_s32(t, vaddq_s32(vaddq_s32(acc0, acc1), vaddq_s32(acc2, acc3)));
    const int64_t rows = m - r0 < kQPanelRows ? m - r0 : kQPanelRows;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t r = r0 + i;
      float v = fmaf(static_cast<float>(t[i] + o.ibias[r]), o.mult[r], o.add[r]);
      const int64_t at = r * o.row_stride;
      if (o.y8) {
        v = v > o.lo ? v : o.lo;
        v = v < o.hi ? v : o.hi;
        o.y8[at] = static_cast<uint8_t>(static_cast<int32_t>(nearbyintf(v)));
      } else {
        o.yf[at] = o.relu ? (v > 0.0f ? v : 0.0f) : v;
      }
    }
  }
}

}  // namespace cpucnn
