// int8 GEMM, plain NEON (ARMv8.0-A, no dot-product extension: the baseline where HWCAP lacks
// asimddp, e.g. Cortex-A53/A72). Activations are 7-bit codes (kernels/int8.hpp), so the u8 B
// panel read as int8 is exact: SMULL / SMLAL multiply 8 int8 pairs into int16 lanes for two groups
// of k (|sum| <= 2 * 127 * 127 = 32258: no int16 overflow), SADALP adds lane pairs into int32
// accumulators, and a final ADDP joins the two halves of each column's 4 k.
//
// Micro-kernel: 4 rows x 8 columns, run twice for the 16 columns of the B panel (nr = 16, as the
// dot-product kernel). Per two groups of k and one row: 2 DUP (the row's 4 bytes of each group),
// 4 x (SMULL + SMLAL + SADALP): 64 MACs in 14 instructions. Registers: 16 accumulators + 4 B + 2 A
// rows + the two 16-byte A groups + 2 products.
#include "kernels/qgemm/neon_store.inc"

namespace cpucnn {

namespace {

#define CPUCNN_QPAIR(acc, bx, by, ax, ay, half)                              \
  do {                                                                       \
    int16x8_t p_ = vmull_##half##s8(bx, ax);                                 \
    p_ = vmlal_##half##s8(p_, by, ay);                                       \
    acc = vpadalq_s16(acc, p_);                                              \
  } while (0)

// res[r][0..1] = the int32 sums of columns 0..3 and 4..7 of rows r (of 8 columns at bp).
inline void tile4x8(const int8_t* ap, int64_t k4, const int8_t* bp, int32x4_t res[4][4], int half) {
  constexpr int64_t nr = kQgemmNrNeon;
  int32x4_t acc[4][4];
  for (auto& row : acc)
    for (auto& v : row) v = vdupq_n_s32(0);
  int64_t g = 0;
  for (; g < k4; g += 2) {
    const bool two = g + 1 < k4;
    const int32x4_t va0 = vreinterpretq_s32_s8(vld1q_s8(ap + g * 16));
    const int32x4_t va1 = two ? vreinterpretq_s32_s8(vld1q_s8(ap + g * 16 + 16)) : vdupq_n_s32(0);
    const int8x16_t b00 = vld1q_s8(bp + g * nr * 4), b01 = vld1q_s8(bp + g * nr * 4 + 16);
    const int8x16_t b10 = two ? vld1q_s8(bp + (g + 1) * nr * 4) : vdupq_n_s8(0);
    const int8x16_t b11 = two ? vld1q_s8(bp + (g + 1) * nr * 4 + 16) : vdupq_n_s8(0);
#define CPUCNN_QROW(r)                                                                           \
  {                                                                                              \
    const int8x16_t a0 = vreinterpretq_s8_s32(vdupq_laneq_s32(va0, r));                          \
    const int8x16_t a1 = vreinterpretq_s8_s32(vdupq_laneq_s32(va1, r));                          \
    CPUCNN_QPAIR(acc[r][0], vget_low_s8(b00), vget_low_s8(b10), vget_low_s8(a0), vget_low_s8(a1), ); \
    CPUCNN_QPAIR(acc[r][1], b00, b10, a0, a1, high_);                                            \
    CPUCNN_QPAIR(acc[r][2], vget_low_s8(b01), vget_low_s8(b11), vget_low_s8(a0), vget_low_s8(a1), ); \
    CPUCNN_QPAIR(acc[r][3], b01, b11, a0, a1, high_);                                            \
  }
    CPUCNN_QROW(0)
    CPUCNN_QROW(1)
    CPUCNN_QROW(2)
    CPUCNN_QROW(3)
#undef CPUCNN_QROW
  }
  for (int r = 0; r < 4; ++r) {
    res[r][2 * half] = vpaddq_s32(acc[r][0], acc[r][1]);
    res[r][2 * half + 1] = vpaddq_s32(acc[r][2], acc[r][3]);
  }
}

#undef CPUCNN_QPAIR

}  // namespace

void qgemm_neon(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o) {
  const int8_t* bs = reinterpret_cast<const int8_t*>(b);
  for (int64_t r0 = 0; r0 < m; r0 += kQPanelRows) {
    const int8_t* ap = a + (r0 / kQPanelRows) * k4 * 16;
    const int64_t rows = m - r0 < kQPanelRows ? m - r0 : kQPanelRows;
    int32x4_t res[4][4];
    tile4x8(ap, k4, bs, res, 0);
    if (nc > 8) {
      tile4x8(ap, k4, bs + 32, res, 1);
    } else {
      for (auto& row : res) row[2] = row[3] = vdupq_n_s32(0);
    }
    for (int64_t r = 0; r < rows; ++r) qstore_row_neon(res[r], r0 + r, nc, o);
  }
}

}  // namespace cpucnn
