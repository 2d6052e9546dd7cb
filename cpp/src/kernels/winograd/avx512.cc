// Winograd F(2x2, 3x3) transforms for AVX-512: 16 tiles of a tile row per
// register. Input rows are read with masked loads straight from the plane
// (lanes outside it read as zero, so padding costs nothing) and split into
// even and odd columns with two-source permutes; outputs are interleaved
// back the same way and written with masked stores. Layout and maths:
// kernels/winograd.hpp and winograd.inc (the portable version, for avx2).
#include <immintrin.h>

#include "kernels/avx512_lanes.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"
#include "kernels/winograd.hpp"

namespace cpucnn {

#include "kernels/winograd/weights.inc"

namespace {

using avx512::lanes;

// v shifted up one lane, carry's lane 15 shifted in at lane 0.
inline __m512 shift_in(__m512 v, __m512 carry) {
  return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), _mm512_castps_si512(carry), 15));
}

// The pieces both layouts (one or two tile rows a register) share.

// V = B^T d B from the row transforms h[k] = d B of the tile's 4 input rows,
// stored to the 16 xi planes (`xs` floats apart) under `keep`.
inline void store_v(float* out, int64_t xs, __mmask16 keep, const __m512 h[4][4]) {
  for (int q = 0; q < 4; ++q) {
    _mm512_mask_storeu_ps(out + q * xs, keep, _mm512_sub_ps(h[0][q], h[2][q]));
    _mm512_mask_storeu_ps(out + (4 + q) * xs, keep, _mm512_add_ps(h[1][q], h[2][q]));
    _mm512_mask_storeu_ps(out + (8 + q) * xs, keep, _mm512_sub_ps(h[2][q], h[1][q]));
    _mm512_mask_storeu_ps(out + (12 + q) * xs, keep, _mm512_sub_ps(h[1][q], h[3][q]));
  }
}

// t[p] = (m A)[p] for the 16 xi planes at mk, loaded under `keep`: the even
// and odd output columns.
inline void output_columns(const float* mk, int64_t xs, __mmask16 keep, __m512 t[4][2]) {
  for (int p = 0; p < 4; ++p) {
    const __m512 m0 = _mm512_maskz_loadu_ps(keep, mk + (4 * p) * xs);
    const __m512 m1 = _mm512_maskz_loadu_ps(keep, mk + (4 * p + 1) * xs);
    const __m512 m2 = _mm512_maskz_loadu_ps(keep, mk + (4 * p + 2) * xs);
    const __m512 m3 = _mm512_maskz_loadu_ps(keep, mk + (4 * p + 3) * xs);
    t[p][0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    t[p][1] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
}

// Output row a of the tiles, even (ye) and odd (yo) columns, with the bias
// and the ReLU.
inline void output_row(const __m512 t[4][2], int a, __m512 b, bool relu, __m512& ye, __m512& yo) {
  if (a == 0) {
    ye = _mm512_add_ps(_mm512_add_ps(t[0][0], t[1][0]), t[2][0]);
    yo = _mm512_add_ps(_mm512_add_ps(t[0][1], t[1][1]), t[2][1]);
  } else {
    ye = _mm512_sub_ps(_mm512_sub_ps(t[1][0], t[2][0]), t[3][0]);
    yo = _mm512_sub_ps(_mm512_sub_ps(t[1][1], t[2][1]), t[3][1]);
  }
  ye = _mm512_add_ps(ye, b);
  yo = _mm512_add_ps(yo, b);
  if (relu) {
    ye = _mm512_max_ps(_mm512_setzero_ps(), ye);
    yo = _mm512_max_ps(_mm512_setzero_ps(), yo);
  }
}

// dM = A e A^T from the even (e0) and odd (e1) columns of the tiles' two dy
// rows, stored to the 16 xi planes under `keep`.
inline void store_dm(float* out, int64_t xs, __mmask16 keep, const __m512 e0[2], const __m512 e1[2]) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 r[2][4];  // [output row][q]: e A^T
  for (int a = 0; a < 2; ++a) {
    r[a][0] = e0[a];
    r[a][1] = _mm512_add_ps(e0[a], e1[a]);
    r[a][2] = _mm512_sub_ps(e0[a], e1[a]);
    r[a][3] = _mm512_sub_ps(zero, e1[a]);
  }
  for (int q = 0; q < 4; ++q) {
    _mm512_mask_storeu_ps(out + q * xs, keep, r[0][q]);
    _mm512_mask_storeu_ps(out + (4 + q) * xs, keep, _mm512_add_ps(r[0][q], r[1][q]));
    _mm512_mask_storeu_ps(out + (8 + q) * xs, keep, _mm512_sub_ps(r[0][q], r[1][q]));
    _mm512_mask_storeu_ps(out + (12 + q) * xs, keep, _mm512_sub_ps(zero, r[1][q]));
  }
}

// Narrow maps (tw <= 8 tiles a row): two units a register, lanes [0, tw)
// unit u's tiles and [tw, 2 tw) unit u + 1's, whose columns of the
// transformed arrays follow unit u's, so one store covers both. The same
// operations per lane as one unit a register (identical results), with
// half the loads, permutes, arithmetic and stores per tile. pair_lanes: the
// permutex2var index taking even (odd = 0) or odd (odd = 1) lanes of the
// first source into lanes [0, tw) and of the second into [tw, 2 tw).
inline __m512i pair_lanes(int64_t tw, int odd) {
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; ++l)
    idx[l] = l < tw ? 2 * l + odd : (l < 2 * tw ? 16 + 2 * static_cast<int>(l - tw) + odd : 0);
  return _mm512_load_si512(idx);
}

// Lanes [tw, 2 tw) of ye and yo interleaved (unit u + 1's output row).
inline __m512i zip_second(int64_t tw) {
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 8; ++l) {
    const int src = static_cast<int>(imin(tw + l, 15));
    idx[2 * l] = src;
    idx[2 * l + 1] = 16 + src;
  }
  return _mm512_load_si512(idx);
}

void input_pairs(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g, int64_t u0,
                 int64_t u1, float* v, int64_t ldv) {
  const int64_t xs = winograd_plane(channels, ldv);
  const __m512i kE = pair_lanes(g.tw, 0), kO = pair_lanes(g.tw, 1);
  const __m512 zero = _mm512_setzero_ps();
  const int64_t s = -g.pw;  // first input column
  const __mmask16 m0 = lanes(-s, g.w - s), m2 = lanes(-s - 2, g.w - s - 2);
  // Columns s.. and s + 2.. of row r (zero outside the plane).
  auto load = [&](const float* plane, int64_t r, __m512& lo, __m512& lo2) {
    if (r < 0 || r >= g.h) {
      lo = lo2 = zero;
      return;
    }
    lo = _mm512_maskz_loadu_ps(m0, plane + r * g.w + s);
    lo2 = _mm512_maskz_loadu_ps(m2, plane + r * g.w + s + 2);
  };
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t u = u0; u < u1; u += 2) {
      const bool two = u + 1 < u1;
      const float* pa = x + (u / g.th) * image_stride + c * g.h * g.w;
      const float* pb = two ? x + ((u + 1) / g.th) * image_stride + c * g.h * g.w : pa;
      const int64_t ra = 2 * (u % g.th) - g.ph, rb = 2 * ((u + 1) % g.th) - g.ph;
      __m512 h[4][4];  // [tile row k][q]: d B
      for (int k = 0; k < 4; ++k) {
        __m512 la, la2, lb = zero, lb2 = zero;
        load(pa, ra + k, la, la2);
        if (two) load(pb, rb + k, lb, lb2);
        const __m512 d0 = _mm512_permutex2var_ps(la, kE, lb), d1 = _mm512_permutex2var_ps(la, kO, lb);
        const __m512 d2 = _mm512_permutex2var_ps(la2, kE, lb2), d3 = _mm512_permutex2var_ps(la2, kO, lb2);
        h[k][0] = _mm512_sub_ps(d0, d2);
        h[k][1] = _mm512_add_ps(d1, d2);
        h[k][2] = _mm512_sub_ps(d2, d1);
        h[k][3] = _mm512_sub_ps(d1, d3);
      }
      store_v(v + c * ldv + (u - u0) * g.tw, xs, lanes(0, two ? 2 * g.tw : g.tw), h);
    }
  }
}

void output_pairs(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                  const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride) {
  const int64_t xs = winograd_plane(channels, ldm);
  const __m512i kZipA = avx512::zip_lo(), kZipB = zip_second(g.tw);
  const __mmask16 row_mask = lanes(0, g.wo);
  for (int64_t k = 0; k < channels; ++k) {
    const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f);
    for (int64_t u = u0; u < u1; u += 2) {
      const bool two = u + 1 < u1;
      const __mmask16 keep = lanes(0, two ? 2 * g.tw : g.tw);
      __m512 t[4][2];  // [p][column parity]: m A
      output_columns(m + k * ldm + (u - u0) * g.tw, xs, keep, t);
      for (int a = 0; a < 2; ++a) {
        __m512 ye, yo;
        output_row(t, a, b, relu, ye, yo);
        for (int half = 0; half < (two ? 2 : 1); ++half) {
          const int64_t uu = u + half, row = 2 * (uu % g.th) + a;
          if (row >= g.ho) continue;
          float* dst = y + (uu / g.th) * image_stride + k * g.ho * g.wo + row * g.wo;
          _mm512_mask_storeu_ps(dst, row_mask, _mm512_permutex2var_ps(ye, half ? kZipB : kZipA, yo));
        }
      }
    }
  }
}

void grad_output_pairs(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                       int64_t u0, int64_t u1, float* dm, int64_t ldm) {
  const int64_t xs = winograd_plane(channels, ldm);
  const __m512i kE = pair_lanes(g.tw, 0), kO = pair_lanes(g.tw, 1);
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 row_mask = lanes(0, g.wo);
  auto load = [&](int64_t uu, int64_t k, int a) {
    const int64_t row = 2 * (uu % g.th) + a;
    if (row >= g.ho) return zero;
    return _mm512_maskz_loadu_ps(row_mask, dy + (uu / g.th) * image_stride + k * g.ho * g.wo + row * g.wo);
  };
  for (int64_t k = 0; k < channels; ++k) {
    for (int64_t u = u0; u < u1; u += 2) {
      const bool two = u + 1 < u1;
      __m512 e0[2], e1[2];  // [output row]: even and odd columns
      for (int a = 0; a < 2; ++a) {
        const __m512 la = load(u, k, a), lb = two ? load(u + 1, k, a) : zero;
        e0[a] = _mm512_permutex2var_ps(la, kE, lb);
        e1[a] = _mm512_permutex2var_ps(la, kO, lb);
      }
      store_dm(dm + k * ldm + (u - u0) * g.tw, xs, lanes(0, two ? 2 * g.tw : g.tw), e0, e1);
    }
  }
}

}  // namespace

// Reads the planes directly: no scratch.
void winograd_input_avx512(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                           int64_t u0, int64_t u1, float* v, int64_t ldv, float* /*scratch*/) {
  if (g.tw <= 8) return input_pairs(x, channels, image_stride, g, u0, u1, v, ldv);
  const int64_t xs = winograd_plane(channels, ldv);
  const __m512i kEven = avx512::even_lanes(), kOdd = avx512::odd_lanes();
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t j0 = 0; j0 < g.tw; j0 += 16) {  // one strip of 16 tiles per row (usually the only one)
    const __mmask16 keep = lanes(0, g.tw - j0);
    const int64_t s = 2 * j0 - g.pw;  // first input column of the strip
    const __mmask16 m0 = lanes(-s, g.w - s), m1 = lanes(-s - 16, g.w - s - 16);
    const __mmask16 m2 = lanes(-s - 2, g.w - s - 2), m3 = lanes(-s - 18, g.w - s - 18);
    // d B of input row r (all zero outside the plane).
    auto row_transform = [&](const float* plane, int64_t r, __m512 h[4]) {
      if (r < 0 || r >= g.h) {
        h[0] = h[1] = h[2] = h[3] = zero;
        return;
      }
      const float* row = plane + r * g.w + s;
      const __m512 lo = _mm512_maskz_loadu_ps(m0, row), hi = _mm512_maskz_loadu_ps(m1, row + 16);
      const __m512 lo2 = _mm512_maskz_loadu_ps(m2, row + 2), hi2 = _mm512_maskz_loadu_ps(m3, row + 18);
      const __m512 d0 = _mm512_permutex2var_ps(lo, kEven, hi), d1 = _mm512_permutex2var_ps(lo, kOdd, hi);
      const __m512 d2 = _mm512_permutex2var_ps(lo2, kEven, hi2), d3 = _mm512_permutex2var_ps(lo2, kOdd, hi2);
      h[0] = _mm512_sub_ps(d0, d2);
      h[1] = _mm512_add_ps(d1, d2);
      h[2] = _mm512_sub_ps(d2, d1);
      h[3] = _mm512_sub_ps(d1, d3);
    };
    // Channel by channel, each plane top to bottom: tile row i reads input
    // rows 2i..2i+3, so the last two row transforms carry over to row i+1.
    for (int64_t c = 0; c < channels; ++c) {
      __m512 h[4][4];
      int64_t have = -1;  // the unit whose rows 2 and 3 sit in h[2], h[3]
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t n = u / g.th, i = u % g.th, col0 = (u - u0) * g.tw;
        const float* plane = x + n * image_stride + c * g.h * g.w;
        const int64_t r0 = 2 * i - g.ph;
        if (have == u - 1 && i > 0) {
          for (int q = 0; q < 4; ++q) {
            h[0][q] = h[2][q];
            h[1][q] = h[3][q];
          }
        } else {
          row_transform(plane, r0, h[0]);
          row_transform(plane, r0 + 1, h[1]);
        }
        row_transform(plane, r0 + 2, h[2]);
        row_transform(plane, r0 + 3, h[3]);
        have = u;
        store_v(v + c * ldv + col0 + j0, xs, keep, h);
      }
    }
  }
}

void winograd_output_avx512(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                            const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride) {
  if (g.tw <= 8) return output_pairs(m, ldm, channels, bias, relu, g, u0, u1, y, image_stride);
  const int64_t xs = winograd_plane(channels, ldm);
  const __m512i kZipLo = avx512::zip_lo(), kZipHi = avx512::zip_hi();
  for (int64_t j0 = 0; j0 < g.tw; j0 += 16) {
    const __mmask16 keep = lanes(0, g.tw - j0);
    const int64_t cols = g.wo - 2 * j0;  // valid output columns from 2 j0
    const __mmask16 keep_lo = lanes(0, cols), keep_hi = lanes(0, cols - 16);
    for (int64_t k = 0; k < channels; ++k) {  // plane by plane: each is written top to bottom
      const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f);
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t n = u / g.th, i = u % g.th, col0 = (u - u0) * g.tw;
        __m512 t[4][2];  // [p][column parity]: m A
        output_columns(m + k * ldm + col0 + j0, xs, keep, t);
        float* plane = y + n * image_stride + k * g.ho * g.wo;
        const int rows = 2 * i + 1 < g.ho ? 2 : 1;
        for (int a = 0; a < rows; ++a) {
          __m512 ye, yo;
          output_row(t, a, b, relu, ye, yo);
          float* dst = plane + (2 * i + a) * g.wo + 2 * j0;
          _mm512_mask_storeu_ps(dst, keep_lo, _mm512_permutex2var_ps(ye, kZipLo, yo));
          _mm512_mask_storeu_ps(dst + 16, keep_hi, _mm512_permutex2var_ps(ye, kZipHi, yo));
        }
      }
    }
  }
}

void winograd_grad_output_avx512(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                 int64_t u0, int64_t u1, float* dm, int64_t ldm) {
  if (g.tw <= 8) return grad_output_pairs(dy, channels, image_stride, g, u0, u1, dm, ldm);
  const int64_t xs = winograd_plane(channels, ldm);
  const __m512i kEven = avx512::even_lanes(), kOdd = avx512::odd_lanes();
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t j0 = 0; j0 < g.tw; j0 += 16) {
    const __mmask16 keep = lanes(0, g.tw - j0);
    const int64_t cols = g.wo - 2 * j0;
    const __mmask16 m0 = lanes(0, cols), m1 = lanes(0, cols - 16);
    for (int64_t k = 0; k < channels; ++k) {  // plane by plane: each is read top to bottom
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t n = u / g.th, i = u % g.th, col0 = (u - u0) * g.tw;
        const float* plane = dy + n * image_stride + k * g.ho * g.wo;
        __m512 e0[2] = {zero, zero}, e1[2] = {zero, zero};  // [output row]: even and odd columns
        for (int a = 0; a < 2; ++a) {
          if (2 * i + a >= g.ho) continue;
          const float* row = plane + (2 * i + a) * g.wo + 2 * j0;
          const __m512 lo = _mm512_maskz_loadu_ps(m0, row), hi = _mm512_maskz_loadu_ps(m1, row + 16);
          e0[a] = _mm512_permutex2var_ps(lo, kEven, hi);
          e1[a] = _mm512_permutex2var_ps(lo, kOdd, hi);
        }
        store_dm(dm + k * ldm + col0 + j0, xs, keep, e0, e1);
      }
    }
  }
}

void winograd_input_adjoint_avx512(const float* dv, int64_t ldv, int64_t channels, const WinogradGeometry& g,
                                   int64_t u0, int64_t u1, float* dx, int64_t image_stride, const float* relu_y) {
  // The adjoint of V = B^T d B: each tile adds B dV B^T to its 4x4 input
  // patch. Patches overlap by two columns: the pair of input columns
  // (2m - pw, 2m + 1 - pw) takes columns 0 and 1 of tile m and columns 2 and
  // 3 of tile m - 1 (a lane shift), so each row of a strip is one masked
  // read-add-write of 32 columns.
  const int64_t xs = winograd_plane(channels, ldv);
  const __m512i kZipLo = avx512::zip_lo(), kZipHi = avx512::zip_hi();
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t c = 0; c < channels; ++c) {  // plane by plane
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / g.th, i = u % g.th, col0 = (u - u0) * g.tw;
      float* plane = dx + n * image_stride + c * g.h * g.w;
      __m512 carry[4][2];  // [patch row]: columns 2 and 3 of the previous strip's tiles
      for (int a = 0; a < 4; ++a) carry[a][0] = carry[a][1] = zero;
      for (int64_t m0 = 0; m0 <= g.tw; m0 += 16) {  // pair tw only takes the last tile's columns 2, 3
        const __mmask16 keep = lanes(0, g.tw - m0);
        const float* src = dv + c * ldv + col0 + m0;
        __m512 s[4][4];  // [p][patch column]: dV B^T along columns
        for (int p = 0; p < 4; ++p) {
          const __m512 g0 = _mm512_maskz_loadu_ps(keep, src + (4 * p) * xs);
          const __m512 g1 = _mm512_maskz_loadu_ps(keep, src + (4 * p + 1) * xs);
          const __m512 g2 = _mm512_maskz_loadu_ps(keep, src + (4 * p + 2) * xs);
          const __m512 g3 = _mm512_maskz_loadu_ps(keep, src + (4 * p + 3) * xs);
          s[p][0] = g0;
          s[p][1] = _mm512_add_ps(_mm512_sub_ps(g1, g2), g3);
          s[p][2] = _mm512_sub_ps(_mm512_add_ps(g1, g2), g0);
          s[p][3] = _mm512_sub_ps(zero, g3);
        }
        const int64_t base = 2 * m0 - g.pw;  // input column of pair m0's even column
        const __mmask16 mlo = lanes(-base, g.w - base), mhi = lanes(-base - 16, g.w - base - 16);
        for (int a = 0; a < 4; ++a) {
          __m512 row[4];  // B applied along rows: patch row a
          for (int q = 0; q < 4; ++q) {
            if (a == 0)
              row[q] = s[0][q];
            else if (a == 1)
              row[q] = _mm512_add_ps(_mm512_sub_ps(s[1][q], s[2][q]), s[3][q]);
            else if (a == 2)
              row[q] = _mm512_sub_ps(_mm512_add_ps(s[1][q], s[2][q]), s[0][q]);
            else
              row[q] = _mm512_sub_ps(zero, s[3][q]);
          }
          const __m512 even = _mm512_add_ps(row[0], shift_in(row[2], carry[a][0]));
          const __m512 odd = _mm512_add_ps(row[1], shift_in(row[3], carry[a][1]));
          carry[a][0] = row[2];
          carry[a][1] = row[3];
          const int64_t r = 2 * i + a - g.ph;
          if (r < 0 || r >= g.h) continue;
          float* dst = plane + r * g.w + base;
          const __m512 lo = _mm512_permutex2var_ps(even, kZipLo, odd), hi = _mm512_permutex2var_ps(even, kZipHi, odd);
          _mm512_mask_storeu_ps(dst, mlo, _mm512_add_ps(_mm512_maskz_loadu_ps(mlo, dst), lo));
          _mm512_mask_storeu_ps(dst + 16, mhi, _mm512_add_ps(_mm512_maskz_loadu_ps(mhi, dst + 16), hi));
        }
      }
      if (relu_y) {
        // Rows 2i - ph and 2i + 1 - ph are complete (tile rows i - 1 and i
        // added to them); at an image's last tile row, so are the two below.
        const float* yplane = relu_y + n * image_stride + c * g.h * g.w;
        const int64_t last = i + 1 == g.th ? 4 : 2;
        for (int64_t r = 2 * i - g.ph; r < 2 * i - g.ph + last; ++r) {
          if (r < 0 || r >= g.h) continue;
          for (int64_t q = 0; q < g.w; q += 16) {
            const __mmask16 m = lanes(0, g.w - q);
            float* d = plane + r * g.w + q;
            const __mmask16 pos = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, yplane + r * g.w + q), zero,
                                                          _CMP_GT_OQ);
            _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(pos, d));
          }
        }
      }
    }
  }
}

void winograd_weights_avx512(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                             float* u) {
  winograd_weights_impl(src, rows, cols, rs, cs, flip, u);
}

}  // namespace cpucnn
