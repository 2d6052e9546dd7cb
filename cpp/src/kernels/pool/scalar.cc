#include <limits>

#include "kernels/kernels.hpp"

namespace cpucnn {

void maxpool2d_fwd_scalar(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p) {
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
