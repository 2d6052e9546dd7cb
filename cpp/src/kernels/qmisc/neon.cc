// Quantize / dequantize on NEON (ARMv8.0), bit-identical to the scalar references: the same float
// operations in the same order (IEEE division, round half to even with FRINTN = nearbyint, add,
// clamps as compare + select so NaN goes to 0 as in the scalar; subtract then multiply, no fusing).
#include <arm_neon.h>

#include "kernels/int8.hpp"

namespace cpucnn {

void quantize_u7_neon(const float* x, uint8_t* q, int64_t n, float scale, float zp) {
  const float32x4_t vs = vdupq_n_f32(scale), vz = vdupq_n_f32(zp);
  const float32x4_t z = vdupq_n_f32(0.0f), top = vdupq_n_f32(127.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint16x4_t h[2];
    for (int t = 0; t < 2; ++t) {
      float32x4_t v = vaddq_f32(vrndnq_f32(vdivq_f32(vld1q_f32(x + i + 4 * t), vs)), vz);
      v = vbslq_f32(vcgtq_f32(v, z), v, z);
      v = vbslq_f32(vcltq_f32(v, top), v, top);
      h[t] = vmovn_u32(vcvtq_u32_f32(v));
    }
    vst1_u8(q + i, vmovn_u16(vcombine_u16(h[0], h[1])));
  }
  if (i < n) quantize_u7_scalar(x + i, q + i, n - i, scale, zp);
}

void dequantize_u8_neon(const uint8_t* q, float* x, int64_t n, float scale, float zp) {
  const float32x4_t vs = vdupq_n_f32(scale), vz = vdupq_n_f32(zp);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint16x8_t w = vmovl_u8(vld1_u8(q + i));
    const float32x4_t f0 = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
    const float32x4_t f1 = vcvtq_f32_u32(vmovl_high_u16(w));
    vst1q_f32(x + i, vmulq_f32(vsubq_f32(f0, vz), vs));
    vst1q_f32(x + i + 4, vmulq_f32(vsubq_f32(f1, vz), vs));
  }
  if (i < n) dequantize_u8_scalar(q + i, x + i, n - i, scale, zp);
}

}  // namespace cpucnn
