// Quantize / dequantize / u8 max pooling / u8 ReLU: the scalar references.
#include <cmath>

#include "kernels/int8.hpp"
#include "kernels/params.hpp"

namespace cpucnn {

void quantize_u7_scalar(const float* x, uint8_t* q, int64_t n, float scale, float zp) {
  for (int64_t i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] / scale) + zp;
    v = v > 0.0f ? v : 0.0f;  // max_ps(v, 0): NaN -> 0
    v = v < 127.0f ? v : 127.0f;
    q[i] = static_cast<uint8_t>(static_cast<int32_t>(v));
  }
}

void dequantize_u8_scalar(const uint8_t* q, float* x, int64_t n, float scale, float zp) {
  for (int64_t i = 0; i < n; ++i) x[i] = (static_cast<float>(q[i]) - zp) * scale;
}

void qmaxpool2d_scalar(const uint8_t* x, uint8_t* y, int64_t planes, const Pool2dParams& p) {
  for (int64_t c = 0; c < planes; ++c) {
    const uint8_t* xp = x + c * p.h * p.w;
    uint8_t* yp = y + c * p.ho * p.wo;
    for (int64_t oh = 0; oh < p.ho; ++oh)
      for (int64_t ow = 0; ow < p.wo; ++ow) {
        uint8_t m = 0;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.sh - p.ph + i;
          if (ih < 0 || ih >= p.h) continue;
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t iw = ow * p.sw - p.pw + j;
            if (iw >= 0 && iw < p.w && xp[ih * p.w + iw] > m) m = xp[ih * p.w + iw];
          }
        }
        yp[oh * p.wo + ow] = m;
      }
  }
}

void qrelu_u8(const uint8_t* x, uint8_t* y, int64_t n, uint8_t lo) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > lo ? x[i] : lo;
}

}  // namespace cpucnn
