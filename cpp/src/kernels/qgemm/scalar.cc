// The int8 GEMM reference and the packing routines every ISA shares.
#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels/int8.hpp"
#include "kernels/qgemm/requant.hpp"

namespace cpucnn {

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
      qrequant_store(acc, r, r * o.row_stride + j * o.col_stride, o);
    }
  }
}

void qgemv_scalar(const int8_t* a, int64_t m, int64_t k4, const uint8_t* x, const QGemmOut& o) {
  for (int64_t r = 0; r < m; ++r) {
    const int8_t* ap = a + (r / kQPanelRows) * k4 * 16 + (r % kQPanelRows) * 4;
    int32_t acc = 0;
    for (int64_t g = 0; g < k4; ++g)
      for (int64_t t = 0; t < 4; ++t) acc += int32_t(x[4 * g + t]) * ap[g * 16 + t];
    qrequant_store(acc, r, r * o.row_stride, o);
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

namespace {

// dst[0, n) = src[0, n) for the short runs of an image row: 8 bytes at a time (fixed-size copies
// the compiler inlines), never past either end.
inline void copy_run(uint8_t* dst, const uint8_t* src, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) std::memcpy(dst + j, src + j, 8);
  for (; j < n; ++j) dst[j] = src[j];
}

inline void fill_run(uint8_t* dst, uint8_t v, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = v;
}

}  // namespace

void qim2col_block(const uint8_t* x, const QConvGeo& g, uint8_t zp, int64_t c0, int64_t nc, uint8_t* col,
                   int64_t ldcol) {
  const int64_t oh_first = c0 / g.wo, ow_first = c0 % g.wo;
  int64_t kk = 0;
  for (int64_t c = 0; c < g.cin; ++c) {
    const uint8_t* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t t = 0; t < g.kw; ++t, ++kk) {
        uint8_t* dst = col + kk * ldcol;
        int64_t p = 0, oh = oh_first, ow = ow_first;
        while (p < nc) {
          const int64_t run = std::min(g.wo - ow, nc - p);
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) {
            fill_run(dst, zp, run);
          } else {
            const uint8_t* src = xc + ih * g.w;
            const int64_t iw0 = ow * g.sw - g.pw + t * g.dw;
            if (g.sw == 1) {
              // columns [0, left) and [right, run) fall outside the row
              const int64_t left = std::min(run, std::max<int64_t>(0, -iw0));
              const int64_t right = std::max(left, std::min(run, g.w - iw0));
              fill_run(dst, zp, left);
              copy_run(dst + left, src + iw0 + left, right - left);
              fill_run(dst + right, zp, run - right);
            } else {
              for (int64_t j = 0; j < run; ++j) {
                const int64_t iw = iw0 + j * g.sw;
                dst[j] = iw >= 0 && iw < g.w ? src[iw] : zp;
              }
            }
          }
          dst += run;
          p += run;
          ow = 0;
          ++oh;
        }
      }
  }
}

namespace {

// dst[4j + t] = r_t[j], j < nr (r_t null: 0).
inline void interleave4(const uint8_t* r0, const uint8_t* r1, const uint8_t* r2, const uint8_t* r3, int64_t nr,
                        uint8_t* dst) {
  int64_t j = 0;
#if defined(__SSE2__)
  if (r0 && r1 && r2 && r3)
    for (; j + 16 <= nr; j += 16) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + j));
      const __m128i bb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + j));
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r2 + j));
      const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r3 + j));
      const __m128i ab_lo = _mm_unpacklo_epi8(a, bb), ab_hi = _mm_unpackhi_epi8(a, bb);
      const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
      __m128i* out = reinterpret_cast<__m128i*>(dst + 4 * j);
      _mm_storeu_si128(out, _mm_unpacklo_epi16(ab_lo, cd_lo));
      _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
      _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
      _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
#endif
  for (; j < nr; ++j) {
    dst[4 * j] = r0 ? r0[j] : 0;
    dst[4 * j + 1] = r1 ? r1[j] : 0;
    dst[4 * j + 2] = r2 ? r2[j] : 0;
    dst[4 * j + 3] = r3 ? r3[j] : 0;
  }
}

}  // namespace

void qpack_shifted(const uint8_t* xpad, const int64_t* koff, int64_t k, int64_t q0, int64_t nr, int64_t k4,
                   uint8_t* b) {
  // Rows past k read zeros: from kZeroRow where a panel fits it, so the last (ragged) group
  // takes the vector path too (LeNet's K = 25 and 150 spent half their packing in the byte loop).
  alignas(64) static const uint8_t kZeroRow[64] = {};
  const uint8_t* zero = nr <= 64 ? kZeroRow : nullptr;
  for (int64_t g = 0; g < k4; ++g) {
    const uint8_t* r[4];
    for (int64_t t = 0; t < 4; ++t) r[t] = 4 * g + t < k ? xpad + koff[4 * g + t] + q0 : zero;
    interleave4(r[0], r[1], r[2], r[3], nr, b + g * nr * 4);
  }
}

namespace {

#if defined(__SSE2__)
// One 16-column chunk of a segmented panel: its first segment's offset, then up to
// kQMaxSegs - 1 more (offset, byte mask of the columns they own), laid out once per call.
struct Chunk16 {
  int n = 0;
  int64_t delta[kQMaxSegs];
  __m128i mask[kQMaxSegs];
};

inline __m128i gather16(const uint8_t* row, const Chunk16& c) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c.delta[0]));
  for (int i = 1; i < c.n; ++i) {  // SSE2 has no pblendvb: and / andnot / or
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c.delta[i]));
    v = _mm_or_si128(_mm_and_si128(c.mask[i], w), _mm_andnot_si128(c.mask[i], v));
  }
  return v;
}

inline void store_interleaved(__m128i a, __m128i bb, __m128i c, __m128i d, uint8_t* dst) {
  const __m128i ab_lo = _mm_unpacklo_epi8(a, bb), ab_hi = _mm_unpackhi_epi8(a, bb);
  const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
  __m128i* out = reinterpret_cast<__m128i*>(dst);
  _mm_storeu_si128(out, _mm_unpacklo_epi16(ab_lo, cd_lo));
  _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
  _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
  _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
}
#endif

}  // namespace

void qpack_shifted_segs(const uint8_t* xpad, const int64_t* koff, int64_t k, const QShiftSegs& segs, int64_t nr,
                        int64_t k4, uint8_t* b) {
  if (segs.n == 1) return qpack_shifted(xpad, koff, k, segs.delta[0], nr, k4, b);  // one output row
#if defined(__SSE2__)
  if (nr % 16 == 0 && nr <= 64) {
    Chunk16 chunks[4];
    const __m128i idx = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t q = 0; q < nr / 16; ++q) {
      Chunk16& c = chunks[q];
      const int64_t j0 = 16 * q;
      for (int s = 0; s < segs.n; ++s) {
        const int64_t from = segs.start[s] - j0, to = s + 1 < segs.n ? segs.start[s + 1] - j0 : 16;
        if (to <= 0 || from >= 16) continue;  // not in this chunk
        if (from <= 0) c.n = 0;               // covers the chunk's first column: starts it
        c.delta[c.n] = segs.delta[s] + j0;
        c.mask[c.n] = _mm_cmpgt_epi8(idx, _mm_set1_epi8(static_cast<char>(from - 1)));
        ++c.n;
      }
    }
    const __m128i zero = _mm_setzero_si128();
    for (int64_t g = 0; g < k4; ++g) {
      const int64_t kk = 4 * g;
      const uint8_t* r0 = xpad + koff[kk];
      const uint8_t* r1 = kk + 1 < k ? xpad + koff[kk + 1] : nullptr;
      const uint8_t* r2 = kk + 2 < k ? xpad + koff[kk + 2] : nullptr;
      const uint8_t* r3 = kk + 3 < k ? xpad + koff[kk + 3] : nullptr;
      for (int64_t q = 0; q < nr / 16; ++q) {
        const Chunk16& c = chunks[q];
        store_interleaved(gather16(r0, c), r1 ? gather16(r1, c) : zero, r2 ? gather16(r2, c) : zero,
                          r3 ? gather16(r3, c) : zero, b + g * nr * 4 + 64 * q);
      }
    }
    return;
  }
#endif
  for (int64_t g = 0; g < k4; ++g) {
    uint8_t* dst = b + g * nr * 4;
    for (int s = 0; s < segs.n; ++s) {
      const int64_t end = s + 1 < segs.n ? segs.start[s + 1] : nr;
      for (int64_t j = segs.start[s]; j < end; ++j)
        for (int64_t t = 0; t < 4; ++t) dst[4 * j + t] = 4 * g + t < k ? xpad[koff[4 * g + t] + segs.delta[s] + j] : 0;
    }
  }
}

void qpad_c4_row(const uint8_t* x, int64_t chan_stride, int64_t w, int64_t pw, int64_t wp, uint8_t zp, uint8_t* dst) {
  std::memset(dst, zp, static_cast<size_t>(4 * pw));
  interleave4(x, x + chan_stride, x + 2 * chan_stride, x + 3 * chan_stride, w, dst + 4 * pw);
  std::memset(dst + 4 * (pw + w), zp, static_cast<size_t>(4 * (wp - pw - w)));
}

void qpack_c4(const uint8_t* xpad4, const int64_t* goff, int64_t k4, const QShiftSegs& segs, int64_t nr,
              uint8_t* b) {
#if defined(__SSE2__)
  if (nr % 4 == 0 && nr <= 64) {
    // 16-byte chunks (4 columns) of a group, each from the segments it meets (byte offsets and
    // byte masks laid out once); one segment: plain 16-byte copies
    Chunk16 chunks[16];
    const __m128i idx = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    bool one = true;
    for (int64_t q = 0; q < nr / 4; ++q) {
      Chunk16& c = chunks[q];
      const int64_t j0 = 4 * q;
      for (int s = 0; s < segs.n; ++s) {
        const int64_t from = segs.start[s] - j0, to = s + 1 < segs.n ? segs.start[s + 1] - j0 : 4;
        if (to <= 0 || from >= 4) continue;
        if (from <= 0) c.n = 0;
        c.delta[c.n] = 4 * (segs.delta[s] + j0);
        c.mask[c.n] = _mm_cmpgt_epi8(idx, _mm_set1_epi8(static_cast<char>(4 * from - 1)));
        ++c.n;
      }
      one = one && c.n == 1;
    }
    for (int64_t g = 0; g < k4; ++g) {
      const uint8_t* src = xpad4 + goff[g];
      uint8_t* dst = b + g * nr * 4;
      if (one)
        for (int64_t q = 0; q < nr / 4; ++q)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16 * q),
                           _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + chunks[q].delta[0])));
      else
        for (int64_t q = 0; q < nr / 4; ++q)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16 * q), gather16(src, chunks[q]));
    }
    return;
  }
#endif
  for (int64_t g = 0; g < k4; ++g)
    for (int s = 0; s < segs.n; ++s) {
      const int64_t end = s + 1 < segs.n ? segs.start[s + 1] : nr;
      for (int64_t j = segs.start[s]; j < end; ++j)
        std::memcpy(b + g * nr * 4 + 4 * j, xpad4 + goff[g] + 4 * (segs.delta[s] + j), 4);
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
        int64_t j = 0;
#if defined(__SSE2__)
        // SSE2 is x86-64's baseline: a 4-way byte interleave, 16 columns at a time.
        for (; j + 16 <= nr; j += 16) {
          const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + j0 + j));
          const __m128i bb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + j0 + j));
          const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r2 + j0 + j));
          const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r3 + j0 + j));
          const __m128i ab_lo = _mm_unpacklo_epi8(a, bb), ab_hi = _mm_unpackhi_epi8(a, bb);
          const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
          __m128i* out = reinterpret_cast<__m128i*>(dst + 4 * j);
          _mm_storeu_si128(out, _mm_unpacklo_epi16(ab_lo, cd_lo));
          _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
          _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
          _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
        }
#endif
        for (; j < nr; ++j) {
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
