// Winograd F(4x4, 3x3) transforms for AVX2 (layout: kernels/winograd.hpp,
// with 6x6 patches, 36 xi planes and tiles of 4x4 outputs; the maths as in
// winograd4/avx512.cc, whose design this follows at 8 lanes).
//
// The transforms run on 8 consecutive columns (tiles) of a block at a time,
// one tile a lane, whatever the tiles per row: 8-tile rows (32-pixel maps)
// fill a register with one tile row, 2-tile rows (8-pixel maps) with four.
// A patch row is read tile-major, four columns of two tiles a register (a
// run of two tiles of one tile row is one 8-float load), then split into one
// register per column with a 128-bit lane swap and an in-lane 4x4
// transpose. Loads at the plane's edges are masked (vmaskmovps: lanes
// outside the plane read zero); stores there go lane by lane, since masked
// stores are slow on AMD. Outputs go back the same way.
#include <immintrin.h>

#include "kernels/kernels.hpp"
#include "kernels/minmax.hpp"
#include "kernels/winograd.hpp"

namespace cpucnn {

#include "kernels/winograd4/weights.inc"

namespace {

constexpr int kTile = 4;   // outputs per tile side
constexpr int kAlpha = 6;  // transform points per side

// How a run's lanes of one shift meet the plane's columns.
// kShifted: some, read as one full load of 8 columns inside the row that
// holds them all, moved into their lanes with a permute and masked; the
// maskload of kPartial is slow on AMD when a masked-off lane falls outside
// the row (vgg_s training: about a fifth of the input transform's samples fell just after it).
enum Cover : uint8_t { kPartial = 0, kFull = 1, kLow = 2, kHigh = 3, kShifted = 4 };

// Tiles of one tile row that share a tile-major register (lanes 4s..4s+3
// hold tile 2 reg + s): one load or store of a patch row.
struct Run {
  int64_t off;  // floats from the channel's first image plane to lane 0 of the first row (may be outside)
  int reg;
  int rows;                      // bit a: patch row a inside the plane
  uint8_t cover[2];              // per shift of 0 or 4 columns
  alignas(8) int8_t mask[2][8];  // per shift: -1 on the run's lanes inside the plane's columns
  alignas(8) int8_t perm[2][8];  // kShifted: lane l takes element perm[l] of the load at `delta` floats
  int8_t delta[2];
};

// 8 consecutive columns (tiles) of a block, from c0: their runs (those of
// register m are [first[m], first[m + 1])).
struct Group {
  int64_t c0;
  int count;  // columns, <= 8
  int first[5];
  Run runs[8];
};

// Groups a kernel holds at once, on its stack (about 400 bytes each): 512
// columns, as for avx512 (ops/winograd.cc, units_per_block).
constexpr int64_t kMaxGroups = 64;

// The groups of columns [c0, c0 + 8 kMaxGroups) of a block of units from u0
// with `cols` columns, for patches of `rows` x (4 or 8 with two shifts) whose
// origin is (4 i - oh, 4 j - ow) on planes of h x w, image_stride floats
// apart. Returns how many.
int make_groups(const WinogradGeometry& g, int64_t u0, int64_t cols, int64_t c0, int64_t oh, int64_t ow, int rows,
                int shifts, int64_t h, int64_t w, int64_t image_stride, Group groups[kMaxGroups]) {
  const int ng = static_cast<int>(imin(kMaxGroups, (cols - c0 + 7) / 8));
  for (int gi = 0; gi < ng; ++gi) {
    Group& gr = groups[gi];
    gr.c0 = c0 + static_cast<int64_t>(gi) * 8;
    gr.count = static_cast<int>(imin(8, cols - gr.c0));
    int nr = 0;
    for (int64_t s = 0; s < gr.count; ++nr) {
      const int64_t t = gr.c0 + s, u = u0 + t / g.tw, j = t % g.tw;
      const int64_t len = imin(imin(gr.count - s, g.tw - j), 2 - s % 2);
      Run& run = gr.runs[nr];
      run.reg = static_cast<int>(s / 2);
      const int64_t lo = 4 * (s % 2), hi = 4 * (s % 2 + len);  // the run's lanes
      const int64_t row = kTile * (u % g.th) - oh, col = kTile * j - ow - lo;
      run.off = (u / g.th) * image_stride + row * w + col;
      run.rows = 0;
      for (int a = 0; a < rows; ++a)
        if (row + a >= 0 && row + a < h) run.rows |= 1 << a;
      for (int sh = 0; sh < 2; ++sh) {
        const int64_t c = col + 4 * sh;
        int in = 0;
        for (int l = 0; l < 8; ++l) {
          const bool on = sh < shifts && l >= lo && l < hi && c + l >= 0 && c + l < w;
          run.mask[sh][l] = on ? -1 : 0;
          in |= (on ? 1 : 0) << l;
        }
        run.cover[sh] = in == 0xff ? kFull : in == 0x0f ? kLow : in == 0xf0 ? kHigh : kPartial;
        if (run.cover[sh] == kPartial && in != 0 && w >= 8) {
          // the window of 8 columns inside [0, w) nearest to c holds every lane inside
          const int64_t s0 = imin(imax(c, 0), w - 8);
          run.cover[sh] = kShifted;
          run.delta[sh] = static_cast<int8_t>(s0 - c);
          for (int l = 0; l < 8; ++l)
            run.perm[sh][l] = static_cast<int8_t>(imin(7, imax(0, l + c - s0)));
        }
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

inline __m256i lane_mask(const int8_t m[8]) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
}

// Register m of patch row a (shift sh) of the group: the lanes of its runs
// from their rows at `base` (w floats apart), zero elsewhere.
inline __m256 load_reg(const float* base, int64_t w, const Group& gr, int m, int a, int sh) {
  __m256 l = _mm256_setzero_ps();
  for (int r = gr.first[m]; r < gr.first[m + 1]; ++r) {
    const Run& run = gr.runs[r];
    if (!(run.rows >> a & 1)) continue;
    const float* p = base + run.off + a * w + 4 * sh;
    switch (run.cover[sh]) {
      case kFull:
        return _mm256_loadu_ps(p);  // the register's only run
      case kLow:
        l = _mm256_insertf128_ps(l, _mm_loadu_ps(p), 0);
        break;
      case kHigh:
        l = _mm256_insertf128_ps(l, _mm_loadu_ps(p + 4), 1);
        break;
      case kShifted: {
        const __m256 v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(p + run.delta[sh]), lane_mask(run.perm[sh]));
        l = _mm256_or_ps(l, _mm256_and_ps(v, _mm256_castsi256_ps(lane_mask(run.mask[sh]))));
        break;
      }
      default:
        l = _mm256_or_ps(l, _mm256_maskload_ps(p, lane_mask(run.mask[sh])));
    }
  }
  return l;
}

// Stores the lanes of run `run` of v to its row a at base (shift 0).
inline void store_run(float* base, int64_t w, const Run& run, int a, __m256 v) {
  float* p = base + run.off + a * w;
  switch (run.cover[0]) {
    case kFull:
      _mm256_storeu_ps(p, v);
      break;
    case kLow:
      _mm_storeu_ps(p, _mm256_castps256_ps128(v));
      break;
    case kHigh:
      _mm_storeu_ps(p + 4, _mm256_extractf128_ps(v, 1));
      break;
    default: {
      alignas(32) float t[8];
      _mm256_store_ps(t, v);
      for (int l = 0; l < 8; ++l)
        if (run.mask[0][l]) p[l] = t[l];
    }
  }
}

// The first n of 8 columns of a transformed array's row.
inline void store_cols(float* p, int n, __m256 v) {
  if (n == 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int l = 0; l < n; ++l) p[l] = t[l];
}

// Tile-major registers t[k] (lanes 4s + e: element e of tile 2k + s) to
// column registers: d[e] = element e of the 8 tiles, e < 4.
inline void split4(const __m256 t[4], __m256 d[4]) {
  const __m256 a0 = _mm256_permute2f128_ps(t[0], t[2], 0x20);  // tiles 0 | 4
  const __m256 a1 = _mm256_permute2f128_ps(t[0], t[2], 0x31);  // 1 | 5
  const __m256 a2 = _mm256_permute2f128_ps(t[1], t[3], 0x20);  // 2 | 6
  const __m256 a3 = _mm256_permute2f128_ps(t[1], t[3], 0x31);  // 3 | 7
  const __m256 u0 = _mm256_unpacklo_ps(a0, a1), u1 = _mm256_unpackhi_ps(a0, a1);
  const __m256 u2 = _mm256_unpacklo_ps(a2, a3), u3 = _mm256_unpackhi_ps(a2, a3);
  d[0] = _mm256_shuffle_ps(u0, u2, 0x44);
  d[1] = _mm256_shuffle_ps(u0, u2, 0xee);
  d[2] = _mm256_shuffle_ps(u1, u3, 0x44);
  d[3] = _mm256_shuffle_ps(u1, u3, 0xee);
}

// Elements 0 and 1 only.
inline void split2(const __m256 t[4], __m256 d[2]) {
  const __m256 a0 = _mm256_permute2f128_ps(t[0], t[2], 0x20);
  const __m256 a1 = _mm256_permute2f128_ps(t[0], t[2], 0x31);
  const __m256 a2 = _mm256_permute2f128_ps(t[1], t[3], 0x20);
  const __m256 a3 = _mm256_permute2f128_ps(t[1], t[3], 0x31);
  const __m256 u0 = _mm256_unpacklo_ps(a0, a1), u2 = _mm256_unpacklo_ps(a2, a3);
  d[0] = _mm256_shuffle_ps(u0, u2, 0x44);
  d[1] = _mm256_shuffle_ps(u0, u2, 0xee);
}

// The inverse of split4.
inline void join4(const __m256 d[4], __m256 t[4]) {
  const __m256 u0 = _mm256_unpacklo_ps(d[0], d[1]), u1 = _mm256_unpackhi_ps(d[0], d[1]);
  const __m256 u2 = _mm256_unpacklo_ps(d[2], d[3]), u3 = _mm256_unpackhi_ps(d[2], d[3]);
  const __m256 a0 = _mm256_shuffle_ps(u0, u2, 0x44);  // tiles 0 | 4
  const __m256 a1 = _mm256_shuffle_ps(u0, u2, 0xee);  // 1 | 5
  const __m256 a2 = _mm256_shuffle_ps(u1, u3, 0x44);  // 2 | 6
  const __m256 a3 = _mm256_shuffle_ps(u1, u3, 0xee);  // 3 | 7
  t[0] = _mm256_permute2f128_ps(a0, a1, 0x20);
  t[1] = _mm256_permute2f128_ps(a2, a3, 0x20);
  t[2] = _mm256_permute2f128_ps(a0, a1, 0x31);
  t[3] = _mm256_permute2f128_ps(a2, a3, 0x31);
}

inline __m256 k(float v) { return _mm256_set1_ps(v); }

// o = B^T d (6 points).
inline void bt6(const __m256 d[6], __m256 o[6]) {
  const __m256 s1 = _mm256_fnmadd_ps(k(4.0f), d[2], d[4]);  // d4 - 4 d2
  const __m256 s2 = _mm256_fnmadd_ps(k(4.0f), d[1], d[3]);  // d3 - 4 d1
  const __m256 s3 = _mm256_sub_ps(d[4], d[2]);
  const __m256 s4 = _mm256_sub_ps(d[3], d[1]);
  o[0] = _mm256_fmadd_ps(k(4.0f), d[0], _mm256_fnmadd_ps(k(5.0f), d[2], d[4]));
  o[1] = _mm256_add_ps(s1, s2);
  o[2] = _mm256_sub_ps(s1, s2);
  o[3] = _mm256_fmadd_ps(k(2.0f), s4, s3);
  o[4] = _mm256_fnmadd_ps(k(2.0f), s4, s3);
  o[5] = _mm256_fmadd_ps(k(4.0f), d[1], _mm256_fnmadd_ps(k(5.0f), d[3], d[5]));
}

// o = A^T m (6 points to 4).
inline void at6(const __m256 m[6], __m256 o[4]) {
  const __m256 a1 = _mm256_add_ps(m[1], m[2]), a2 = _mm256_sub_ps(m[1], m[2]);
  const __m256 a3 = _mm256_add_ps(m[3], m[4]), a4 = _mm256_sub_ps(m[3], m[4]);
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], a1), a3);
  o[1] = _mm256_fmadd_ps(k(2.0f), a4, a2);
  o[2] = _mm256_fmadd_ps(k(4.0f), a3, a1);
  o[3] = _mm256_add_ps(_mm256_fmadd_ps(k(8.0f), a4, a2), m[5]);
}

// o = A e (4 points to 6): the adjoint of at6.
inline void a4(const __m256 e[4], __m256 o[6]) {
  const __m256 se = _mm256_add_ps(e[0], e[2]), so = _mm256_add_ps(e[1], e[3]);
  const __m256 ue = _mm256_fmadd_ps(k(4.0f), e[2], e[0]);
  const __m256 uo = _mm256_mul_ps(k(2.0f), _mm256_fmadd_ps(k(4.0f), e[3], e[1]));
  o[0] = e[0];
  o[1] = _mm256_add_ps(se, so);
  o[2] = _mm256_sub_ps(se, so);
  o[3] = _mm256_add_ps(ue, uo);
  o[4] = _mm256_sub_ps(ue, uo);
  o[5] = e[3];
}

// o = B i (6 points): the adjoint of bt6, o[a] = sum_p B^T[p][a] i[p].
inline void b6(const __m256 in[6], __m256 o[6]) {
  const __m256 d12 = _mm256_sub_ps(in[2], in[1]), s12 = _mm256_add_ps(in[1], in[2]);
  const __m256 d34 = _mm256_sub_ps(in[3], in[4]), s34 = _mm256_add_ps(in[3], in[4]);
  o[0] = _mm256_mul_ps(k(4.0f), in[0]);
  o[1] = _mm256_fnmadd_ps(k(2.0f), d34, _mm256_mul_ps(k(4.0f), _mm256_add_ps(d12, in[5])));  // 4 (d12 + i5) - 2 d34
  o[2] = _mm256_fnmsub_ps(k(5.0f), in[0], _mm256_fmadd_ps(k(4.0f), s12, s34));            // -5 i0 - 4 s12 - s34
  o[3] = _mm256_fnmadd_ps(k(5.0f), in[5], _mm256_fmsub_ps(k(2.0f), d34, d12));             // 2 d34 - d12 - 5 i5
  o[4] = _mm256_add_ps(_mm256_add_ps(in[0], s12), s34);
  o[5] = in[5];
}

// Lane l of the result: lane l - 1 of cur; lane 0: lane 7 of prev.
inline __m256 shift_in(__m256 cur, __m256 prev, __m256i rot) {
  return _mm256_blend_ps(_mm256_permutevar8x32_ps(cur, rot), _mm256_permutevar8x32_ps(prev, rot), 0x01);
}

// row[c0 + lo, c0 + hi) += lanes [lo, hi) of v, for a row of w floats. An
// edge window (lanes outside the row) is added as the full 8-float window
// inside the row nearest to it, v's lanes moved there with a permute and
// the others zero (through a stack buffer, the reload stalled on the
// store: 1/7 of this kernel's samples in vgg_s training).
inline void add_window(float* row, int64_t w, int64_t c0, __m256 v, int64_t lo, int64_t hi) {
  if (lo == 0 && hi == 8) {
    _mm256_storeu_ps(row + c0, _mm256_add_ps(_mm256_loadu_ps(row + c0), v));
    return;
  }
  if (w >= 8) {
    const int64_t s0 = imin(imax(c0, 0), w - 8);
    // destination lane l takes lane l + s0 - c0 of v (permutevar reads its low 3 bits)
    const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_epi32(static_cast<int>(s0 - c0)));
    const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(static_cast<int>(lo) - 1)),
                                        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(hi)), idx));
    const __m256 moved = _mm256_and_ps(_mm256_permutevar8x32_ps(v, idx), _mm256_castsi256_ps(in));
    _mm256_storeu_ps(row + s0, _mm256_add_ps(_mm256_loadu_ps(row + s0), moved));
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t l = lo; l < hi; ++l) row[c0 + l] += t[l];
}

}  // namespace

// V = B^T d B for every tile of units [u0, u1) and every channel (reads the
// planes directly: no scratch).
void winograd4_input_avx2(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                          int64_t u0, int64_t u1, float* v, int64_t ldv, float* /*scratch*/) {
  const int64_t xs = winograd_plane(channels, ldv), plane = g.h * g.w;
  const int64_t cols = (u1 - u0) * g.tw;
  Group groups[kMaxGroups];
  for (int64_t c0 = 0; c0 < cols; c0 += 8 * kMaxGroups) {
    const int ng = make_groups(g, u0, cols, c0, g.ph, g.pw, kAlpha, 2, g.h, g.w, image_stride, groups);
    for (int64_t c = 0; c < channels; ++c) {
      const float* xc = x + c * plane;
      for (int gi = 0; gi < ng; ++gi) {
        const Group& gr = groups[gi];
        __m256 h[kAlpha][kAlpha];  // [patch row][q]: d B
        for (int a = 0; a < kAlpha; ++a) {
          __m256 lo[4], hi[4];
#pragma GCC unroll 4
          for (int m = 0; m < 4; ++m) {
            lo[m] = load_reg(xc, g.w, gr, m, a, 0);
            hi[m] = load_reg(xc, g.w, gr, m, a, 1);
          }
          __m256 d[kAlpha];
          split4(lo, d);
          split2(hi, d + 4);
          bt6(d, h[a]);
        }
        float* out = v + c * ldv + gr.c0;
        for (int q = 0; q < kAlpha; ++q) {
          const __m256 col[kAlpha] = {h[0][q], h[1][q], h[2][q], h[3][q], h[4][q], h[5][q]};
          __m256 o[kAlpha];
          bt6(col, o);
          for (int p = 0; p < kAlpha; ++p) store_cols(out + (kAlpha * p + q) * xs, gr.count, o[p]);
        }
      }
    }
  }
}

// Output blocks of units [u0, u1) from M: Y = A^T m A (+ bias, ReLU; times
// [relu_y > 0] when relu_y is given), for every channel; rows and columns
// past the plane are dropped.
void winograd4_output_avx2(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                           const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride,
                           const float* relu_y) {
  const int64_t xs = winograd_plane(channels, ldm), plane = g.ho * g.wo;
  const int64_t cols = (u1 - u0) * g.tw;
  const __m256 zero = _mm256_setzero_ps();
  Group groups[kMaxGroups];
  for (int64_t c0 = 0; c0 < cols; c0 += 8 * kMaxGroups) {
    const int ng = make_groups(g, u0, cols, c0, 0, 0, kTile, 1, g.ho, g.wo, image_stride, groups);
    for (int64_t kc = 0; kc < channels; ++kc) {
      const __m256 b = _mm256_set1_ps(bias ? bias[kc] : 0.0f);
      float* yk = y + kc * plane;
      const float* rk = relu_y ? relu_y + kc * plane : nullptr;
      for (int gi = 0; gi < ng; ++gi) {
        const Group& gr = groups[gi];
        const float* mk = m + kc * ldm + gr.c0;
        __m256 t[kAlpha][kTile];  // [p][output column]: m A
        for (int p = 0; p < kAlpha; ++p) {
          __m256 row[kAlpha];  // lanes past count read the padding or the next row: never stored
          for (int q = 0; q < kAlpha; ++q) row[q] = _mm256_loadu_ps(mk + (kAlpha * p + q) * xs);
          at6(row, t[p]);
        }
        __m256 yc[kTile][kTile];  // [output column][output row]
        for (int c = 0; c < kTile; ++c) {
          const __m256 col[kAlpha] = {t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c]};
          at6(col, yc[c]);
        }
        for (int a = 0; a < kTile; ++a) {
          __m256 d[kTile], tm[4];
          for (int c = 0; c < kTile; ++c) {
            d[c] = _mm256_add_ps(yc[c][a], b);
            if (relu) d[c] = _mm256_max_ps(zero, d[c]);
          }
          join4(d, tm);
#pragma GCC unroll 4
          for (int mr = 0; mr < 4; ++mr)
            for (int r = gr.first[mr]; r < gr.first[mr + 1]; ++r) {
              const Run& run = gr.runs[r];
              if (!(run.rows >> a & 1)) continue;
              __m256 out = tm[mr];
              if (rk) {
                const __m256 ry =
                    run.cover[0] == kFull ? _mm256_loadu_ps(rk + run.off + a * g.wo)
                                          : _mm256_maskload_ps(rk + run.off + a * g.wo, lane_mask(run.mask[0]));
                out = _mm256_and_ps(out, _mm256_cmp_ps(ry, zero, _CMP_GT_OQ));
              }
              store_run(yk, g.wo, run, a, out);
            }
        }
      }
    }
  }
}

// dM = A e A^T for the 4x4 output-gradient block e of every tile of units
// [u0, u1) and every channel (zero past the plane): the adjoint of the
// output transform, for the weight gradient.
void winograd4_grad_output_avx2(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                int64_t u0, int64_t u1, float* dm, int64_t ldm) {
  const int64_t xs = winograd_plane(channels, ldm), plane = g.ho * g.wo;
  const int64_t cols = (u1 - u0) * g.tw;
  Group groups[kMaxGroups];
  for (int64_t c0 = 0; c0 < cols; c0 += 8 * kMaxGroups) {
    const int ng = make_groups(g, u0, cols, c0, 0, 0, kTile, 1, g.ho, g.wo, image_stride, groups);
    for (int64_t kc = 0; kc < channels; ++kc) {
      const float* dyk = dy + kc * plane;
      for (int gi = 0; gi < ng; ++gi) {
        const Group& gr = groups[gi];
        __m256 z[kTile][kAlpha];  // [output row][q]: e A^T
        for (int a = 0; a < kTile; ++a) {
          __m256 tm[4];
#pragma GCC unroll 4
          for (int mr = 0; mr < 4; ++mr) tm[mr] = load_reg(dyk, g.wo, gr, mr, a, 0);
          __m256 e[kTile];
          split4(tm, e);
          a4(e, z[a]);
        }
        float* out = dm + kc * ldm + gr.c0;
        for (int q = 0; q < kAlpha; ++q) {
          const __m256 col[kTile] = {z[0][q], z[1][q], z[2][q], z[3][q]};
          __m256 o[kAlpha];
          a4(col, o);
          for (int p = 0; p < kAlpha; ++p) store_cols(out + (kAlpha * p + q) * xs, gr.count, o[p]);
        }
      }
    }
  }
}

// dx planes += B dV B^T of every tile of units [u0, u1) (kernels.hpp,
// WinogradInputAdjointFn): the adjoint of winograd4_input_avx2, for dx
// straight from the weight-gradient pass (no transform of dy on a grid of
// its own). A unit's tiles go 8 to a register; their 6x6 patches overlap by
// two columns, so columns 4 and 5 of each tile are shifted one lane on and
// added to columns 0 and 1 of the next (the last lane's carried into the
// next 8 tiles), then each patch row is 32 consecutive columns, added to
// dx. Tile rows overlap by two rows: those are added to twice, in order
// (units of an image come in order, from one thread).
void winograd4_input_adjoint_avx2(const float* dv, int64_t ldv, int64_t channels, const WinogradGeometry& g,
                                  int64_t u0, int64_t u1, float* dx, int64_t image_stride, const float* relu_y) {
  const int64_t xs = winograd_plane(channels, ldv), plane = g.h * g.w;
  const __m256 zero = _mm256_setzero_ps();
  const __m256i rot = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / g.th, i = u % g.th, col0 = (u - u0) * g.tw;
      float* dxp = dx + n * image_stride + c * plane;
      __m256 carry[kAlpha][2];  // [patch row]: columns 4 and 5 of the previous 8 tiles
      for (int a = 0; a < kAlpha; ++a) carry[a][0] = carry[a][1] = zero;
      // m0 == tw (tw a multiple of 8): no tiles, only the last one's carry
      for (int64_t m0 = 0; m0 <= g.tw; m0 += 8) {
        const int64_t nt = imin(8, g.tw - m0);
        const int64_t base = 4 * m0 - g.pw;  // dx column of lane 0's patch column 0
        if (nt == 0) {  // only the last tile's columns 4 and 5, carried
          for (int a = 0; a < kAlpha; ++a) {
            const int64_t r = 4 * i + a - g.ph;
            if (r < 0 || r >= g.h) continue;
            alignas(32) float c4[8], c5[8];
            _mm256_store_ps(c4, carry[a][0]);
            _mm256_store_ps(c5, carry[a][1]);
            float* row = dxp + r * g.w;
            if (base >= 0 && base < g.w) row[base] += c4[7];
            if (base + 1 >= 0 && base + 1 < g.w) row[base + 1] += c5[7];
          }
          break;
        }
        const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(nt)), lane));
        const float* src = dv + c * ldv + col0 + m0;
        __m256 t[kAlpha][kAlpha];  // [p][b]: dV B^T along the columns
        for (int p = 0; p < kAlpha; ++p) {
          __m256 in[kAlpha];
          for (int q = 0; q < kAlpha; ++q)  // lanes past nt read the padding or the next row: zeroed
            in[q] = _mm256_and_ps(_mm256_loadu_ps(src + (kAlpha * p + q) * xs), keep);
          b6(in, t[p]);
        }
        __m256 d[kAlpha][kAlpha];  // [b][a]: B along the rows
        for (int b = 0; b < kAlpha; ++b) {
          const __m256 col[kAlpha] = {t[0][b], t[1][b], t[2][b], t[3][b], t[4][b], t[5][b]};
          b6(col, d[b]);
        }
        for (int a = 0; a < kAlpha; ++a) {
          __m256 e[4], tm[4];
          e[0] = _mm256_add_ps(d[0][a], shift_in(d[4][a], carry[a][0], rot));
          e[1] = _mm256_add_ps(d[1][a], shift_in(d[5][a], carry[a][1], rot));
          e[2] = d[2][a];
          e[3] = d[3][a];
          carry[a][0] = d[4][a];
          carry[a][1] = d[5][a];
          const int64_t r = 4 * i + a - g.ph;
          if (r < 0 || r >= g.h) continue;
          join4(e, tm);  // tm[k]: columns base + 8 k .. + 8
          float* row = dxp + r * g.w;
          for (int kk = 0; kk < 4; ++kk) {
            const int64_t c0 = base + 8 * kk, lo = imax(0, -c0), hi = imin(8, g.w - c0);
            if (lo < hi) add_window(row, g.w, c0, tm[kk], lo, hi);
          }
        }
      }
      if (relu_y) {
        // Rows 4i - ph .. 4i + 3 - ph are complete (tile rows i - 1 and i
        // added to them); at an image's last tile row, so are the two below.
        const float* yp = relu_y + n * image_stride + c * plane;
        const int64_t last = i + 1 == g.th ? 6 : 4;
        for (int64_t r = imax(0, 4 * i - g.ph); r < imin(g.h, 4 * i - g.ph + last); ++r)
          for (int64_t q = 0; q < g.w; ++q) dxp[r * g.w + q] = yp[r * g.w + q] > 0.0f ? dxp[r * g.w + q] : 0.0f;
      }
    }
  }
}

void winograd4_weights_avx2(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                            float* u) {
  winograd4_weights_impl(src, rows, cols, rs, cs, flip, u);
}

}  // namespace cpucnn
