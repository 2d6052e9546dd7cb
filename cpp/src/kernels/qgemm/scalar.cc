// The int8 GEMM reference and the packing routines every ISA shares.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/int8.hpp"

namespace cpucnn {

namespace {

// max_ps / min_ps semantics (the second operand when either is NaN), so the
// scalar reference and the vector kernels agree on every input.
inline float vmax(float a, float b) { return a > b ? a : b; }
inline float vmin(float a, float b) { return a < b ? a : b; }

}  // namespace

void qgemm_scalar(const int8_t* a, int64_t m, int64_t k4, const uint8_t* b, int64_t nc, const QGemmOut& o) {
  const int64_t nr = kQgemmNrScalar;
  (void)nr;
  for (int64_t r = 0; r < m; ++r) {
    const int8_t* ap = a + (r / kQPanelRows) * k4 * 16 + (r % kQPanelRows) * 4;
    for (int64_t j = 0; j < nc; ++j) {
      int32_t acc = 0;
      for (int64_t g = 0; g < k4; ++g) {
        const int8_t* wg = ap + g * 16;
        const uint8_t* xg = b + g * nr * 4 + j * 4;
        acc += int32_t(xg[0]) * wg[0] + int32_t(xg[1]) * wg[1] + int32_t(xg[2]) * wg[2] + int32_t(xg[3]) * wg[3];
      }
      float v = static_cast<float>(acc + o.ibias[r]);
      v = std::fma(v, o.mult[r], o.add[r]);
      const int64_t at = r * o.row_stride + j * o.col_stride;
      if (o.y8) {
        v = vmin(vmax(v, o.lo), o.hi);
        o.y8[at] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(v)));
      } else {
        o.yf[at] = o.relu ? vmax(v, 0.0f) : v;
      }
    }
  }
}

void qpack_weights(const float* w, int64_t m, int64_t k, int8_t* a) {
  const int64_t k4 = (k + 3) / 4, panels = (m + kQPanelRows - 1) / kQPanelRows;
  std::memset(a, 0, static_cast<size_t>(panels * k4 * 16));
  for (int64_t r = 0; r < m; ++r) {
    int8_t* ap = a + (r / kQPanelRows) * k4 * 16 + (r % kQPanelRows) * 4;
    for (int64_t kk = 0; kk < k; ++kk) ap[(kk / 4) * 16 + kk % 4] = static_cast<int8_t>(w[r * k + kk]);
  }
}

void qpack_conv_cols(const uint8_t* x, const QConvGeo& g, uint8_t zp, int64_t p0, int64_t nc, int64_t nr, int64_t k4,
                     uint8_t* b) {
  const int64_t k = g.cin * g.kh * g.kw;
  std::memset(b, 0, static_cast<size_t>(k4 * nr * 4));
  for (int64_t j = 0; j < nc; ++j) {
    const int64_t p = p0 + j, oh = p / g.wo, ow = p % g.wo;
    const int64_t ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
    uint8_t* col = b + j * 4;
    int64_t kk = 0;
    for (int64_t c = 0; c < g.cin; ++c) {
      const uint8_t* xc = x + c * g.h * g.w;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = ih0 + i * g.dh;
        const bool row_in = ih >= 0 && ih < g.h;
        for (int64_t t = 0; t < g.kw; ++t, ++kk) {
          const int64_t iw = iw0 + t * g.dw;
          col[(kk / 4) * nr * 4 + kk % 4] = row_in && iw >= 0 && iw < g.w ? xc[ih * g.w + iw] : zp;
        }
      }
    }
    (void)k;
  }
}

void qpack_rows(const uint8_t* x, int64_t ldx, int64_t k, int64_t j0, int64_t nc, int64_t nr, int64_t k4, uint8_t* b) {
  std::memset(b, 0, static_cast<size_t>(k4 * nr * 4));
  const int64_t full = k / 4;
  for (int64_t j = 0; j < nc; ++j) {
    const uint8_t* row = x + (j0 + j) * ldx;
    for (int64_t g = 0; g < full; ++g) std::memcpy(b + g * nr * 4 + j * 4, row + g * 4, 4);
    for (int64_t kk = full * 4; kk < k; ++kk) b[full * nr * 4 + j * 4 + kk % 4] = row[kk];
  }
}

}  // namespace cpucnn

namespace cpucnn {

void qim2col_block(const uint8_t* x, const QConvGeo& g, uint8_t zp, int64_t c0, int64_t nc, uint8_t* col,
                   int64_t ldcol) {
  int64_t kk = 0;
  for (int64_t c = 0; c < g.cin; ++c) {
    const uint8_t* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t t = 0; t < g.kw; ++t, ++kk) {
        uint8_t* dst = col + kk * ldcol;
        int64_t p = c0;
        const int64_t end = c0 + nc;
        while (p < end) {
          const int64_t oh = p / g.wo, ow = p % g.wo;
          const int64_t run = std::min(g.wo - ow, end - p);
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) {
            std::memset(dst, zp, static_cast<size_t>(run));
          } else {
            const uint8_t* src = xc + ih * g.w;
            const int64_t iw0 = ow * g.sw - g.pw + t * g.dw;
            if (g.sw == 1) {
              // columns [0, left) and [right, run) fall outside the row
              const int64_t left = std::min(run, std::max<int64_t>(0, -iw0));
              const int64_t right = std::max(left, std::min(run, g.w - iw0));
              if (left > 0) std::memset(dst, zp, static_cast<size_t>(left));
              if (right > left) std::memcpy(dst + left, src + iw0 + left, static_cast<size_t>(right - left));
              if (run > right) std::memset(dst + right, zp, static_cast<size_t>(run - right));
            } else {
              for (int64_t j = 0; j < run; ++j) {
                const int64_t iw = iw0 + j * g.sw;
                dst[j] = iw >= 0 && iw < g.w ? src[iw] : zp;
              }
            }
          }
          dst += run;
          p += run;
        }
      }
  }
}

void qinterleave(const uint8_t* col, int64_t ldcol, int64_t k, int64_t cols, int64_t nr, int64_t k4, uint8_t* b) {
  for (int64_t g = 0; g < k4; ++g) {
    const int64_t rows = std::min<int64_t>(4, k - 4 * g);
    const uint8_t* r0 = col + (4 * g) * ldcol;
    for (int64_t j0 = 0; j0 < cols; j0 += nr) {
      uint8_t* dst = b + (j0 / nr) * k4 * nr * 4 + g * nr * 4;
      if (rows == 4) {
        const uint8_t *r1 = r0 + ldcol, *r2 = r1 + ldcol, *r3 = r2 + ldcol;
        for (int64_t j = 0; j < nr; ++j) {
          dst[4 * j] = r0[j0 + j];
          dst[4 * j + 1] = r1[j0 + j];
          dst[4 * j + 2] = r2[j0 + j];
          dst[4 * j + 3] = r3[j0 + j];
        }
      } else {
        for (int64_t j = 0; j < nr; ++j)
          for (int64_t t = 0; t < 4; ++t) dst[4 * j + t] = t < rows ? col[(4 * g + t) * ldcol + j0 + j] : 0;
      }
    }
  }
}

}  // namespace cpucnn
