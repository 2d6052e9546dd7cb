// aarch64 NEON optimizer updates, 4 parameters a step, bit-for-bit the scalar kernels' results:
// the same operations in the same order, each rounded (NEON's FADD, FMUL, FDIV and FSQRT are
// IEEE exact-rounded), and no fused multiply-adds: every product goes through rounded(), whose
// empty asm keeps the compiler from contracting it into a following add (FMLA). The tail
// (n % 4) runs the scalar arithmetic.
#include <arm_neon.h>

#include <math.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

inline float32x4_t mul(float32x4_t a, float32x4_t b) {
  float32x4_t r = vmulq_f32(a, b);
  __asm__("" : "+w"(r));
  return r;
}

inline float muls(float a, float b) {
  float r = a * b;
  __asm__("" : "+w"(r));
  return r;
}

}  // namespace

void sgd_update_neon(float* w, const float* g, float* buf, int64_t n, const SgdParams& p) {
  const float32x4_t vlr = vdupq_n_f32(p.lr), vmom = vdupq_n_f32(p.momentum), vwd = vdupq_n_f32(p.weight_decay);
  const bool use_mom = p.momentum != 0.0f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t vw = vld1q_f32(w + i);
    float32x4_t vg = vaddq_f32(vld1q_f32(g + i), mul(vwd, vw));
    if (use_mom) {
      const float32x4_t vb = p.first_step ? vg : vaddq_f32(mul(vmom, vld1q_f32(buf + i)), vg);
      vst1q_f32(buf + i, vb);
      vg = p.nesterov ? vaddq_f32(vg, mul(vmom, vb)) : vb;
    }
    vst1q_f32(w + i, vsubq_f32(vw, mul(vlr, vg)));
  }
  for (; i < n; ++i) {
    float gi = g[i] + muls(p.weight_decay, w[i]);
    if (use_mom) {
      const float b = p.first_step ? gi : muls(p.momentum, buf[i]) + gi;
      buf[i] = b;
      gi = p.nesterov ? gi + muls(p.momentum, b) : b;
    }
    w[i] -= muls(p.lr, gi);
  }
}

void adam_update_neon(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p) {
  const float32x4_t vb1 = vdupq_n_f32(p.beta1), vb1c = vdupq_n_f32(1.0f - p.beta1);
  const float32x4_t vb2 = vdupq_n_f32(p.beta2), vb2c = vdupq_n_f32(1.0f - p.beta2);
  const float32x4_t vwd = vdupq_n_f32(p.weight_decay), veps = vdupq_n_f32(p.eps);
  const float step_size = p.lr / p.bias_correction1;
  const float bc2 = sqrtf(p.bias_correction2);  // C's, not std::sqrt: kernels/minmax.hpp
  const float32x4_t vstep = vdupq_n_f32(step_size), vbc2 = vdupq_n_f32(bc2);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t vw = vld1q_f32(w + i);
    const float32x4_t vg = vaddq_f32(vld1q_f32(g + i), mul(vwd, vw));
    const float32x4_t vm = vaddq_f32(mul(vb1, vld1q_f32(m + i)), mul(vb1c, vg));
    const float32x4_t vv = vaddq_f32(mul(vb2, vld1q_f32(v + i)), mul(mul(vb2c, vg), vg));
    vst1q_f32(m + i, vm);
    vst1q_f32(v + i, vv);
    const float32x4_t vden = vaddq_f32(vdivq_f32(vsqrtq_f32(vv), vbc2), veps);
    vst1q_f32(w + i, vsubq_f32(vw, mul(vstep, vdivq_f32(vm, vden))));
  }
  for (; i < n; ++i) {
    const float gi = g[i] + muls(p.weight_decay, w[i]);
    m[i] = muls(p.beta1, m[i]) + muls(1.0f - p.beta1, gi);
    v[i] = muls(p.beta2, v[i]) + muls(muls(1.0f - p.beta2, gi), gi);
    const float denom = sqrtf(v[i]) / bc2 + p.eps;
    w[i] -= muls(step_size, m[i] / denom);
  }
}

}  // namespace cpucnn
