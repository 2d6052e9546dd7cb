// aarch64 NEON max pooling for the common 2x2 / stride 2 / no padding case, 4 outputs a step
// (LD2 splits a row's even and odd pixels); other shapes, and row tails, run the scalar rules.
// Bit-for-bit the scalar kernel: the first maximum in window order, NaN wins, the same argmax
// (ties and NaN included), and dx of +0 where dy is -0 (the scalar backward adds dy to a
// cleared dx).
#include <arm_neon.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

// Takes v (window offset off) where it beats best: larger, or NaN while best is not.
// !(v <= best) is "v larger, or either NaN"; a NaN best stays.
inline void pick(float32x4_t v, uint32x4_t off, float32x4_t& best, uint32x4_t& arg) {
  const uint32x4_t wins = vandq_u32(vmvnq_u32(vcleq_f32(v, best)), vceqq_f32(best, best));
  best = vbslq_f32(wins, v, best);
  arg = vbslq_u32(wins, off, arg);
}

// One window the scalar way (row tails).
inline void window1(const float* r0, const float* r1, int64_t ow, int64_t w, int64_t row_base, float* y,
                    int32_t* a) {
  const float v[4] = {r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
  int k = 0;
  for (int q = 1; q < 4; ++q)
    if ((v[q] > v[k] || v[q] != v[q]) && v[k] == v[k]) k = q;
  *y = v[k];
  if (a) *a = static_cast<int32_t>(row_base + (k >> 1) * w + 2 * ow + (k & 1));
}

bool is_2x2(const Pool2dParams& p) {
  return p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0 && 2 * p.ho <= p.h &&
         2 * p.wo <= p.w;
}

}  // namespace

void maxpool2d_fwd_neon(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  if (!is_2x2(p)) return maxpool2d_fwd_scalar(x, y, argmax, planes, p);
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  const uint32x4_t one = vdupq_n_u32(1), below = vdupq_n_u32(static_cast<uint32_t>(p.w));
  const uint32x4_t below_right = vdupq_n_u32(static_cast<uint32_t>(p.w + 1));
  const uint32_t lane2_init[4] = {0, 2, 4, 6};
  const uint32x4_t lane2 = vld1q_u32(lane2_init);
  for (int64_t c = 0; c < planes; ++c) {
    const float* xc = x + c * in_plane;
    float* yc = y + c * out_plane;
    int32_t* ac = argmax ? argmax + c * out_plane : nullptr;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      const float* r0 = xc + 2 * oh * p.w;
      const float* r1 = r0 + p.w;
      float* yr = yc + oh * p.wo;
      int32_t* ar = ac ? ac + oh * p.wo : nullptr;
      const int64_t row_base = 2 * oh * p.w;
      int64_t ow = 0;
      for (; ow + 4 <= p.wo; ow += 4) {
        const float32x4x2_t t = vld2q_f32(r0 + 2 * ow), b = vld2q_f32(r1 + 2 * ow);
        float32x4_t best = t.val[0];
        uint32x4_t off = vdupq_n_u32(0);
        pick(t.val[1], one, best, off);
        pick(b.val[0], below, best, off);
        pick(b.val[1], below_right, best, off);
        vst1q_f32(yr + ow, best);
        if (ar) {
          const uint32x4_t idx = vaddq_u32(vaddq_u32(off, lane2), vdupq_n_u32(static_cast<uint32_t>(row_base + 2 * ow)));
          vst1q_s32(ar + ow, vreinterpretq_s32_u32(idx));
        }
      }
      for (; ow < p.wo; ++ow) window1(r0, r1, ow, p.w, row_base, yr + ow, ar ? ar + ow : nullptr);
    }
  }
}

// Every input pixel lies in at most one window: each pair of input rows is written once, in full
// (lanes take dy where the argmax points at them, +0 elsewhere), then the pixels no window covers
// (a last odd column or row) are cleared.
void maxpool2d_bwd_neon(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p) {
  if (!is_2x2(p)) return maxpool2d_bwd_scalar(dy, argmax, dx, planes, p);
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  const int32_t lane2_init[4] = {0, 2, 4, 6};
  const int32x4_t lane2 = vld1q_s32(lane2_init);
  const int32x4_t one = vdupq_n_s32(1), below = vdupq_n_s32(static_cast<int32_t>(p.w));
  const int32x4_t below_right = vdupq_n_s32(static_cast<int32_t>(p.w + 1));
  const float32x4_t vzero = vdupq_n_f32(0.0f);
  for (int64_t c = 0; c < planes; ++c) {
    float* dxc = dx + c * in_plane;
    const float* dyc = dy + c * out_plane;
    const int32_t* ac = argmax + c * out_plane;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      float* r0 = dxc + 2 * oh * p.w;
      float* r1 = r0 + p.w;
      const float* dr = dyc + oh * p.wo;
      const int32_t* ar = ac + oh * p.wo;
      const int64_t row_base = 2 * oh * p.w;
      int64_t ow = 0;
      for (; ow + 4 <= p.wo; ow += 4) {
        const int32x4_t rel = vsubq_s32(vld1q_s32(ar + ow),
                                        vaddq_s32(lane2, vdupq_n_s32(static_cast<int32_t>(row_base + 2 * ow))));
        const float32x4_t d = vld1q_f32(dr + ow);
        float32x4x2_t top, bot;
        // 0 + (dy or 0): +0 where dy is -0, as the scalar kernel's dx[i] += dy.
        top.val[0] = vaddq_f32(vzero, vbslq_f32(vceqq_s32(rel, vdupq_n_s32(0)), d, vzero));
        top.val[1] = vaddq_f32(vzero, vbslq_f32(vceqq_s32(rel, one), d, vzero));
        bot.val[0] = vaddq_f32(vzero, vbslq_f32(vceqq_s32(rel, below), d, vzero));
        bot.val[1] = vaddq_f32(vzero, vbslq_f32(vceqq_s32(rel, below_right), d, vzero));
        vst2q_f32(r0 + 2 * ow, top);
        vst2q_f32(r1 + 2 * ow, bot);
      }
      for (; ow < p.wo; ++ow) {
        r0[2 * ow] = r0[2 * ow + 1] = r1[2 * ow] = r1[2 * ow + 1] = 0.0f;
        const int64_t a = ar[ow];
        const int64_t rel = a - (row_base + 2 * ow);
        if (a >= 0 && (rel == 0 || rel == 1 || rel == p.w || rel == p.w + 1)) dxc[a] += dr[ow];
      }
      for (int64_t j = 2 * p.wo; j < p.w; ++j) r0[j] = r1[j] = 0.0f;
    }
    for (int64_t i = 2 * p.ho * p.w; i < in_plane; ++i) dxc[i] = 0.0f;
  }
}

}  // namespace cpucnn
