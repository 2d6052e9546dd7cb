#include "ops/qwinograd.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/qwinograd.hpp"
#include "ops/scratch.hpp"

namespace cpucnn {

namespace {

std::atomic<int> g_mode{static_cast<int>(QWinogradMode::kAuto)};
std::atomic<uint64_t> g_runs{0};

// In kAuto, where the Winograd path beats the direct one. On AVX2 (Zen 3) its products are bound
// by the vector pipes: vpmaddwd + vpaddd, 16 ops a 4x16 register tile step, against 24 for the
// direct kernel's vpmaddubsw + vpmaddwd + vpaddd on 2.25x the products: at best ~1.5x. The
// transforms cost per input channel (input) and per output channel (output) whatever the other
// count, so thin layers lose. Measured, 1 thread, batch 32 and 1 (direct / Winograd time): 3 -> 32
// channels 0.9, 8 -> 16 0.8, 16 -> 16 0.9, 16 -> 32 0.9 (16x16 maps), 8 -> 64 1.3 and 16 -> 64
// 1.2 (32x32), 32 -> 32 1.25-1.3 (32x32), 32 -> 64 1.2 (16x16), 64 -> 128 1.15 (8x8).
constexpr int64_t kMinCin = 8, kMinChannelProduct = 1024;

// V of a block within about this many bytes (L2 is 512 KiB; the weights' panels and the output
// stream through it too).
constexpr int64_t kBlockBytes = int64_t(192) << 10;

// Items per thread at least so that waking another thread pays (as in ops/qgemm.cc).
int64_t grain_for(int64_t macs_per_item) {
  constexpr int64_t kMinMacs = int64_t(1) << 18;
  return std::max<int64_t>(1, kMinMacs / std::max<int64_t>(1, macs_per_item));
}

// One padded row: zp, the image row (w bytes), zp up to wp, in fixed-size moves (libc's memset
// and memcpy calls cost more than the 10-70 byte rows of small maps). wp >= pw + w.
inline void pad_row(uint8_t* dst, const uint8_t* src, int64_t pw, int64_t w, int64_t wp, uint8_t zp) {
  if (!src) {
    uint8_t fill[16];
    std::memset(fill, zp, sizeof fill);
    int64_t j = 0;
    for (; j + 16 <= wp; j += 16) std::memcpy(dst + j, fill, 16);
    for (; j < wp; ++j) dst[j] = zp;
    return;
  }
  for (int64_t j = 0; j < pw; ++j) dst[j] = zp;
  for (int64_t j = pw + w; j < wp; ++j) dst[j] = zp;
  uint8_t* d = dst + pw;
  int64_t j = 0;
  if (w >= 16) {
    for (; j + 16 <= w; j += 16) std::memcpy(d + j, src + j, 16);
    if (j < w) std::memcpy(d + w - 16, src + w - 16, 16);
  } else if (w >= 8) {
    std::memcpy(d, src, 8);
    std::memcpy(d + w - 8, src + w - 8, 8);
  } else {
    for (; j < w; ++j) d[j] = src[j];
  }
}

// Padded rows [r0, r0 + prows) (image rows r0 - ph, ...) of every channel of image xi (cin x h x w)
// into xpad (channel planes `plane` bytes, rows wp).
void pad_rows(const uint8_t* xi, int64_t cin, int64_t h, int64_t w, int64_t ph, int64_t pw, int64_t r0, int64_t prows,
              int64_t wp, int64_t plane, uint8_t zp, uint8_t* xpad) {
  for (int64_t c = 0; c < cin; ++c) {
    const uint8_t* xc = xi + c * h * w;
    uint8_t* dst = xpad + c * plane;
    for (int64_t pr = 0; pr < prows; ++pr, dst += wp) {
      const int64_t r = r0 + pr - ph;
      pad_row(dst, r < 0 || r >= h ? nullptr : xc + r * w, pw, w, wp, zp);
    }
  }
}

struct Split {
  int64_t trows = 1, parts = 1;
};

// Tile rows a block and output-channel parts a unit: of the blocks within `most` tile rows (V in
// L2), the split whose busiest thread (items go to threads in equal runs) runs least, counting
// the empty columns of each block's last group of 16 tiles and the input transform each part
// repeats (vector ops a group: 16 x 16 a channel pair and 4-row panel for the products, ~520 a
// panel for the output transform, ~170 a channel pair for the input transform; ~2000 an item for
// its padding and calls). Ties: fewer, larger items.
// (convnet_s conv2 at batch 1, 2 threads: 4 blocks of 3 tile rows, 36 tiles each, run 3 groups
// with the last a quarter full; 2 blocks of 6 rows with 2 parts each run 5 full groups a thread.)
Split plan_split(int64_t n, int64_t th, int64_t tw, int64_t cin2, int64_t panels, int threads, int64_t most) {
  Split best;
  double best_cost = 0.0;
  const int64_t max_parts = std::max<int64_t>(1, std::min<int64_t>(panels, 2 * static_cast<int64_t>(threads)));
  for (int64_t trows = most; trows >= 1; --trows) {
    const int64_t units = n * ((th + trows - 1) / trows);
    const int64_t groups = (trows * tw + kQWinoTiles - 1) / kQWinoTiles;
    for (int64_t parts = 1; parts <= max_parts; ++parts) {
      const int64_t items = units * parts, per_thread = (items + threads - 1) / threads;
      const int64_t part_panels = (panels + parts - 1) / parts;
      const double item = static_cast<double>(groups * (part_panels * (256 * cin2 + 520) + 170 * cin2));
      const double cost = static_cast<double>(per_thread) * item + 2000.0 * static_cast<double>(per_thread);
      if (best_cost == 0.0 || cost < best_cost * 0.999) {
        best = Split{trows, parts};
        best_cost = cost;
      }
    }
  }
  return best;
}

}  // namespace

void set_qconv2d_winograd(QWinogradMode mode) { g_mode.store(static_cast<int>(mode)); }
QWinogradMode qconv2d_winograd() { return static_cast<QWinogradMode>(g_mode.load()); }
uint64_t qwinograd_runs() { return g_runs.load(); }

bool qwinograd_applicable(const QConvGeo& g) {
  return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ho >= 1 && g.wo >= 1 &&
         qwino_fits(g.cin);
}

bool qwinograd_chosen(const QPackedWeights& pw, const QConvGeo& g, int64_t n) {
  if (pw.wino_u.empty() || n <= 0) return false;
  const auto mode = qconv2d_winograd();
  if (mode == QWinogradMode::kNever) return false;
  if (mode == QWinogradMode::kAlways) return true;
  return g.cin >= kMinCin && g.cin * pw.m >= kMinChannelProduct;
}

void qwinograd_pack(const float* w, int64_t m, const QConvGeo& g, QPackedWeights& p) {
  const int64_t cin2 = (g.cin + 1) / 2, panels = (m + kQPanelRows - 1) / kQPanelRows;
  p.wino_u.assign(static_cast<size_t>(panels * 16 * cin2 * 8), 0);
  qwino_pack_weights(w, m, g.cin, p.wino_u.data());
}

// Units are (image, block of tile rows); where there are few (small batches), each unit's output
// channels are split too (whole 4-row panels; plan_split picks both): the parts of a unit each
// transform its input (a small cost next to their products) and run their channels' products, so
// no data crosses between the cores' caches. One parallel region; the scratch (per thread: the
// unit's padded rows and its V block) is planned before it.
void qconv2d_forward_winograd(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                              uint8_t* y8, float* yf) {
  const KernelTable& kt = kernels();
  g_runs.fetch_add(1, std::memory_order_relaxed);
  const int64_t cin = g.cin, cin2 = (cin + 1) / 2, m = pw.m, panels = (m + kQPanelRows - 1) / kQPanelRows;
  const int64_t th = (g.ho + 1) / 2, tw = (g.wo + 1) / 2, P = g.ho * g.wo;
  const int threads = get_num_threads();
  // Tile rows a block: V (64 bytes a channel pair and tile) within kBlockBytes.
  const int64_t max_tiles = std::max<int64_t>(kQWinoTiles, kBlockBytes / (64 * cin2));
  const Split split = plan_split(n, th, tw, cin2, panels, threads, std::clamp<int64_t>(max_tiles / tw, 1, th));
  const int64_t trows = split.trows, parts = split.parts;
  const int64_t blocks = (th + trows - 1) / trows, units = n * blocks, items = units * parts;
  const int64_t wp = 2 * tw + 2, plane = (2 * trows + 2) * wp;
  const int64_t padded = cin * plane + 64;
  ScratchLayout layout;
  const int64_t pad_at = layout.per_thread((padded + 3) / 4);
  const int64_t v_at = layout.per_thread((qwino_v_size(trows * tw, cin) + 1) / 2);
  ScratchFrame frame(layout, threads);
  const int64_t in_image = cin * g.h * g.w, out_image = m * P;
  QWinoOut base;
  base.o.ibias = pw.ibias.data();
  base.o.mult = pw.mult.data();
  base.o.add = pw.add.data();
  base.o.lo = pw.lo;
  base.o.hi = pw.hi;
  base.o.relu = pw.relu;
  base.o.row_stride = P;
  base.o.col_stride = 1;
  base.tw = tw;
  base.wo = g.wo;
  const int64_t panel_size = 16 * cin2 * 8;
  parallel_for(items, grain_for((m / parts + 1) * cin * 9 * trows * tw * 4), [&](int64_t b, int64_t e) {
    const int t = thread_id();
    uint8_t* xpad = reinterpret_cast<uint8_t*>(frame.thread(t, pad_at));
    int16_t* v = reinterpret_cast<int16_t*>(frame.thread(t, v_at));
    std::memset(xpad + cin * plane, in_zp, 64);  // the slack the input kernel may read
    int64_t ready = -1;  // the unit whose V is in v
    for (int64_t it = b; it < e; ++it) {
      const int64_t unit = it / parts, q = it % parts;
      const int64_t img = unit / blocks, i0 = (unit % blocks) * trows, nrows = std::min(trows, th - i0);
      if (ready != unit) {
        // padded rows [2 i0, 2 (i0 + nrows) + 2) of every channel, the zero point around
        const int64_t prows = 2 * nrows + 2;
        pad_rows(x + img * in_image, cin, g.h, g.w, g.ph, g.pw, 2 * i0, prows, wp, plane, in_zp, xpad);
        if (prows < 2 * trows + 2)  // the kernel's over-read past the block's last row stays defined
          for (int64_t c = 0; c < cin; ++c)
            std::memset(xpad + c * plane + prows * wp, in_zp, static_cast<size_t>((2 * trows + 2 - prows) * wp));
        kt.qwino_input(xpad, plane, wp, cin, nrows, tw, v);
        ready = unit;
      }
      const int64_t p0 = panels * q / parts, p1 = panels * (q + 1) / parts;
      const int64_t r0 = p0 * kQPanelRows, rows = std::min(m, p1 * kQPanelRows) - r0;
      if (rows <= 0) continue;
      QWinoOut out = base;
      out.o.ibias += r0;
      out.o.mult += r0;
      out.o.add += r0;
      const int64_t at = img * out_image + r0 * P + 2 * i0 * g.wo;
      if (y8) out.o.y8 = y8 + at;
      if (yf) out.o.yf = yf + at;
      out.rows = g.ho - 2 * i0;
      kt.qwino_gemm(pw.wino_u.data() + p0 * panel_size, rows, cin2, v, nrows * tw, out);
    }
  });
}

}  // namespace cpucnn
