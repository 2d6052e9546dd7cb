// Winograd F(4x4, 3x3) transforms for AVX-512 (layout: kernels/winograd.hpp,
// with 6x6 patches, 36 xi planes and tiles of 4x4 outputs). Each 4x4 output
// block costs 36 products instead of F(2x2)'s 4 x 16 = 64.
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
//
// The transforms run on 16 consecutive columns (tiles) of a block at a time,
// one tile a lane, whatever the tiles per row: 8-tile rows (32-pixel maps)
// fill a register with two tile rows, 2-tile rows (8-pixel maps) with eight.
// A patch row is read tile-major, four columns of four tiles a register, by
// masked loads straight from the plane (a run of tiles of one tile row is
// one load; lanes outside the plane read zero, so padding costs nothing),
// then split into one register per column with two-source permutes. Outputs
// go back the same way.
#include <immintrin.h>

#include "kernels/avx512_lanes.hpp"
#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"
#include "kernels/winograd.hpp"

namespace cpucnn {

#include "kernels/winograd4/weights.inc"

namespace {

using avx512::first_lanes;
using avx512::lanes;

constexpr int kTile = 4;   // outputs per tile side
constexpr int kAlpha = 6;  // transform points per side

// Tiles of one tile row that share a tile-major register (lanes 4s..4s+3
// hold tile 4 reg + s): one masked load or store of a patch row.
struct Run {
  int reg;
  __mmask16 lanes;
  int64_t off;  // floats from the channel's first image plane to lane 0 of the first row (may be outside)
};

// 16 consecutive columns (tiles) of a block, from c0: their runs (those of
// register m are [first[m], first[m + 1])) and, per run, patch row and
// shift of 0 or 4 columns, the lanes inside the plane.
struct Group {
  int64_t c0;
  __mmask16 keep;
  int first[5];
  Run runs[16];
  __mmask16 mask[16][kAlpha][2];
};

// Groups a kernel holds at once, on its stack (under 700 bytes each): 512
// columns, as many as a block of the ops layer has unless a tile row is
// wider (ops/winograd.cc, units_per_block). The kernels run over a block's
// groups in passes of at most this many, each pass with the channel loop
// outside the group loop, so each plane is read (or written) in order.
constexpr int64_t kMaxGroups = 32;

// The groups of columns [c0, c0 + 16 kMaxGroups) of a block of units from
// u0 with `cols` columns (those past cols left out), for patches of `rows` x
// (4 or 8 with two shifts) whose origin is (4 i - oh, 4 j - ow) on planes of
// h x w, image_stride floats apart. Returns how many.
int make_groups(const WinogradGeometry& g, int64_t u0, int64_t cols, int64_t c0, int64_t oh, int64_t ow, int rows,
                int shifts, int64_t h, int64_t w, int64_t image_stride, Group groups[kMaxGroups]) {
  const int ng = static_cast<int>(imin(kMaxGroups, (cols - c0 + 15) / 16));
  for (int gi = 0; gi < ng; ++gi) {
    Group& gr = groups[gi];
    gr.c0 = c0 + static_cast<int64_t>(gi) * 16;
    const int64_t count = imin(16, cols - gr.c0);
    gr.keep = first_lanes(count);
    int nr = 0;
    for (int64_t s = 0; s < count; ++nr) {
      const int64_t t = gr.c0 + s, u = u0 + t / g.tw, j = t % g.tw;
      const int64_t len = imin(imin(count - s, g.tw - j), 4 - s % 4);
      Run& run = gr.runs[nr];
      run.reg = static_cast<int>(s / 4);
      run.lanes = lanes(4 * (s % 4), 4 * (s % 4 + len));
      const int64_t row = kTile * (u % g.th) - oh, col = kTile * j - ow - 4 * (s % 4);
      run.off = (u / g.th) * image_stride + row * w + col;
      for (int a = 0; a < rows; ++a)
        for (int sh = 0; sh < shifts; ++sh) {
          const int64_t c = col + 4 * sh;
          gr.mask[nr][a][sh] = row + a >= 0 && row + a < h ? static_cast<__mmask16>(run.lanes & lanes(-c, w - c)) : 0;
        }
      s += len;
    }
    int r = 0;
    for (int m = 0; m < 4; ++m) {
      gr.first[m] = r;
      while (r < nr && gr.runs[r].reg == m) ++r;
    }
    gr.first[4] = r;
  }
  return ng;
}

// Tile-major registers t[k] (lanes 4s + e: element e of tile 4k + s) to
// column registers: d[e] = element e of the 16 tiles, e < 4.
inline void split4(const __m512 t[4], __m512 d[4]) {
  const __m512i e01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i e23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const __m512 a01 = _mm512_permutex2var_ps(t[0], e01, t[1]);  // e0 of tiles 0-7 | e1 of tiles 0-7
  const __m512 b01 = _mm512_permutex2var_ps(t[2], e01, t[3]);  // the same for tiles 8-15
  const __m512 a23 = _mm512_permutex2var_ps(t[0], e23, t[1]);
  const __m512 b23 = _mm512_permutex2var_ps(t[2], e23, t[3]);
  d[0] = _mm512_shuffle_f32x4(a01, b01, 0x44);
  d[1] = _mm512_shuffle_f32x4(a01, b01, 0xee);
  d[2] = _mm512_shuffle_f32x4(a23, b23, 0x44);
  d[3] = _mm512_shuffle_f32x4(a23, b23, 0xee);
}

// Elements 0 and 1 only.
inline void split2(const __m512 t[4], __m512 d[2]) {
  const __m512i e01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512 a01 = _mm512_permutex2var_ps(t[0], e01, t[1]);
  const __m512 b01 = _mm512_permutex2var_ps(t[2], e01, t[3]);
  d[0] = _mm512_shuffle_f32x4(a01, b01, 0x44);
  d[1] = _mm512_shuffle_f32x4(a01, b01, 0xee);
}

// The inverse of split4.
inline void join4(const __m512 d[4], __m512 t[4]) {
  const __m512i lo = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
  const __m512i hi = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
  const __m512 a01 = _mm512_shuffle_f32x4(d[0], d[1], 0x44);  // e0 | e1 of tiles 0-7
  const __m512 b01 = _mm512_shuffle_f32x4(d[0], d[1], 0xee);  // tiles 8-15
  const __m512 a23 = _mm512_shuffle_f32x4(d[2], d[3], 0x44);
  const __m512 b23 = _mm512_shuffle_f32x4(d[2], d[3], 0xee);
  t[0] = _mm512_permutex2var_ps(a01, lo, a23);
  t[1] = _mm512_permutex2var_ps(a01, hi, a23);
  t[2] = _mm512_permutex2var_ps(b01, lo, b23);
  t[3] = _mm512_permutex2var_ps(b01, hi, b23);
}

inline __m512 k(float v) { return _mm512_set1_ps(v); }

// o = B^T d (6 points).
inline void bt6(const __m512 d[6], __m512 o[6]) {
  const __m512 s1 = _mm512_fnmadd_ps(k(4.0f), d[2], d[4]);  // d4 - 4 d2
  const __m512 s2 = _mm512_fnmadd_ps(k(4.0f), d[1], d[3]);  // d3 - 4 d1
  const __m512 s3 = _mm512_sub_ps(d[4], d[2]);
  const __m512 s4 = _mm512_sub_ps(d[3], d[1]);
  o[0] = _mm512_fmadd_ps(k(4.0f), d[0], _mm512_fnmadd_ps(k(5.0f), d[2], d[4]));
  o[1] = _mm512_add_ps(s1, s2);
  o[2] = _mm512_sub_ps(s1, s2);
  o[3] = _mm512_fmadd_ps(k(2.0f), s4, s3);
  o[4] = _mm512_fnmadd_ps(k(2.0f), s4, s3);
  o[5] = _mm512_fmadd_ps(k(4.0f), d[1], _mm512_fnmadd_ps(k(5.0f), d[3], d[5]));
}

// o = A^T m (6 points to 4).
inline void at6(const __m512 m[6], __m512 o[4]) {
  const __m512 a1 = _mm512_add_ps(m[1], m[2]), a2 = _mm512_sub_ps(m[1], m[2]);
  const __m512 a3 = _mm512_add_ps(m[3], m[4]), a4 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], a1), a3);
  o[1] = _mm512_fmadd_ps(k(2.0f), a4, a2);
  o[2] = _mm512_fmadd_ps(k(4.0f), a3, a1);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(k(8.0f), a4, a2), m[5]);
}

// o = A e (4 points to 6): the adjoint of at6.
inline void a4(const __m512 e[4], __m512 o[6]) {
  const __m512 se = _mm512_add_ps(e[0], e[2]), so = _mm512_add_ps(e[1], e[3]);
  const __m512 ue = _mm512_fmadd_ps(k(4.0f), e[2], e[0]);
  const __m512 uo = _mm512_mul_ps(k(2.0f), _mm512_fmadd_ps(k(4.0f), e[3], e[1]));
  o[0] = e[0];
  o[1] = _mm512_add_ps(se, so);
  o[2] = _mm512_sub_ps(se, so);
  o[3] = _mm512_add_ps(ue, uo);
  o[4] = _mm512_sub_ps(ue, uo);
  o[5] = e[3];
}

}  // namespace

// V = B^T d B for every tile of units [u0, u1) and every channel (reads the
// planes directly: no scratch).
void winograd4_input_avx512(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                            int64_t u0, int64_t u1, float* v, int64_t ldv, float* /*scratch*/) {
  const int64_t xs = winograd_plane(channels, ldv), plane = g.h * g.w;
  const int64_t cols = (u1 - u0) * g.tw;
  Group groups[kMaxGroups];
  for (int64_t c0 = 0; c0 < cols; c0 += 16 * kMaxGroups) {
    const int ng = make_groups(g, u0, cols, c0, g.ph, g.pw, kAlpha, 2, g.h, g.w, image_stride, groups);
    for (int64_t c = 0; c < channels; ++c) {
      const float* xc = x + c * plane;
      for (int gi = 0; gi < ng; ++gi) {
        const Group& gr = groups[gi];
        __m512 h[kAlpha][kAlpha];  // [patch row][q]: d B
        for (int a = 0; a < kAlpha; ++a) {
          __m512 lo[4], hi[4];
#pragma GCC unroll 4
          for (int m = 0; m < 4; ++m) {  // a static register index, so lo and hi stay in registers
            __m512 l = _mm512_setzero_ps(), h4 = _mm512_setzero_ps();
            for (int r = gr.first[m]; r < gr.first[m + 1]; ++r) {
              const float* p = xc + gr.runs[r].off + a * g.w;
              l = _mm512_mask_loadu_ps(l, gr.mask[r][a][0], p);
              h4 = _mm512_mask_loadu_ps(h4, gr.mask[r][a][1], p + 4);
            }
            lo[m] = l;
            hi[m] = h4;
          }
          __m512 d[kAlpha];
          split4(lo, d);
          split2(hi, d + 4);
          bt6(d, h[a]);
        }
        float* out = v + c * ldv + gr.c0;
        for (int q = 0; q < kAlpha; ++q) {
          const __m512 col[kAlpha] = {h[0][q], h[1][q], h[2][q], h[3][q], h[4][q], h[5][q]};
          __m512 o[kAlpha];
          bt6(col, o);
          for (int p = 0; p < kAlpha; ++p) _mm512_mask_storeu_ps(out + (kAlpha * p + q) * xs, gr.keep, o[p]);
        }
      }
    }
  }
}

// Output blocks of units [u0, u1) from M: Y = A^T m A (+ bias, ReLU; times
// [relu_y > 0] when relu_y is given), for every channel; rows and columns
// past the plane are dropped.
void winograd4_output_avx512(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                             const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride,
                             const float* relu_y) {
  const int64_t xs = winograd_plane(channels, ldm), plane = g.ho * g.wo;
  const int64_t cols = (u1 - u0) * g.tw;
  Group groups[kMaxGroups];
  for (int64_t c0 = 0; c0 < cols; c0 += 16 * kMaxGroups) {
    const int ng = make_groups(g, u0, cols, c0, 0, 0, kTile, 1, g.ho, g.wo, image_stride, groups);
    for (int64_t kc = 0; kc < channels; ++kc) {
      const __m512 b = _mm512_set1_ps(bias ? bias[kc] : 0.0f);
      for (int gi = 0; gi < ng; ++gi) {
        const Group& gr = groups[gi];
        const float* mk = m + kc * ldm + gr.c0;
        __m512 t[kAlpha][kTile];  // [p][output column]: m A
        for (int p = 0; p < kAlpha; ++p) {
          __m512 row[kAlpha];
          for (int q = 0; q < kAlpha; ++q) row[q] = _mm512_maskz_loadu_ps(gr.keep, mk + (kAlpha * p + q) * xs);
          at6(row, t[p]);
        }
        __m512 yc[kTile][kTile];  // [output column][output row]
        for (int c = 0; c < kTile; ++c) {
          const __m512 col[kAlpha] = {t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c]};
          at6(col, yc[c]);
        }
        for (int a = 0; a < kTile; ++a) {
          __m512 d[kTile], tm[4];
          for (int c = 0; c < kTile; ++c) {
            d[c] = _mm512_add_ps(yc[c][a], b);
            if (relu) d[c] = _mm512_max_ps(_mm512_setzero_ps(), d[c]);
          }
          join4(d, tm);
#pragma GCC unroll 4
          for (int mr = 0; mr < 4; ++mr)
            for (int r = gr.first[mr]; r < gr.first[mr + 1]; ++r) {
              const int64_t at = kc * plane + gr.runs[r].off + a * g.wo;
              const __mmask16 keep = gr.mask[r][a][0];
              __m512 out = tm[mr];
              if (relu_y) {
                const __m512 ry = _mm512_maskz_loadu_ps(keep, relu_y + at);
                out = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(ry, _mm512_setzero_ps(), _CMP_GT_OQ), out);
              }
              _mm512_mask_storeu_ps(y + at, keep, out);
            }
        }
      }
    }
  }
}

// dM = A e A^T for the 4x4 output-gradient block e of every tile of units
// [u0, u1) and every channel (zero past the plane): the adjoint of the
// output transform, for the weight gradient.
void winograd4_grad_output_avx512(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                  int64_t u0, int64_t u1, float* dm, int64_t ldm) {
  const int64_t xs = winograd_plane(channels, ldm), plane = g.ho * g.wo;
  const int64_t cols = (u1 - u0) * g.tw;
  Group groups[kMaxGroups];
  for (int64_t c0 = 0; c0 < cols; c0 += 16 * kMaxGroups) {
    const int ng = make_groups(g, u0, cols, c0, 0, 0, kTile, 1, g.ho, g.wo, image_stride, groups);
    for (int64_t kc = 0; kc < channels; ++kc) {
      const float* dyk = dy + kc * plane;
      for (int gi = 0; gi < ng; ++gi) {
        const Group& gr = groups[gi];
        __m512 z[kTile][kAlpha];  // [output row][q]: e A^T
        for (int a = 0; a < kTile; ++a) {
          __m512 tm[4];
#pragma GCC unroll 4
          for (int mr = 0; mr < 4; ++mr) {
            __m512 t = _mm512_setzero_ps();
            for (int r = gr.first[mr]; r < gr.first[mr + 1]; ++r)
              t = _mm512_mask_loadu_ps(t, gr.mask[r][a][0], dyk + gr.runs[r].off + a * g.wo);
            tm[mr] = t;
          }
          __m512 e[kTile];
          split4(tm, e);
          a4(e, z[a]);
        }
        float* out = dm + kc * ldm + gr.c0;
        for (int q = 0; q < kAlpha; ++q) {
          const __m512 col[kTile] = {z[0][q], z[1][q], z[2][q], z[3][q]};
          __m512 o[kAlpha];
          a4(col, o);
          for (int p = 0; p < kAlpha; ++p) _mm512_mask_storeu_ps(out + (kAlpha * p + q) * xs, gr.keep, o[p]);
        }
      }
    }
  }
}

void winograd4_weights_avx512(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                              float* u) {
  winograd4_weights_impl(src, rows, cols, rs, cs, flip, u);
}

}  // namespace cpucnn
