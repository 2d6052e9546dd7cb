// aarch64 NEON ReLU and sum. ReLU is bit-for-bit the scalar kernel (a select, not FMAX: -0 and NaN
// pass through as in x < 0 ? 0 : x); the sum adds in double lanes, then across (order differs).
#include <arm_neon.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

void relu_fwd_neon(const float* x, float* y, int64_t n) {
  const float32x4_t vzero = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    vst1q_f32(y + i, vbslq_f32(vcltq_f32(a, vzero), vzero, a));
    vst1q_f32(y + i + 4, vbslq_f32(vcltq_f32(b, vzero), vzero, b));
  }
  for (; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_bwd_neon(const float* y, const float* dy, float* dx, int64_t n) {
  const float32x4_t vzero = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32x4_t keep = vcgtq_f32(vld1q_f32(y + i), vzero);
    vst1q_f32(dx + i, vreinterpretq_f32_u32(vandq_u32(keep, vreinterpretq_u32_f32(vld1q_f32(dy + i)))));
  }
  for (; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

double sum_neon(const float* x, int64_t n) {
  float64x2_t a0 = vdupq_n_f64(0.0), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t u = vld1q_f32(x + i), v = vld1q_f32(x + i + 4);
    a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(u)));
    a1 = vaddq_f64(a1, vcvt_high_f64_f32(u));
    a2 = vaddq_f64(a2, vcvt_f64_f32(vget_low_f32(v)));
    a3 = vaddq_f64(a3, vcvt_high_f64_f32(v));
  }
  const float64x2_t s = vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3));
  double acc = vgetq_lane_f64(s, 0) + vgetq_lane_f64(s, 1);
  for (; i < n; ++i) acc += x[i];
  return acc;
}

}  // namespace cpucnn
