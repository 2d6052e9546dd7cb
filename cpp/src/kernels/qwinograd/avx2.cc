// The int8 Winograd F(2x2, 3x3) kernels, AVX2 (kernels/qwinograd.hpp). The input transform runs on
// 16 tiles of one channel in int16 lanes and interleaves channel pairs into V's layout; the
// products are vpmaddwd on pairs of channels, 4 output channels x 16 tiles a register tile (8
// accumulators); the output transform, the exact / 4 and the requantisation (qgemm/requant_avx2.inc,
// the GEMM's own) run on 8 tiles a register.
#include <immintrin.h>

#include <cstring>

#include "kernels/copy_short.hpp"
#include "kernels/qgemm/requant_avx2.inc"
#include "kernels/qwinograd.hpp"

namespace cpucnn {

namespace {

// V of 16 tiles of one channel (tile j reads p + 2 j + k of rows p + r * wp), position pos in out[pos].
inline void input_16(const uint8_t* p, int64_t wp, __m256i* out) {
  const __m256i low = _mm256_set1_epi16(0x00ff);
  __m256i d[4][4];
  for (int r = 0; r < 4; ++r) {
    // word j of a is bytes (2 j, 2 j + 1): columns 0 and 1 of tile j; of b, columns 2 and 3
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + r * wp));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + r * wp + 2));
    d[r][0] = _mm256_and_si256(a, low);
    d[r][1] = _mm256_srli_epi16(a, 8);
    d[r][2] = _mm256_and_si256(b, low);
    d[r][3] = _mm256_srli_epi16(b, 8);
  }
  for (int k = 0; k < 4; ++k) {  // t = B^T d, then V = t B
    const __m256i t0 = _mm256_sub_epi16(d[0][k], d[2][k]);
    const __m256i t1 = _mm256_add_epi16(d[1][k], d[2][k]);
    const __m256i t2 = _mm256_sub_epi16(d[2][k], d[1][k]);
    const __m256i t3 = _mm256_sub_epi16(d[1][k], d[3][k]);
    d[0][k] = t0;
    d[1][k] = t1;
    d[2][k] = t2;
    d[3][k] = t3;
  }
  for (int r = 0; r < 4; ++r) {
    out[r * 4 + 0] = _mm256_sub_epi16(d[r][0], d[r][2]);
    out[r * 4 + 1] = _mm256_add_epi16(d[r][1], d[r][2]);
    out[r * 4 + 2] = _mm256_sub_epi16(d[r][2], d[r][1]);
    out[r * 4 + 3] = _mm256_sub_epi16(d[r][1], d[r][3]);
  }
}

// The same for 8 tiles (out[pos]: 8 int16).
inline void input_8(const uint8_t* p, int64_t wp, __m128i* out) {
  const __m128i low = _mm_set1_epi16(0x00ff);
  __m128i d[4][4];
  for (int r = 0; r < 4; ++r) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + r * wp));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + r * wp + 2));
    d[r][0] = _mm_and_si128(a, low);
    d[r][1] = _mm_srli_epi16(a, 8);
    d[r][2] = _mm_and_si128(b, low);
    d[r][3] = _mm_srli_epi16(b, 8);
  }
  for (int k = 0; k < 4; ++k) {
    const __m128i t0 = _mm_sub_epi16(d[0][k], d[2][k]);
    const __m128i t1 = _mm_add_epi16(d[1][k], d[2][k]);
    const __m128i t2 = _mm_sub_epi16(d[2][k], d[1][k]);
    const __m128i t3 = _mm_sub_epi16(d[1][k], d[3][k]);
    d[0][k] = t0;
    d[1][k] = t1;
    d[2][k] = t2;
    d[3][k] = t3;
  }
  for (int r = 0; r < 4; ++r) {
    out[r * 4 + 0] = _mm_sub_epi16(d[r][0], d[r][2]);
    out[r * 4 + 1] = _mm_add_epi16(d[r][1], d[r][2]);
    out[r * 4 + 2] = _mm_sub_epi16(d[r][2], d[r][1]);
    out[r * 4 + 3] = _mm_sub_epi16(d[r][1], d[r][3]);
  }
}

// acc[0..3] (4 rows x tiles 0-7) and acc[4..7] (tiles 8-15) = sum over channel pairs of the U
// panel's pairs (up: cin2 groups of 8 int16) x V's (vp: cin2 rows of 16 pairs).
inline void tile_4x16(const int16_t* up, const int16_t* vp, int64_t cin2, __m256i* acc) {
  __m256i vacc0 = _mm256_setzero_si256(), vacc1 = _mm256_setzero_si256();
  __m256i vacc2 = _mm256_setzero_si256(), vacc3 = _mm256_setzero_si256();
  __m256i vacc4 = _mm256_setzero_si256(), vacc5 = _mm256_setzero_si256();
  __m256i vacc6 = _mm256_setzero_si256(), vacc7 = _mm256_setzero_si256();
  const float* uf = reinterpret_cast<const float*>(up);
  for (int64_t c2 = 0; c2 < cin2; ++c2, uf += 4, vp += 32) {
    const __m256i vb0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vp));
    const __m256i vb1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vp + 16));
    const __m256i va0 = _mm256_castps_si256(_mm256_broadcast_ss(uf));
    vacc0 = _mm256_add_epi32(vacc0, _mm256_madd_epi16(vb0, va0));
    vacc4 = _mm256_add_epi32(vacc4, _mm256_madd_epi16(vb1, va0));
    const __m256i va1 = _mm256_castps_si256(_mm256_broadcast_ss(uf + 1));
    vacc1 = _mm256_add_epi32(vacc1, _mm256_madd_epi16(vb0, va1));
    vacc5 = _mm256_add_epi32(vacc5, _mm256_madd_epi16(vb1, va1));
    const __m256i va2 = _mm256_castps_si256(_mm256_broadcast_ss(uf + 2));
    vacc2 = _mm256_add_epi32(vacc2, _mm256_madd_epi16(vb0, va2));
    vacc6 = _mm256_add_epi32(vacc6, _mm256_madd_epi16(vb1, va2));
    const __m256i va3 = _mm256_castps_si256(_mm256_broadcast_ss(uf + 3));
    vacc3 = _mm256_add_epi32(vacc3, _mm256_madd_epi16(vb0, va3));
    vacc7 = _mm256_add_epi32(vacc7, _mm256_madd_epi16(vb1, va3));
  }
  acc[0] = vacc0;
  acc[1] = vacc1;
  acc[2] = vacc2;
  acc[3] = vacc3;
  acc[4] = vacc4;
  acc[5] = vacc5;
  acc[6] = vacc6;
  acc[7] = vacc7;
}

// Y = A^T M A / 4 of 8 tiles (m[pos], int32 lanes): the output row a of the tiles as 16 values,
// (tile 0 column 0, tile 0 column 1, tile 1 column 0, ...), in line[a][0..1].
inline void output_8(const __m256i* m, __m256i line[2][2]) {
  __m256i s[2][4];
  for (int k = 0; k < 4; ++k) {
    const __m256i m12 = _mm256_add_epi32(m[4 + k], m[8 + k]);
    s[0][k] = _mm256_add_epi32(m[k], m12);
    s[1][k] = _mm256_sub_epi32(_mm256_sub_epi32(m[4 + k], m[8 + k]), m[12 + k]);
  }
  for (int a = 0; a < 2; ++a) {
    const __m256i y0 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(s[a][0], s[a][1]), s[a][2]), 2);
    const __m256i y1 = _mm256_srai_epi32(_mm256_sub_epi32(_mm256_sub_epi32(s[a][1], s[a][2]), s[a][3]), 2);
    const __m256i lo = _mm256_unpacklo_epi32(y0, y1);  // tiles 0, 1 | 4, 5
    const __m256i hi = _mm256_unpackhi_epi32(y0, y1);  // tiles 2, 3 | 6, 7
    line[a][0] = _mm256_permute2x128_si256(lo, hi, 0x20);
    line[a][1] = _mm256_permute2x128_si256(lo, hi, 0x31);
  }
}

}  // namespace

void qwino_input_avx2(const uint8_t* xpad, int64_t plane, int64_t wp, int64_t cin, int64_t trows, int64_t tw,
                      int16_t* v) {
  const int64_t cin2 = (cin + 1) / 2, ntiles = trows * tw;
  // One group's 16 tiles of a channel pair, each position's 32 int16 in a row, and room for the
  // spill of a run that starts inside the group (16 tiles are transformed from any start).
  alignas(32) int16_t stage[16][64] = {};
  alignas(32) int16_t first[16][16];
  for (int64_t j0 = 0; j0 < ntiles; j0 += kQWinoTiles) {
    int16_t* vg = v + (j0 / kQWinoTiles) * 16 * cin2 * 32;
    for (int64_t c2 = 0; c2 < cin2; ++c2) {
      const uint8_t* x0 = xpad + 2 * c2 * plane;
      const bool pair = 2 * c2 + 1 < cin;
      for (int64_t jj = 0; jj < kQWinoTiles && j0 + jj < ntiles;) {  // runs of the group in one tile row
        const int64_t j = j0 + jj, i = j / tw, t = j % tw;
        const int64_t run = tw - t < kQWinoTiles - jj ? tw - t : kQWinoTiles - jj;
        if (run <= 8) {  // a short run (maps of 16 columns or fewer): 8 tiles, half the work
          __m128i a[16], b[16];
          input_8(x0 + 2 * i * wp + 2 * t, wp, a);
          if (pair)
            input_8(x0 + plane + 2 * i * wp + 2 * t, wp, b);
          else
            for (int pos = 0; pos < 16; ++pos) b[pos] = _mm_setzero_si128();
          for (int pos = 0; pos < 16; ++pos) {
            int16_t* dst = stage[pos] + 2 * jj;
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(a[pos], b[pos]));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 8), _mm_unpackhi_epi16(a[pos], b[pos]));
          }
          jj += run;
          continue;
        }
        __m256i a[16], b[16];
        input_16(x0 + 2 * i * wp + 2 * t, wp, a);
        for (int pos = 0; pos < 16; ++pos) _mm256_store_si256(reinterpret_cast<__m256i*>(first[pos]), a[pos]);
        if (pair)
          input_16(x0 + plane + 2 * i * wp + 2 * t, wp, b);
        else
          for (int pos = 0; pos < 16; ++pos) b[pos] = _mm256_setzero_si256();
        for (int pos = 0; pos < 16; ++pos) {
          const __m256i va = _mm256_load_si256(reinterpret_cast<const __m256i*>(first[pos]));
          const __m256i lo = _mm256_unpacklo_epi16(va, b[pos]);  // tiles 0-3 | 8-11
          const __m256i hi = _mm256_unpackhi_epi16(va, b[pos]);  // tiles 4-7 | 12-15
          int16_t* dst = stage[pos] + 2 * jj;
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(lo, hi, 0x20));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
        jj += run;
      }
      for (int pos = 0; pos < 16; ++pos) {
        int16_t* dst = vg + (pos * cin2 + c2) * 32;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(stage[pos])));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16),
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(stage[pos] + 16)));
      }
    }
  }
}

void qwino_gemm_avx2(const int16_t* u, int64_t m, int64_t cin2, const int16_t* v, int64_t ntiles, const QWinoOut& out) {
  const QGemmOut& o = out.o;
  const int64_t tw = out.tw, wo = out.wo, panel_size = 16 * cin2 * 8;
  const size_t esize = o.y8 ? 1 : sizeof(float);
  alignas(32) int32_t mb[16][4][16];        // M of one panel x one group: [pos][row][tile]
  alignas(32) unsigned char stage[64];      // 16 requantised outputs (u8 or float)
  for (int64_t j0 = 0; j0 < ntiles; j0 += kQWinoTiles) {
    for (int64_t r0 = 0; r0 < m; r0 += kQPanelRows) {
      const int16_t* up = u + (r0 / kQPanelRows) * panel_size;
      for (int pos = 0; pos < 16; ++pos) {
        __m256i acc[8];
        tile_4x16(up + pos * cin2 * 8, v + ((j0 / kQWinoTiles) * 16 + pos) * cin2 * 32, cin2, acc);
        for (int r = 0; r < 4; ++r) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(&mb[pos][r][0]), acc[r]);
          _mm256_store_si256(reinterpret_cast<__m256i*>(&mb[pos][r][8]), acc[r + 4]);
        }
      }
      const int64_t rows = m - r0 < kQPanelRows ? m - r0 : kQPanelRows;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t ch = r0 + r;
        for (int h = 0; h < 2 && j0 + 8 * h < ntiles; ++h) {  // 8 tiles at a time
          __m256i mm[16], line[2][2];
          for (int pos = 0; pos < 16; ++pos)
            mm[pos] = _mm256_load_si256(reinterpret_cast<const __m256i*>(&mb[pos][r][8 * h]));
          output_8(mm, line);
          const int64_t h0 = j0 + 8 * h, i = h0 / tw, t = h0 % tw, nh = ntiles - h0 < 8 ? ntiles - h0 : 8;
          // the 8 tiles in one tile row, every output column inside: requantised straight into y
          const bool straight = t + 8 <= tw && 2 * (t + 8) <= wo;
          for (int a = 0; a < 2; ++a) {
            if (straight) {
              const int64_t row = 2 * i + a;
              if (row >= out.rows) continue;
              QGemmOut oy = o;
              if (oy.y8) oy.y8 += row * wo + 2 * t;
              if (oy.yf) oy.yf += row * wo + 2 * t;
              store_row(line[a][0], line[a][1], ch, 16, oy);
              continue;
            }
            // staged: the tiles cross tile rows or the plane's right edge
            QGemmOut os = o;
            os.row_stride = 0;
            if (os.y8) os.y8 = stage;
            if (os.yf) os.yf = reinterpret_cast<float*>(stage);
            store_row(line[a][0], line[a][1], ch, 16, os);
            for (int64_t jj = 0; jj < nh;) {
              const int64_t ti = (h0 + jj) / tw, tt = (h0 + jj) % tw;
              const int64_t run = tw - tt < nh - jj ? tw - tt : nh - jj;
              const int64_t cols = 2 * run < wo - 2 * tt ? 2 * run : wo - 2 * tt, row = 2 * ti + a;
              if (row < out.rows && cols > 0) {
                const int64_t at = ch * o.row_stride + row * wo + 2 * tt;
                unsigned char* dst = o.y8 ? o.y8 + at : reinterpret_cast<unsigned char*>(o.yf + at);
                copy_short(dst, stage + 2 * jj * static_cast<int64_t>(esize), cols * static_cast<int64_t>(esize));
              }
              jj += run;
            }
          }
        }
      }
    }
  }
}

}  // namespace cpucnn
