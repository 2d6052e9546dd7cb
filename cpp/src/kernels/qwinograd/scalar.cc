// The int8 Winograd F(2x2, 3x3) reference (kernels/qwinograd.hpp): the transforms written out
// tile by tile, the products one position at a time, the requantisation of qgemm/requant.hpp.
#include <cstring>

#include "kernels/qgemm/requant.hpp"
#include "kernels/qwinograd.hpp"

namespace cpucnn {

void qwino_input_scalar(const uint8_t* xpad, int64_t plane, int64_t wp, int64_t cin, int64_t trows, int64_t tw,
                        int16_t* v) {
  const int64_t cin2 = (cin + 1) / 2, ntiles = trows * tw;
  const int64_t cols = (ntiles + kQWinoTiles - 1) / kQWinoTiles * kQWinoTiles;
  for (int64_t c = 0; c < 2 * cin2; ++c) {
    const int64_t c2 = c / 2, lane = c % 2;
    for (int64_t j = 0; j < cols; ++j) {
      int32_t out[16] = {};
      if (c < cin && j < ntiles) {
        const uint8_t* p = xpad + c * plane + 2 * (j / tw) * wp + 2 * (j % tw);
        int32_t d[4][4], t[4][4];
        for (int r = 0; r < 4; ++r)
          for (int k = 0; k < 4; ++k) d[r][k] = p[r * wp + k];
        for (int k = 0; k < 4; ++k) {  // t = B^T d
          t[0][k] = d[0][k] - d[2][k];
          t[1][k] = d[1][k] + d[2][k];
          t[2][k] = d[2][k] - d[1][k];
          t[3][k] = d[1][k] - d[3][k];
        }
        for (int r = 0; r < 4; ++r) {  // V = t B
          out[r * 4 + 0] = t[r][0] - t[r][2];
          out[r * 4 + 1] = t[r][1] + t[r][2];
          out[r * 4 + 2] = t[r][2] - t[r][1];
          out[r * 4 + 3] = t[r][1] - t[r][3];
        }
      }
      for (int pos = 0; pos < 16; ++pos)
        v[(((j / kQWinoTiles) * 16 + pos) * cin2 + c2) * 32 + (j % kQWinoTiles) * 2 + lane] =
            static_cast<int16_t>(out[pos]);
    }
  }
}

void qwino_gemm_scalar(const int16_t* u, int64_t m, int64_t cin2, const int16_t* v, int64_t ntiles,
                       const QWinoOut& out) {
  const QGemmOut& o = out.o;
  for (int64_t r = 0; r < m; ++r) {
    const int16_t* ur = u + (r / kQPanelRows) * 16 * cin2 * 8 + (r % kQPanelRows) * 2;
    for (int64_t j = 0; j < ntiles; ++j) {
      int32_t mm[16];
      for (int pos = 0; pos < 16; ++pos) {
        int32_t acc = 0;
        for (int64_t c2 = 0; c2 < cin2; ++c2) {
          const int16_t* up = ur + (pos * cin2 + c2) * 8;
          const int16_t* vp = v + (((j / kQWinoTiles) * 16 + pos) * cin2 + c2) * 32 + (j % kQWinoTiles) * 2;
          acc += int32_t(up[0]) * vp[0] + int32_t(up[1]) * vp[1];
        }
        mm[pos] = acc;
      }
      int32_t s[2][4];  // A^T M
      for (int k = 0; k < 4; ++k) {
        s[0][k] = mm[0 * 4 + k] + mm[1 * 4 + k] + mm[2 * 4 + k];
        s[1][k] = mm[1 * 4 + k] - mm[2 * 4 + k] - mm[3 * 4 + k];
      }
      const int64_t i = j / out.tw, t = j % out.tw;
      for (int a = 0; a < 2; ++a) {
        const int32_t y[2] = {s[a][0] + s[a][1] + s[a][2], s[a][1] - s[a][2] - s[a][3]};  // (A^T M) A
        const int64_t row = 2 * i + a;
        for (int b = 0; b < 2; ++b) {
          const int64_t col = 2 * t + b;
          if (row < out.rows && col < out.wo) qrequant_store(y[b] / 4, r, r * o.row_stride + row * out.wo + col, o);
        }
      }
    }
  }
}

void qwino_pack_weights(const float* w, int64_t m, int64_t cin, int16_t* u) {
  const int64_t cin2 = (cin + 1) / 2, panels = (m + kQPanelRows - 1) / kQPanelRows;
  std::memset(u, 0, static_cast<size_t>(panels * 16 * cin2 * 8) * sizeof(int16_t));
  static const int32_t g2[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};  // 2G
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < cin; ++c) {
      const float* k = w + (r * cin + c) * 9;
      int32_t t[4][3];  // (2G) g
      for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 3; ++q)
          t[p][q] = g2[p][0] * static_cast<int32_t>(k[q]) + g2[p][1] * static_cast<int32_t>(k[3 + q]) +
                    g2[p][2] * static_cast<int32_t>(k[6 + q]);
      for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 4; ++q) {  // ((2G) g) (2G)^T
          const int32_t val = t[p][0] * g2[q][0] + t[p][1] * g2[q][1] + t[p][2] * g2[q][2];
          u[(((r / kQPanelRows) * 16 + p * 4 + q) * cin2 + c / 2) * 8 + (r % kQPanelRows) * 2 + c % 2] =
              static_cast<int16_t>(val);
        }
    }
}

}  // namespace cpucnn
