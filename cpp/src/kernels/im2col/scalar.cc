// im2col / col2im for one image (memory movement only; one version serves
// every ISA).
#include "kernels/im2col.hpp"

#include <cstring>

namespace cpucnn {

void im2col(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol) {
  const int64_t P = g.ho * g.wo;
  for (int64_t c = 0; c < channels; ++c) {
    const float* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        float* row = col + ((c * g.kh + i) * g.kw + j) * ldcol;
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          float* dst = row + oh * g.wo;
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) {
            std::memset(dst, 0, g.wo * sizeof(float));
            continue;
          }
          const float* src = xc + ih * g.w;
          const int64_t off = j * g.dw - g.pw;
          if (g.sw == 1) {
            // Valid ow: 0 <= ow + off < w.
            int64_t lo = off < 0 ? -off : 0;
            int64_t hi = g.w - off;
            if (hi > g.wo) hi = g.wo;
            if (lo > g.wo) lo = g.wo;
            if (hi < lo) hi = lo;
            for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = 0.0f;
            if (hi > lo) std::memcpy(dst + lo, src + lo + off, (hi - lo) * sizeof(float));
            for (int64_t ow = hi; ow < g.wo; ++ow) dst[ow] = 0.0f;
          } else {
            for (int64_t ow = 0; ow < g.wo; ++ow) {
              const int64_t iw = ow * g.sw + off;
              dst[ow] = (iw >= 0 && iw < g.w) ? src[iw] : 0.0f;
            }
          }
        }
        (void)P;
      }
    }
  }
}

void col2im(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x) {
  for (int64_t c = 0; c < channels; ++c) {
    float* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* row = col + ((c * g.kh + i) * g.kw + j) * ldcol;
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) continue;
          const float* src = row + oh * g.wo;
          float* dst = xc + ih * g.w;
          const int64_t off = j * g.dw - g.pw;
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const int64_t iw = ow * g.sw + off;
            if (iw >= 0 && iw < g.w) dst[iw] += src[ow];
          }
        }
      }
    }
  }
}

}  // namespace cpucnn
