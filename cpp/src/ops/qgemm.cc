#include "ops/qgemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/copy_short.hpp"
#include "ops/qwinograd.hpp"
#include "ops/scratch.hpp"

namespace cpucnn {

std::shared_ptr<const QPackedWeights> qpack_layer(const std::string& who, const float* w, const float* w_scale,
                                                  const float* bias, int64_t m, int64_t k, const QActParams& act) {
  if (k > kQMaxK)
    throw ValueError(who + ": int8 layers take at most " + std::to_string(kQMaxK) + " inputs per output (int32 sums), got " +
                     std::to_string(k));
  auto p = std::make_shared<QPackedWeights>();
  p->m = m;
  p->k = k;
  p->k4 = (k + 3) / 4;
  for (int64_t i = 0; i < m * k; ++i) {
    const float v = w[i];
    if (!(v >= -127.0f && v <= 127.0f) || v != std::nearbyint(v))
      throw ValueError(who + ": int8 weights must be integers in [-127, 127], got " + std::to_string(v) +
                       " at flat index " + std::to_string(i) + " of weight (" + std::to_string(m) + ", " +
                       std::to_string(k) + ")");
  }
  for (int64_t r = 0; r < m; ++r) {
    if (!(std::isfinite(w_scale[r]) && w_scale[r] > 0.0f))
      throw ValueError(who + ": weight_scale must be finite and positive, got " + std::to_string(w_scale[r]) +
                       " for output " + std::to_string(r));
    if (bias && !std::isfinite(bias[r]))
      throw ValueError(who + ": bias must be finite, got " + std::to_string(bias[r]) + " for output " + std::to_string(r));
  }
  const int64_t panels = (m + kQPanelRows - 1) / kQPanelRows;
  p->a.resize(static_cast<size_t>(panels * p->k4 * 16));
  qpack_weights(w, m, k, p->a.data());
  p->ibias.resize(static_cast<size_t>(m));
  p->mult.resize(static_cast<size_t>(m));
  p->add.resize(static_cast<size_t>(m));
  const int32_t zp = static_cast<int32_t>(act.in_zp);
  for (int64_t r = 0; r < m; ++r) {
    int32_t sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += static_cast<int32_t>(w[r * k + i]);
    p->ibias[r] = -zp * sum;
    const float b = bias ? bias[r] : 0.0f;
    if (act.out_u8) {
      p->mult[r] = act.in_scale * w_scale[r] / act.out_scale;
      p->add[r] = b / act.out_scale + act.out_zp;
    } else {
      p->mult[r] = act.in_scale * w_scale[r];
      p->add[r] = b;
    }
  }
  p->out_u8 = act.out_u8;
  p->relu = act.relu;
  p->lo = act.relu ? act.out_zp : 0.0f;
  p->hi = static_cast<float>(kQActMax);
  return p;
}

namespace {

// a panel of nr compact positions touches at most ceil((nr - 1) / wo) + 1 output rows
bool compact_ok(const QConvGeo& g, int64_t nr) {
  return g.sh == 1 && g.sw == 1 && (nr - 1 + g.wo - 1) / g.wo + 1 <= kQMaxSegs;
}

// The channel-interleaved path: channels in whole groups of 4 (else padding channels would cost
// multiplies: LeNet's and the first layers' 1 or 3 channels keep the plain path).
bool c4_ok(const QConvGeo& g, int64_t nr) { return compact_ok(g, nr) && g.cin % 4 == 0; }

}  // namespace

std::shared_ptr<const QPackedWeights> qpack_conv_layer(const std::string& who, const float* w, const float* w_scale,
                                                       const float* bias, int64_t m, const QConvGeo& g,
                                                       const QActParams& act) {
  const int64_t taps = g.kh * g.kw, k = g.cin * taps;
  auto packed = qpack_layer(who, w, w_scale, bias, m, k, act);  // checks, sums and scales
  const bool c4 = c4_ok(g, kernels().qgemm_nr), wino = qwinograd_applicable(g);
  if (!c4 && !wino) return packed;
  auto p = std::make_shared<QPackedWeights>(*packed);
  if (c4) {
    std::vector<float> wt(static_cast<size_t>(m * k));  // k = tap * cin + c
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < g.cin; ++c)
        for (int64_t t = 0; t < taps; ++t) wt[static_cast<size_t>(r * k + t * g.cin + c)] = w[r * k + c * taps + t];
    qpack_weights(wt.data(), m, k, p->a.data());
    p->tap_major = true;
  }
  if (wino) qwinograd_pack(w, m, g, *p);  // the direct weights stay too: the mode or the batch may pick them
  return p;
}

namespace {

// Units per thread at least, so that a region wakes another thread only for work worth it
// (~2^18 multiply-adds, some tens of microseconds): at batch 1 a small layer runs on one
// thread instead of paying a wake-up, which on a loaded machine can cost milliseconds.
int64_t grain_for(int64_t macs_per_unit) {
  constexpr int64_t kMinMacs = int64_t(1) << 18;
  return std::max<int64_t>(1, kMinMacs / std::max<int64_t>(1, macs_per_unit));
}

QGemmOut base_out(const QPackedWeights& pw) {
  QGemmOut o;
  o.ibias = pw.ibias.data();
  o.mult = pw.mult.data();
  o.add = pw.add.data();
  o.lo = pw.lo;
  o.hi = pw.hi;
  o.relu = pw.relu;
  return o;
}

// Output rows [r0, r0 + rows) of o.
QGemmOut shift_rows(QGemmOut o, int64_t r0) {
  o.ibias += r0;
  o.mult += r0;
  o.add += r0;
  if (o.y8) o.y8 += r0 * o.row_stride;
  if (o.yf) o.yf += r0 * o.row_stride;
  return o;
}

}  // namespace

namespace {

// Offsets into a padded image (planes `plane` bytes, rows wp) of every tap of the
// (channel, kernel row, kernel column) reduction, in weight order: koff[k].
void tap_offsets(const QConvGeo& g, int64_t plane, int64_t wp, int64_t* koff) {
  for (int64_t c = 0, kk = 0; c < g.cin; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t t = 0; t < g.kw; ++t, ++kk) koff[kk] = c * plane + i * g.dh * wp + t * g.dw;
}

// Stride 1: no im2col. Each unit pads one image (planes hp x wp, zero point around) in its
// thread's scratch, packs B panels straight from shifted runs of it (qpack_shifted), and the
// kernel writes "wide" rows (wp columns an output row; the last wp - wo are junk) that are
// then compacted into y. Units are (image, block of output rows).
void qconv2d_forward_shifted(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                             uint8_t* y8, float* yf) {
  const KernelTable& kt = kernels();
  const int64_t nr = kt.qgemm_nr, P = g.ho * g.wo;
  const int64_t hp = std::max(g.h + 2 * g.ph, (g.ho - 1) + (g.kh - 1) * g.dh + 1);
  const int64_t wp = std::max(g.w + 2 * g.pw, (g.wo - 1) + (g.kw - 1) * g.dw + 1);
  const int64_t plane = hp * wp, padded = g.cin * plane + nr + wp + 64;
  const int threads = get_num_threads();
  const auto round_up = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
  // Output rows a unit: all of them unless there are too few images to share out, and few
  // enough that the staged wide block stays small.
  int64_t rows = std::max<int64_t>(1, std::min(g.ho, (int64_t(1) << 14) / std::max<int64_t>(1, wp)));
  if (n * ((g.ho + rows - 1) / rows) < 2 * threads) rows = std::max<int64_t>(1, g.ho * n / (2 * threads));
  const int64_t blocks = (g.ho + rows - 1) / rows, units = n * blocks;
  const int64_t wide = round_up(rows * wp, nr);
  const size_t esize = y8 ? 1 : sizeof(float);
  ScratchLayout layout;
  const int64_t pad_at = layout.per_thread((padded + 3) / 4);
  const int64_t pack_at = layout.per_thread(pw.k4 * nr);
  const int64_t stage_at = layout.per_thread((pw.m * wide * static_cast<int64_t>(esize) + 3) / 4);
  const int64_t koff_at = layout.shared(2 * pw.k);  // int64 offsets
  ScratchFrame frame(layout, threads);
  int64_t* koff = reinterpret_cast<int64_t*>(frame.shared(koff_at));
  tap_offsets(g, plane, wp, koff);
  const int64_t in_image = g.cin * g.h * g.w, out_image = pw.m * P;
  QGemmOut base = base_out(pw);
  base.row_stride = wide;
  base.col_stride = 1;
  parallel_for(units, grain_for(pw.m * pw.k * rows * wp), [&](int64_t b, int64_t e) {
    const int t = thread_id();
    uint8_t* xpad = reinterpret_cast<uint8_t*>(frame.thread(t, pad_at));
    uint8_t* bp = reinterpret_cast<uint8_t*>(frame.thread(t, pack_at));
    uint8_t* stage = reinterpret_cast<uint8_t*>(frame.thread(t, stage_at));
    int64_t padded_img = -1;
    for (int64_t u = b; u < e; ++u) {
      const int64_t img = u / blocks, oh0 = (u % blocks) * rows, oh1 = std::min(g.ho, oh0 + rows);
      if (padded_img != img) {
        const uint8_t* xi = x + img * in_image;
        std::memset(xpad, in_zp, static_cast<size_t>(padded));
        for (int64_t c = 0; c < g.cin; ++c)
          for (int64_t r = 0; r < g.h; ++r)
            copy_short(xpad + c * plane + (r + g.ph) * wp + g.pw, xi + (c * g.h + r) * g.w, g.w);
        padded_img = img;
      }
      const int64_t q_begin = oh0 * wp, q_count = (oh1 - oh0) * wp;
      QGemmOut o = base;
      for (int64_t q = 0; q < q_count; q += nr) {
        qpack_shifted(xpad, koff, pw.k, q_begin + q, nr, pw.k4, bp);
        if (y8) o.y8 = stage + q;
        else o.yf = reinterpret_cast<float*>(stage) + q;
        kt.qgemm(pw.a.data(), pw.m, pw.k4, bp, std::min(nr, q_count - q), o);
      }
      // compact: output row oh of channel r is stage[r][(oh - oh0) * wp, + wo)
      for (int64_t r = 0; r < pw.m; ++r)
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const size_t at = static_cast<size_t>(r * P + oh * g.wo), from = static_cast<size_t>(r * wide + (oh - oh0) * wp);
          if (y8)
            copy_short(y8 + img * out_image + at, stage + from, g.wo);
          else
            std::memcpy(yf + img * out_image + at, reinterpret_cast<const float*>(stage) + from,
                        static_cast<size_t>(g.wo) * sizeof(float));
        }
    }
  });
}

// Stride 1, output rows of 3 columns or more (a panel then spans few enough rows): as above,
// but the B panels hold compact output positions (qpack_shifted_segs: a panel spanning several
// output rows gathers each row's run of the padded image), so no junk column is multiplied
// (vgg_s's 8x8 layer wasted 20% of its multiplies on them) and the kernel writes y directly.
void qconv2d_forward_compact(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                             uint8_t* y8, float* yf) {
  const KernelTable& kt = kernels();
  const int64_t nr = kt.qgemm_nr, P = g.ho * g.wo;
  const int64_t hp = std::max(g.h + 2 * g.ph, (g.ho - 1) + (g.kh - 1) * g.dh + 1);
  const int64_t wp = std::max(g.w + 2 * g.pw, (g.wo - 1) + (g.kw - 1) * g.dw + 1);
  const int64_t plane = hp * wp, front = 64, padded = front + g.cin * plane + nr + wp + 64;
  const int threads = get_num_threads();
  // Output rows a unit: the whole image unless there are too few images to share out.
  int64_t rows = g.ho;
  if (n < 2 * threads) rows = std::max<int64_t>(1, g.ho * n / (2 * threads));
  const int64_t blocks = (g.ho + rows - 1) / rows, units = n * blocks;
  ScratchLayout layout;
  const int64_t pad_at = layout.per_thread((padded + 3) / 4);
  const int64_t pack_at = layout.per_thread(pw.k4 * nr);
  const int64_t koff_at = layout.shared(2 * pw.k);  // int64 offsets
  ScratchFrame frame(layout, threads);
  int64_t* koff = reinterpret_cast<int64_t*>(frame.shared(koff_at));
  tap_offsets(g, plane, wp, koff);
  const int64_t in_image = g.cin * g.h * g.w, out_image = pw.m * P;
  QGemmOut base = base_out(pw);
  base.row_stride = P;
  base.col_stride = 1;
  parallel_for(units, grain_for(pw.m * pw.k * rows * g.wo), [&](int64_t b, int64_t e) {
    const int t = thread_id();
    uint8_t* xpad = reinterpret_cast<uint8_t*>(frame.thread(t, pad_at)) + front;
    uint8_t* bp = reinterpret_cast<uint8_t*>(frame.thread(t, pack_at));
    // the slack around the planes: read only for columns whose outputs are dropped, but defined
    std::memset(xpad - front, in_zp, static_cast<size_t>(front));
    std::memset(xpad + g.cin * plane, in_zp, static_cast<size_t>(padded - front - g.cin * plane));
    for (int64_t u = b; u < e; ++u) {
      const int64_t img = u / blocks, oh0 = (u % blocks) * rows, oh1 = std::min(g.ho, oh0 + rows);
      // the padded rows output rows [oh0, oh1) read, written whole (no memset of the image first)
      const int64_t pr1 = std::min(hp, oh1 + (g.kh - 1) * g.dh), right = wp - g.pw - g.w;
      const uint8_t* xi = x + img * in_image;
      for (int64_t c = 0; c < g.cin; ++c)
        for (int64_t pr = oh0; pr < pr1; ++pr) {
          uint8_t* dst = xpad + c * plane + pr * wp;
          const int64_t r = pr - g.ph;
          if (r < 0 || r >= g.h) {
            std::memset(dst, in_zp, static_cast<size_t>(wp));
          } else {
            for (int64_t j = 0; j < g.pw; ++j) dst[j] = in_zp;
            copy_short(dst + g.pw, xi + (c * g.h + r) * g.w, g.w);
            for (int64_t j = 0; j < right; ++j) dst[g.pw + g.w + j] = in_zp;
          }
        }
      const int64_t p_end = oh1 * g.wo;
      for (int64_t p0 = oh0 * g.wo; p0 < p_end; p0 += nr) {
        const int64_t nc = std::min(nr, p_end - p0);
        QShiftSegs segs;
        for (int64_t j = 0; j < nc && segs.n < kQMaxSegs;) {  // runs of one output row each
          const int64_t p = p0 + j, oh = p / g.wo, ow = p % g.wo;
          segs.start[segs.n] = j;
          segs.delta[segs.n] = oh * wp + ow - j;
          ++segs.n;
          j += g.wo - ow;
        }
        qpack_shifted_segs(xpad, koff, pw.k, segs, nr, pw.k4, bp);
        QGemmOut o = base;
        if (y8) o.y8 = y8 + img * out_image + p0;
        if (yf) o.yf = yf + img * out_image + p0;
        kt.qgemm(pw.a.data(), pw.m, pw.k4, bp, nc, o);
      }
    }
  });
}

// Stride 1, cin a multiple of 4, weights packed tap-major: as qconv2d_forward_compact, but the
// padded image is channel-interleaved (qpad_c4_row: 4 channels' bytes per position), so a B
// group (4 channels of one tap) is a copy of runs of it (qpack_c4), no byte interleave per
// panel: the interleave happens once per image row instead of once per tap and panel.
void qconv2d_forward_c4(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                        uint8_t* y8, float* yf) {
  const KernelTable& kt = kernels();
  const int64_t nr = kt.qgemm_nr, P = g.ho * g.wo, cg4 = g.cin / 4;
  const int64_t hp = std::max(g.h + 2 * g.ph, (g.ho - 1) + (g.kh - 1) * g.dh + 1);
  const int64_t wp = std::max(g.w + 2 * g.pw, (g.wo - 1) + (g.kw - 1) * g.dw + 1);
  const int64_t plane = hp * wp;                                        // positions
  const int64_t front = 256, padded = front + 4 * (cg4 * plane + nr + wp + 64);  // bytes
  const int threads = get_num_threads();
  int64_t rows = g.ho;
  if (n < 2 * threads) rows = std::max<int64_t>(1, g.ho * n / (2 * threads));
  const int64_t blocks = (g.ho + rows - 1) / rows, units = n * blocks;
  ScratchLayout layout;
  const int64_t pad_at = layout.per_thread((padded + 3) / 4);
  const int64_t pack_at = layout.per_thread(pw.k4 * nr);
  const int64_t goff_at = layout.shared(2 * pw.k4);  // int64 byte offsets, one a group
  ScratchFrame frame(layout, threads);
  int64_t* goff = reinterpret_cast<int64_t*>(frame.shared(goff_at));
  for (int64_t i = 0, gg = 0; i < g.kh; ++i)
    for (int64_t t = 0; t < g.kw; ++t)
      for (int64_t c = 0; c < cg4; ++c, ++gg) goff[gg] = 4 * (c * plane + i * g.dh * wp + t * g.dw);
  const int64_t in_image = g.cin * g.h * g.w, out_image = pw.m * P;
  QGemmOut base = base_out(pw);
  base.row_stride = P;
  base.col_stride = 1;
  parallel_for(units, grain_for(pw.m * pw.k * rows * g.wo), [&](int64_t b, int64_t e) {
    const int t = thread_id();
    uint8_t* xpad4 = reinterpret_cast<uint8_t*>(frame.thread(t, pad_at)) + front;
    uint8_t* bp = reinterpret_cast<uint8_t*>(frame.thread(t, pack_at));
    std::memset(xpad4 - front, in_zp, static_cast<size_t>(front));
    std::memset(xpad4 + 4 * cg4 * plane, in_zp, static_cast<size_t>(padded - front - 4 * cg4 * plane));
    for (int64_t u = b; u < e; ++u) {
      const int64_t img = u / blocks, oh0 = (u % blocks) * rows, oh1 = std::min(g.ho, oh0 + rows);
      const int64_t pr1 = std::min(hp, oh1 + (g.kh - 1) * g.dh);
      const uint8_t* xi = x + img * in_image;
      for (int64_t c = 0; c < cg4; ++c)
        for (int64_t pr = oh0; pr < pr1; ++pr) {
          uint8_t* dst = xpad4 + 4 * (c * plane + pr * wp);
          const int64_t r = pr - g.ph;
          if (r < 0 || r >= g.h)
            std::memset(dst, in_zp, static_cast<size_t>(4 * wp));
          else
            qpad_c4_row(xi + (4 * c * g.h + r) * g.w, g.h * g.w, g.w, g.pw, wp, in_zp, dst);
        }
      const int64_t p_end = oh1 * g.wo;
      for (int64_t p0 = oh0 * g.wo; p0 < p_end; p0 += nr) {
        const int64_t nc = std::min(nr, p_end - p0);
        QShiftSegs segs;
        for (int64_t j = 0; j < nc && segs.n < kQMaxSegs;) {
          const int64_t p = p0 + j, oh = p / g.wo, ow = p % g.wo;
          segs.start[segs.n] = j;
          segs.delta[segs.n] = oh * wp + ow - j;
          ++segs.n;
          j += g.wo - ow;
        }
        qpack_c4(xpad4, goff, pw.k4, segs, nr, bp);
        QGemmOut o = base;
        if (y8) o.y8 = y8 + img * out_image + p0;
        if (yf) o.yf = yf + img * out_image + p0;
        kt.qgemm(pw.a.data(), pw.m, pw.k4, bp, nc, o);
      }
    }
  });
}

}  // namespace

void qconv2d_forward(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                     uint8_t* y8, float* yf) {
  if (qwinograd_chosen(pw, g, n)) return qconv2d_forward_winograd(pw, g, in_zp, x, n, y8, yf);
  if (pw.tap_major) return qconv2d_forward_c4(pw, g, in_zp, x, n, y8, yf);  // packed where c4_ok
  if (compact_ok(g, kernels().qgemm_nr)) return qconv2d_forward_compact(pw, g, in_zp, x, n, y8, yf);
  if (g.sh == 1 && g.sw == 1) return qconv2d_forward_shifted(pw, g, in_zp, x, n, y8, yf);
  const KernelTable& kt = kernels();
  const int64_t nr = kt.qgemm_nr, P = g.ho * g.wo, K = pw.k;
  const int threads = get_num_threads();
  const auto round_up = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
  // Column blocks of whole B panels: an image at a time where its im2col block stays
  // in L2 (<= 192 KiB), smaller blocks when there are too few images to share out.
  int64_t cb = std::min(round_up(P, nr), std::max<int64_t>(nr, (int64_t(192) << 10) / std::max<int64_t>(K, 1) / nr * nr));
  int64_t blocks = (P + cb - 1) / cb;
  if (n * blocks < 2 * threads) {
    const int64_t want = (2 * threads + n - 1) / n;
    cb = std::max(nr, round_up((P + want - 1) / want, nr));
    blocks = (P + cb - 1) / cb;
  }
  const int64_t units = n * blocks;
  ScratchLayout layout;
  const int64_t col_at = layout.per_thread((K * cb + 3) / 4);
  const int64_t pack_at = layout.per_thread(pw.k4 * cb);  // k4 * 4 * cb bytes
  ScratchFrame frame(layout, threads);
  const int64_t in_image = g.cin * g.h * g.w, out_image = pw.m * P;
  QGemmOut base = base_out(pw);
  base.row_stride = P;
  base.col_stride = 1;
  parallel_for(units, grain_for(pw.m * K * cb), [&](int64_t b, int64_t e) {
    const int t = thread_id();
    uint8_t* col = reinterpret_cast<uint8_t*>(frame.thread(t, col_at));
    uint8_t* packed = reinterpret_cast<uint8_t*>(frame.thread(t, pack_at));
    for (int64_t u = b; u < e; ++u) {
      const int64_t img = u / blocks, c0 = (u % blocks) * cb, nc = std::min(cb, P - c0), cols = round_up(nc, nr);
      qim2col_block(x + img * in_image, g, in_zp, c0, nc, col, cb);
      for (int64_t r = 0; r < K && cols > nc; ++r) std::memset(col + r * cb + nc, in_zp, static_cast<size_t>(cols - nc));
      qinterleave(col, cb, K, cols, nr, pw.k4, packed);
      for (int64_t q = 0; q < cols / nr; ++q) {
        const int64_t p0 = c0 + q * nr;
        QGemmOut o = base;
        if (y8) o.y8 = y8 + img * out_image + p0;
        if (yf) o.yf = yf + img * out_image + p0;
        kt.qgemm(pw.a.data(), pw.m, pw.k4, packed + q * pw.k4 * nr * 4, std::min(nr, c0 + nc - p0), o);
      }
    }
  });
}

namespace {

// A few samples: one column at a time (qgemv: output rows in the lanes), rows split in chunks of
// whole 8-row pairs of panels so every thread has work.
void qdense_forward_gemv(const QPackedWeights& pw, const uint8_t* x, int64_t n, uint8_t* y8, float* yf) {
  const KernelTable& kt = kernels();
  const int threads = get_num_threads();
  const int64_t pairs = (pw.m + 7) / 8;
  const int64_t chunks = std::min<int64_t>(pairs, 2 * threads), per = (pairs + chunks - 1) / chunks;
  const int64_t units = n * chunks;
  ScratchLayout layout;
  const int64_t xb_at = layout.per_thread(pw.k4);  // k4 * 4 bytes
  ScratchFrame frame(layout, threads);
  QGemmOut base = base_out(pw);
  base.row_stride = 1;
  parallel_for(units, grain_for(per * 8 * pw.k), [&](int64_t b, int64_t e) {
    uint8_t* xb = reinterpret_cast<uint8_t*>(frame.thread(thread_id(), xb_at));
    int64_t loaded = -1;
    for (int64_t u = b; u < e; ++u) {
      const int64_t j = u / chunks, r0 = (u % chunks) * per * 8;
      if (r0 >= pw.m) continue;
      if (loaded != j) {
        std::memcpy(xb, x + j * pw.k, static_cast<size_t>(pw.k));
        std::memset(xb + pw.k, 0, static_cast<size_t>(pw.k4 * 4 - pw.k));
        loaded = j;
      }
      QGemmOut o = base;
      if (y8) o.y8 = y8 + j * pw.m;
      if (yf) o.yf = yf + j * pw.m;
      o = shift_rows(o, r0);
      kt.qgemv(pw.a.data() + (r0 / kQPanelRows) * pw.k4 * 16, std::min(per * 8, pw.m - r0), pw.k4, xb, o);
    }
  });
}

}  // namespace

void qdense_forward(const QPackedWeights& pw, const uint8_t* x, int64_t n, uint8_t* y8, float* yf) {
  const KernelTable& kt = kernels();
  if (4 * n <= kt.qgemm_nr) return qdense_forward_gemv(pw, x, n, y8, yf);
  const int64_t nr = kt.qgemm_nr, col_panels = (n + nr - 1) / nr;
  const int threads = get_num_threads();
  // Few samples: split the rows (whole 4-row panels) too, so batch 1 uses every thread.
  const int64_t panels = (pw.m + kQPanelRows - 1) / kQPanelRows;
  const int64_t row_chunks = col_panels >= 2 * threads ? 1 : std::min<int64_t>(panels, 2 * threads);
  const int64_t chunk_panels = (panels + row_chunks - 1) / row_chunks;
  const int64_t units = col_panels * row_chunks;
  ScratchLayout layout;
  const int64_t at = layout.per_thread(pw.k4 * nr);
  ScratchFrame frame(layout, threads);
  QGemmOut base = base_out(pw);
  base.row_stride = 1;
  base.col_stride = pw.m;
  parallel_for(units, grain_for(chunk_panels * kQPanelRows * pw.k * nr), [&](int64_t b, int64_t e) {
    uint8_t* bp = reinterpret_cast<uint8_t*>(frame.thread(thread_id(), at));
    int64_t packed = -1;
    for (int64_t u = b; u < e; ++u) {
      const int64_t cp = u / row_chunks, rc = u % row_chunks;
      const int64_t j0 = cp * nr, nc = std::min(nr, n - j0);
      const int64_t r0 = rc * chunk_panels * kQPanelRows;
      if (r0 >= pw.m) continue;
      const int64_t rows = std::min(chunk_panels * kQPanelRows, pw.m - r0);
      if (packed != cp) {
        qpack_rows(x, pw.k, pw.k, j0, nc, nr, pw.k4, bp);
        packed = cp;
      }
      QGemmOut o = base;
      if (y8) o.y8 = y8 + j0 * pw.m;
      if (yf) o.yf = yf + j0 * pw.m;
      o = shift_rows(o, r0);
      kt.qgemm(pw.a.data() + (r0 / kQPanelRows) * pw.k4 * 16, rows, pw.k4, bp, nc, o);
    }
  });
}

}  // namespace cpucnn
