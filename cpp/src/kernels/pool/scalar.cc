#include <limits>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

// The common case: 2x2 windows, stride 2, no padding.
void maxpool2x2(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  for (int64_t c = 0; c < planes; ++c) {
    const float* xc = x + c * in_plane;
    float* yc = y + c * out_plane;
    int32_t* ac = argmax ? argmax + c * out_plane : nullptr;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      const float* r0 = xc + (2 * oh) * p.w;
      const float* r1 = r0 + p.w;
      for (int64_t ow = 0; ow < p.wo; ++ow) {
        // First maximum in window order (row-major), NaN wins, as PyTorch.
        const float v[4] = {r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
        int k = 0;
        for (int q = 1; q < 4; ++q)
          if ((v[q] > v[k] || v[q] != v[q]) && v[k] == v[k]) k = q;
        yc[oh * p.wo + ow] = v[k];
        if (ac) ac[oh * p.wo + ow] = static_cast<int32_t>((2 * oh + (k >> 1)) * p.w + 2 * ow + (k & 1));
      }
    }
  }
}

}  // namespace

void maxpool2d_fwd_scalar(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
  if (p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0)
    return maxpool2x2(x, y, argmax, planes, p);
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  for (int64_t c = 0; c < planes; ++c) {
    const float* xc = x + c * in_plane;
    float* yc = y + c * out_plane;
    int32_t* ac = argmax ? argmax + c * out_plane : nullptr;
    for (int64_t oh = 0; oh < p.ho; ++oh) {
      for (int64_t ow = 0; ow < p.wo; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_i = -1;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.sh - p.ph + i;
          if (ih < 0 || ih >= p.h) continue;
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t iw = ow * p.sw - p.pw + j;
            if (iw < 0 || iw >= p.w) continue;
            const float v = xc[ih * p.w + iw];
            // NaN propagates, as in PyTorch.
            if (v > best || v != v || best_i < 0) {
              best = v;
              best_i = ih * p.w + iw;
              if (v != v) break;
            }
          }
        }
        yc[oh * p.wo + ow] = best;
        if (ac) ac[oh * p.wo + ow] = static_cast<int32_t>(best_i);
      }
    }
  }
}

void maxpool2d_bwd_scalar(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p) {
  const int64_t in_plane = p.h * p.w, out_plane = p.ho * p.wo;
  for (int64_t c = 0; c < planes; ++c) {
    float* dxc = dx + c * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) dxc[i] = 0.0f;
    const float* dyc = dy + c * out_plane;
    const int32_t* ac = argmax + c * out_plane;
    for (int64_t o = 0; o < out_plane; ++o)
      if (ac[o] >= 0) dxc[ac[o]] += dyc[o];
  }
}

}  // namespace cpucnn
