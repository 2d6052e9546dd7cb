#include "ops/winograd.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/winograd.hpp"
#include "ops/gemm.hpp"
#include "core/limits.hpp"

namespace cpucnn {

namespace {

// Below this many tiles per call (small images at batch 1) transforming the
// weights costs more than the multiplies saved: im2col + GEMM runs instead.
constexpr int64_t kMinTiles = 256;
// With the weights prepared once (inference), from this many: batch 1, 2
// threads, F(2x2) vs im2col + GEMM, 8x8 maps (16 tiles) 13.9 vs 19.2 us with
// 16 channels, 22.9 vs 39.2 with 32; 6x6 (9 tiles) 22.4 vs 31.5 with 32;
// 4x4 (4 tiles) 45.6 vs 50.6 with 64, but 177 vs 136 with 128.
constexpr int64_t kMinTilesPrepared = 8;

std::atomic<int> g_tile{static_cast<int>(WinogradTile::kAuto)};

// One Winograd variant F(m x m, 3x3): its kernels and matrices.
struct Scheme {
  int m = 2;       // outputs per tile side
  int alpha = 4;   // transform points per side: m + 2
  int xi = 16;     // products per tile: alpha^2
  int bias_xi = 5;  // the dM plane that holds each tile's sum of dy (A's row of ones, twice)
  const float* g = nullptr;  // G, alpha x 3
  WinogradInputFn input = nullptr;
  WinogradOutputFn output = nullptr;  // or, with relu_y:
  WinogradMaskedOutputFn masked_output = nullptr;
  WinogradGradOutputFn grad_output = nullptr;
  WinogradWeightsFn weights = nullptr;
  WinogradInputAdjointFn adjoint = nullptr;
};

// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
constexpr float kG2[4 * 3] = {1.0f, 0.0f, 0.0f, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0.0f, 0.0f, 1.0f};
// G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
constexpr float kG4[6 * 3] = {0.25f,      0.0f,       0.0f,      -1.0f / 6, -1.0f / 6, -1.0f / 6,
                              -1.0f / 6,  1.0f / 6,   -1.0f / 6, 1.0f / 24, 1.0f / 12, 1.0f / 6,
                              1.0f / 24,  -1.0f / 12, 1.0f / 6,  0.0f,      0.0f,      1.0f};

Scheme scheme_f2(const KernelTable& kt) {
  Scheme sc;
  sc.g = kG2;
  sc.input = kt.winograd_input;
  sc.output = kt.winograd_output;
  sc.grad_output = kt.winograd_grad_output;
  sc.weights = kt.winograd_weights;
  sc.adjoint = kt.winograd_input_adjoint;
  return sc;
}

Scheme scheme_f4(const KernelTable& kt) {
  Scheme sc;
  sc.m = 4;
  sc.alpha = 6;
  sc.xi = 36;
  sc.bias_xi = 7;  // A^T = [1 1 1 1 1 0; ...]: column 1 is all ones
  sc.g = kG4;
  sc.input = kt.winograd4_input;
  sc.masked_output = kt.winograd4_output;
  sc.grad_output = kt.winograd4_grad_output;
  sc.weights = kt.winograd4_weights;
  sc.adjoint = kt.winograd4_input_adjoint;  // where null, dx runs as a forward pass over dy
  return sc;
}

// F(4x4) where the ISA has it and the setting allows, on maps of at least
// 8x8 outputs (two tiles a side; below that most of a 4x4 tile would be
// outside the plane) with at least a transform register's worth of its
// tiles per thread (16 for avx512, 8 for avx2): with fewer, a thread's
// transforms and GEMM panels are mostly empty (avx512, batch 1, 2 threads,
// 16x16 maps: 62 us for F(4x4), 45 us for F(2x2); avx2, 1 thread, 64 -> 128
// channels on 8x8 maps: 4 tiles 174 vs 97 us, 8 tiles 178 vs 184, 16 tiles
// 165 vs 359).
Scheme scheme_for(const Conv2dShape& s, int threads) {
  const KernelTable& kt = kernels();
  const auto tile = static_cast<WinogradTile>(g_tile.load(std::memory_order_relaxed));
  if (!kt.winograd4_input || tile == WinogradTile::kF2) return scheme_f2(kt);
  if (tile == WinogradTile::kF4) return scheme_f4(kt);
  const ConvGeometry& g = s.geo;
  const int64_t tiles = s.n * ((g.ho + 3) / 4) * ((g.wo + 3) / 4);
  const int64_t per_thread = kt.winograd4_lanes;
  const bool f4 = g.ho >= 8 && g.wo >= 8 && tiles >= per_thread * std::max(1, threads);
  return f4 ? scheme_f4(kt) : scheme_f2(kt);
}

WinogradGeometry tiles_of(const ConvGeometry& g, int m) {
  return WinogradGeometry{g.h, g.w, g.ho, g.wo, g.ph, g.pw, (g.ho + m - 1) / m, (g.wo + m - 1) / m};
}

// C (m x n) = A (m x k, packed for the micro-kernel) B (k x n); B and C
// rows ld floats apart (the transformed arrays' layout).
void packed_product(int64_t m, int64_t n, int64_t k, const float* packed_a, const float* b, float* c, int64_t ld,
                    float* packing) {
  GemmArgs a;
  a.packing = packing;
  a.m = m;
  a.n = n;
  a.k = k;
  a.packed_a = packed_a;
  a.b = b;
  a.ldb = ld;
  a.c = c;
  a.ldc = ld;
  gemm(a);
}

// Floats of one packed U[xi] with m rows as the GEMM's A (k deep).
int64_t packed_size(int64_t m, int64_t k) {
  const int64_t mr = kernels().gemm_mr;
  return (m + mr - 1) / mr * mr * k;
}

// Units (tile rows) per block: the transformed input and output of a block
// (xi x channels x columns each) stay within about 1 MiB of L2; every thread
// gets a block when that leaves blocks at least one GEMM panel (32 columns)
// wide; among the sizes allowed, the one whose busiest thread (blocks go to
// threads in equal runs) has least to do, counting the columns its last
// panel wastes. (vgg_s conv2 at batch 64, 2 threads: 64 blocks of 8 units,
// not 43 of 12 where one thread had 22 and the other 20 and a part.)
// (Splitting a block's products between threads instead was 1.6x slower
// at batch 1: the transformed data then crosses between the cores' caches.)
// Columns of a block whose transformed input and output stay within about 1 MiB of L2.
int64_t block_columns(const Scheme& sc, int64_t channels) {
  return std::clamp<int64_t>(int64_t(131072) / (sc.xi * std::max<int64_t>(channels, 1)), 32, 512);
}

int64_t units_per_block(const Scheme& sc, int64_t units, int64_t tw, int64_t channels, int threads) {
  constexpr int64_t kPanel = 32;
  // A ragged last panel wastes up to the micro-kernel's width: 16 columns on
  // AVX2, 32 on AVX-512 (counted as 32 on AVX2, convnet_s conv2 at batch 64
  // took blocks of 54 columns, 4 panels for 3.4; 48 columns, 3 whole
  // panels, trained that layer 1.14-1.17x and the model 1.10x faster: 2
  // threads, paired interleaved steps).
  const int64_t nr = kernels().gemm_nr;
  const int64_t cols = block_columns(sc, channels);
  int64_t most = std::max<int64_t>(1, cols / tw);
  const int64_t fair = (units + threads - 1) / threads;
  most = std::max<int64_t>(1, std::min(most, std::max(fair, (kPanel + tw - 1) / tw)));
  // Few blocks in all (small images at batch 1): equal shares, whatever
  // their last panel wastes (a thread with one block more keeps the rest waiting).
  if (threads > 1 && (units + most - 1) / most <= threads && fair * tw >= kPanel / 2) return fair;
  int64_t best = most;
  double best_cost = 0.0;
  for (int64_t ub = most; ub >= std::max<int64_t>(1, most / 2); --ub) {
    const int64_t c = ub * tw, blocks = (units + ub - 1) / ub;
    const double use = static_cast<double>(c) / static_cast<double>((c + nr - 1) / nr * nr);
    const int64_t busiest = std::min(units, (blocks + threads - 1) / threads * ub);
    const double cost = static_cast<double>(busiest) / use;
    if (ub == most || cost < best_cost - 1e-9) {
      best = ub;
      best_cost = cost;
    }
  }
  return best;
}

// Output-channel parts per block where there are fewer blocks than threads
// (small maps at batch 1: vgg_s conv3-5 are one block each): the block's
// threads each transform its input (a small cost next to the products:
// every part keeps at least kMinPartPanels micro-kernel panels of output
// channels) and run the products and the output transform for their
// channels only. No data crosses between the cores' caches, and each
// output element is summed the same way whatever the split.
int64_t channel_parts(int64_t blocks, int64_t co, int threads) {
  constexpr int64_t kMinPartPanels = 3;
  if (blocks >= threads) return 1;
  const int64_t panels = (co + kernels().gemm_mr - 1) / kernels().gemm_mr;
  return std::max<int64_t>(1, std::min<int64_t>(threads / blocks, panels / kMinPartPanels));
}

// A small grid cut into one block per thread can leave each block's last
// column panel nearly empty (convnet_s conv2 at batch 1, F(4x4), 2 threads:
// two blocks of 18 columns, each 2 panels of 16 wide): then one block of all
// the columns with its output channels split (channel_parts) runs fewer
// micro-tiles on the busiest thread, for one more input transform per
// thread; taken when it saves at least a tenth of them (convnet_s batch-1
// p50 at 2 threads: 246-290 us against 292-353, 4 interleaved rounds).
bool one_block_pays(const WinogradPass& ps, int64_t tw, int64_t co, int threads, int64_t max_cols) {
  if (ps.blocks <= 1 || ps.blocks > threads || ps.units * tw > max_cols) return false;
  const int64_t parts = channel_parts(1, co, threads);
  if (parts <= 1) return false;
  const KernelTable& kt = kernels();
  const int64_t nr = kt.gemm_nr, panels = (co + kt.gemm_mr - 1) / kt.gemm_mr;
  const int64_t blocks_cost = (ps.ub * tw + nr - 1) / nr * panels;
  const int64_t split_cost = (ps.units * tw + nr - 1) / nr * ((panels + parts - 1) / parts);
  return split_cost * 10 <= blocks_cost * 9;
}

// Plans a pass over the tiles of n images (ci planes in, co out) in
// blocks of units, its per-thread parts added to l (and, with `weights`,
// the transformed and packed weights, shared).
WinogradPass plan_pass(const Scheme& sc, int64_t n, int64_t ci, int64_t co, const WinogradGeometry& wg, int threads,
                       bool weights, ScratchLayout& l) {
  WinogradPass ps;
  ps.ci = ci;
  ps.co = co;
  ps.units = n * wg.th;
  ps.ub = units_per_block(sc, ps.units, wg.tw, std::max(ci, co), threads);
  ps.blocks = (ps.units + ps.ub - 1) / ps.ub;
  if (one_block_pays(ps, wg.tw, co, threads, block_columns(sc, std::max(ci, co)))) {
    ps.ub = ps.units;
    ps.blocks = 1;
  }
  ps.ld = ps.ub * wg.tw;
  ps.parts = channel_parts(ps.blocks, co, threads);
  ps.use = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, ps.blocks * ps.parts)));
  ps.v = l.per_thread(sc.xi * winograd_plane(ci, ps.ld));
  ps.m = l.per_thread(sc.xi * winograd_plane(co, ps.ld));
  ps.kernel = l.per_thread(winograd_input_scratch(ci, wg));
  ps.pack = l.per_thread(gemm_packing_floats(co, ps.ld, ci));
  if (weights) {
    ps.u = l.shared(sc.xi * co * ci);
    ps.up = l.shared(sc.xi * packed_size(co, ci));
  }
  return ps;
}

// y = winograd conv of x (ps.ci planes) with the transformed kernels packed
// as GEMM A panels (`up`, packed_size(co, ci) floats apart). relu_y (may be
// null; only where the scheme has a masked output): y is multiplied by
// [relu_y > 0].
void forward_packed(const Scheme& sc, const WinogradPass& ps, const WinogradGeometry& wg, const ScratchFrame& f,
                    const float* x, const float* up, const float* bias, float* y, bool relu,
                    const float* relu_y = nullptr) {
  const int64_t cin = ps.ci, cout = ps.co, ld = ps.ld, ub = ps.ub, units = ps.units, parts = ps.parts;
  const int64_t upanel = packed_size(cout, cin), mr = kernels().gemm_mr;
  const int64_t panels = (cout + mr - 1) / mr, hw = wg.ho * wg.wo;
  const int64_t in_stride = cin * wg.h * wg.w, out_stride = cout * hw;
  [[maybe_unused]] const int use = ps.use;
  RegionError err;
  // Items go to whichever thread is free (an item's outputs do not depend on
  // the thread that computes them): with equal static runs, a core slowed
  // for a while (shared or virtual CPUs) kept the other waiting. 2-thread
  // convnet_s and vgg_s training at batch 64: the OpenMP wait fell from
  // 9-13% of the CPU samples to 5-7% (perf, 3 interleaved runs each).
#pragma omp parallel for num_threads(use) schedule(dynamic, 1) if (use > 1)
  for (int64_t item = 0; item < ps.blocks * parts; ++item) err.run([&] {
    const int64_t b = item / parts, q = item % parts;
    const int64_t u0 = b * ub, u1 = std::min(units, u0 + ub);
    const int64_t cols = (u1 - u0) * wg.tw;
    // This part's output channels [c0, c1): whole panels of the packed U.
    const int64_t c0 = panels * q / parts * mr, c1 = std::min(cout, panels * (q + 1) / parts * mr), rows = c1 - c0;
    const int t = thread_id();
    float* v = f.thread(t, ps.v);
    float* m = f.thread(t, ps.m);
    sc.input(x, cin, in_stride, wg, u0, u1, v, ld, f.thread(t, ps.kernel));
    for (int xi = 0; xi < sc.xi; ++xi)  // M[xi] (rows x cols) = U[xi] (rows x cin) V[xi] (cin x cols)
      packed_product(rows, cols, cin, up + xi * upanel + c0 * cin, v + xi * winograd_plane(cin, ld),
                     m + xi * winograd_plane(rows, ld), ld, f.thread(t, ps.pack));
    const float* bq = bias ? bias + c0 : nullptr;
    if (sc.masked_output)
      sc.masked_output(m, ld, rows, bq, relu, wg, u0, u1, y + c0 * hw, out_stride, relu_y ? relu_y + c0 * hw : nullptr);
    else
      sc.output(m, ld, rows, bq, relu, wg, u0, u1, y + c0 * hw, out_stride);
  });
  err.rethrow();
}

// U[xi] (co x ci) = (G w G^T)[xi] of the kernels w[k][c][i][j] at src + k *
// rs + c * cs (flipped when `flip`), packed as the GEMM's A panels at `up`
// (packed_size(co, ci) floats apart), split over up to `threads` threads
// by whole panels of rows: a thread's rows [k0, k1) are panels k0 / mr.. of
// every packed U[xi], made from its own part of `u` (xi planes of (k1 - k0) x ci).
// In training this runs every step; on one thread it kept the other
// waiting for about 8% of a step (vgg_s conv5 at batch 64).
void transform_weights(const Scheme& sc, int64_t co, int64_t ci, int threads, const float* w, int64_t rs, int64_t cs,
                       bool flip, float* u, float* up) {
  const int64_t mr = kernels().gemm_mr, panels = (co + mr - 1) / mr;
  const int64_t upanel = packed_size(co, ci);
  const int use = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, panels)));
  RegionError err;
#pragma omp parallel num_threads(use) if (use > 1)
  err.run([&] {
    const int t = thread_id(), team = team_size();
    const int64_t k0 = panels * t / team * mr, k1 = std::min(co, panels * (t + 1) / team * mr);
    if (k1 <= k0) return;
    float* part = u + sc.xi * k0 * ci;
    sc.weights(w + k0 * rs, k1 - k0, ci, rs, cs, flip, part);
    GemmTile tile;
    tile.m = k1 - k0;
    tile.k = ci;
    tile.lda = ci;
    for (int xi = 0; xi < sc.xi; ++xi) {
      tile.a = part + xi * (k1 - k0) * ci;
      kernels().gemm_pack_a(tile, up + xi * upanel + k0 * ci);
    }
  });
  err.rethrow();
}

// The same from untransformed weights: U[xi] = (G w G^T)[xi] of
// w[k][c][i][j] at src + k * rs + c * cs (flipped when `flip`), made and
// packed into the pass's shared parts first.
void forward_transforming(const Scheme& sc, const WinogradPass& ps, const WinogradGeometry& wg, const ScratchFrame& f,
                          const float* x, const float* w, int64_t rs, int64_t cs, bool flip, const float* bias,
                          float* y, bool relu, const float* relu_y = nullptr) {
  transform_weights(sc, ps.co, ps.ci, ps.use, w, rs, cs, flip, f.shared(ps.u), f.shared(ps.up));
  forward_packed(sc, ps, wg, f, x, f.shared(ps.up), bias, y, relu, relu_y);
}

Scheme scheme_of(const WinogradPlan& p) { return p.tile == 4 ? scheme_f4(*p.table) : scheme_f2(*p.table); }

// dx's grid: dx = conv(dy, w') with w'[c][k][i][j] = w[k][c][2 - i][2 - j]
// and padding 2 - p.
WinogradGeometry dx_tiles(const ConvGeometry& g, int m) {
  return WinogradGeometry{g.ho, g.wo, g.h, g.w, 2 - g.ph, 2 - g.pw, (g.h + m - 1) / m, (g.w + m - 1) / m};
}

}  // namespace

bool winograd_applicable(const Conv2dShape& s) {
  const ConvGeometry& g = s.geo;
  return kernels().winograd_input != nullptr && s.groups == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 &&
         g.sw == 1 && g.dh == 1 && g.dw == 1 && s.cin >= 8 && s.cout >= 8 && g.ho >= 2 && g.wo >= 2;
}

namespace {

// In 2x2 tiles, whichever variant runs: what the thresholds were measured in.
int64_t tile_count(const Conv2dShape& s) { return s.n * ((s.geo.ho + 1) / 2) * ((s.geo.wo + 1) / 2); }

}  // namespace

void set_winograd_tile(WinogradTile tile) { g_tile.store(static_cast<int>(tile)); }
WinogradTile winograd_tile() { return static_cast<WinogradTile>(g_tile.load()); }

bool winograd_pays(const Conv2dShape& s) { return tile_count(s) >= kMinTiles; }
bool winograd_prepared_pays(const Conv2dShape& s) { return tile_count(s) >= kMinTilesPrepared; }

int winograd_tile_for(const Conv2dShape& s) { return scheme_for(s, get_num_threads()).m; }

namespace {
std::atomic<uint64_t> g_prepared{0};
}  // namespace

uint64_t winograd_prepared_count() { return g_prepared.load(); }

WinogradPlan winograd_plan(const Conv2dShape& s, int threads) {
  const Scheme sc = scheme_for(s, threads);
  WinogradPlan p;
  p.table = &kernels();
  p.tile = sc.m;
  p.threads = std::max(1, threads);
  p.shape = s;
  const WinogradGeometry wg = tiles_of(s.geo, sc.m);
  p.fwd = plan_pass(sc, s.n, s.cin, s.cout, wg, p.threads, true, p.forward);
  plan_pass(sc, s.n, s.cin, s.cout, wg, p.threads, false, p.prepared);
  // Backward. With the adjoint kernel, dx comes out of the weight-gradient
  // pass: it already holds dM = A e A^T per tile, so dV = U^T dM (a GEMM)
  // and dx = the overlap-add of B dV B^T: no transform of dy on its own
  // grid. Threads then take whole images (overlapping patches of one image
  // are added by one thread, in order), whether or not dx is asked for, so
  // dw does not depend on it.
  p.fused_dx = sc.adjoint != nullptr;
  ScratchLayout& l = p.backward;
  WinogradPass& b = p.bwd;
  b.ci = s.cin;
  b.co = s.cout;
  b.units = s.n * wg.th;
  b.ub = units_per_block(sc, b.units, wg.tw, std::max(s.cin, s.cout), 1);
  b.ld = b.ub * wg.tw;
  b.blocks = (b.units + b.ub - 1) / b.ub;
  const int64_t items = p.fused_dx ? s.n : b.blocks;
  b.use = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(p.threads, items)));
  b.v = l.per_thread(sc.xi * winograd_plane(s.cin, b.ld));
  b.m = l.per_thread(sc.xi * winograd_plane(s.cout, b.ld));  // dM
  b.kernel = l.per_thread(winograd_input_scratch(s.cin, wg));
  b.pack = l.per_thread(std::max(gemm_packing_floats(s.cout, s.cin, b.ld), gemm_packing_floats(s.cin, b.ld, s.cout)));
  if (p.fused_dx) {
    b.dv = l.per_thread(sc.xi * winograd_plane(s.cin, b.ld));
    b.u = l.shared(sc.xi * s.cout * s.cin);
    b.up = l.shared(sc.xi * packed_size(s.cin, s.cout));  // U^T for the dV GEMMs
  } else {
    p.dx_fwd = plan_pass(sc, s.n, s.cout, s.cin, dx_tiles(s.geo, sc.m), p.threads, true, l);
  }
  p.dx_only = plan_pass(sc, s.n, s.cout, s.cin, dx_tiles(s.geo, sc.m), p.threads, true, p.backward_data);
  // Per thread: its dU partial, then its bias partials (cout doubles).
  const int64_t usize = sc.xi * s.cout * s.cin;
  p.bias_at = (usize + 15) / 16 * 16;
  p.part_stride = p.bias_at + (2 * s.cout + 15) / 16 * 16;
  p.parts = l.shared(saturating_mul(b.use, p.part_stride));
  return p;
}

std::shared_ptr<const WinogradWeights> winograd_prepare(const WinogradPlan& p, const float* w, uint64_t version) {
  const Scheme sc = scheme_of(p);
  const Conv2dShape& s = p.shape;
  auto out = std::make_shared<WinogradWeights>();
  out->table = p.table;
  out->tile = p.tile;
  out->cout = s.cout;
  out->cin = s.cin;
  out->version = version;
  g_prepared.fetch_add(1);
  Tensor u({sc.xi * s.cout * s.cin});
  out->packed.resize({sc.xi * packed_size(s.cout, s.cin)});
  transform_weights(sc, s.cout, s.cin, 1, w, s.cin * 9, 9, false, u.data(), out->packed.data());
  return out;
}

bool winograd_prepared_for(const WinogradWeights& w, const WinogradPlan& p, uint64_t version) {
  return w.version == version && w.table == p.table && w.tile == p.tile && w.cout == p.shape.cout &&
         w.cin == p.shape.cin;
}

void winograd_forward_prepared(const WinogradPlan& p, const ScratchFrame& f, const float* x, const WinogradWeights& w,
                               const float* bias, float* y, bool relu) {
  forward_packed(scheme_of(p), p.fwd, tiles_of(p.shape.geo, p.tile), f, x, w.packed.data(), bias, y, relu);
}

void winograd_forward(const WinogradPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* bias,
                      float* y, bool relu) {
  const Conv2dShape& s = p.shape;
  forward_transforming(scheme_of(p), p.fwd, tiles_of(s.geo, p.tile), f, x, w, s.cin * 9, 9, false, bias, y, relu);
}

namespace {

constexpr int64_t kPairs = 16;  // (k, c) pairs a chunk of the final weight-gradient transform

// dw of pairs [kc0, kc0 + np) = G^T d G, d = the sum in thread order of the
// team's dU partials (planes of `pairs` floats; thread o's at part + o * stride).
// A chunk of pairs at a time, so the loops run across them.
template <int A>
void finish_weight_grad(const float* g, const float* part, int64_t stride, int team, int64_t pairs, int64_t kc0,
                        int64_t np, float* dw) {
  float d[A * A][kPairs], t3[3][A][kPairs], out[kPairs][9];
  for (int xi = 0; xi < A * A; ++xi) {
    const float* src = part + xi * pairs + kc0;
    for (int64_t l = 0; l < np; ++l) d[xi][l] = src[l];
    for (int o = 1; o < team; ++o)
      for (int64_t l = 0; l < np; ++l) d[xi][l] += src[o * stride + l];
  }
  for (int i = 0; i < 3; ++i)
    for (int q = 0; q < A; ++q)
      for (int64_t l = 0; l < np; ++l) {
        float acc = g[i] * d[q][l];
        for (int p = 1; p < A; ++p) acc += g[p * 3 + i] * d[p * A + q][l];
        t3[i][q][l] = acc;
      }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int64_t l = 0; l < np; ++l) {
        float acc = t3[i][0][l] * g[j];
        for (int q = 1; q < A; ++q) acc += t3[i][q][l] * g[q * 3 + j];
        out[l][i * 3 + j] = acc;
      }
  std::memcpy(dw + kc0 * 9, out, static_cast<size_t>(np) * 9 * sizeof(float));
}

}  // namespace

bool winograd_backward_data(const WinogradPlan& p, const ScratchFrame& f, const float* x, const float* w,
                            const float* dy, float* dx, bool relu_x) {
  const Scheme sc = scheme_of(p);
  const Conv2dShape& s = p.shape;
  // With the ReLU's mask where the output kernel can.
  const float* relu_y = relu_x && sc.masked_output ? x : nullptr;
  forward_transforming(sc, p.dx_only, dx_tiles(s.geo, sc.m), f, dy, w, 9, s.cin * 9, true, nullptr, dx, false, relu_y);
  return relu_y != nullptr;
}

bool winograd_backward(const WinogradPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db, bool relu_x) {
  const KernelTable& kt = *p.table;
  const Scheme sc = scheme_of(p);
  const Conv2dShape& s = p.shape;
  const WinogradPass& b = p.bwd;
  const bool fused_dx = dx && p.fused_dx;
  bool masked = fused_dx && relu_x;
  if (dx && !fused_dx) {
    // dx as a forward pass over dy, with the ReLU's mask where the output kernel can.
    const float* relu_y = relu_x && sc.masked_output ? x : nullptr;
    forward_transforming(sc, p.dx_fwd, dx_tiles(s.geo, sc.m), f, dy, w, 9, s.cin * 9, true, nullptr, dx, false,
                         relu_y);
    masked = relu_y != nullptr;
  }
  const WinogradGeometry wg = tiles_of(s.geo, sc.m);
  const int64_t cin = s.cin, cout = s.cout, ld = b.ld, ub = b.ub, units = b.units;
  // The bias gradient comes from dM: with A^T = [1 1 1 0; 0 1 -1 -1]
  // (F(2x2)), dM[5] = (A e A^T)[1][1] is the sum of the tile's 2x2 dy
  // values, so db is the sum of plane 5 of dM, read while it is in cache
  // (not dy again); F(4x4)'s A^T has its column of ones at 1 too: plane 7.
  const int64_t usize = sc.xi * cout * cin;
  const int64_t bias_at = p.bias_at, stride = p.part_stride;
  const int64_t in_stride = cin * wg.h * wg.w, out_stride = cout * wg.ho * wg.wo;
  const int64_t upanel = packed_size(cin, cout);
  float* upt = nullptr;
  if (fused_dx) {  // U^T packed for the dV GEMMs (cin x cout per xi): the kernels w[k][c] read as [c][k]
    upt = f.shared(b.up);
    transform_weights(sc, cin, cout, b.use, w, 9, cin * 9, false, f.shared(b.u), upt);
  }
  const bool by_image = p.fused_dx;
  float* part = f.shared(p.parts);
  [[maybe_unused]] const int use = b.use;
  RegionError err;
#pragma omp parallel num_threads(use) if (use > 1)
  {
    const int t = thread_id(), team = team_size();
    err.run([&] {
      float* du = part + t * stride;
      double* bsum = db ? reinterpret_cast<double*>(du + bias_at) : nullptr;
      if (bsum) std::fill(bsum, bsum + cout, 0.0);
      // This thread's units, in blocks; the split depends only on the team size.
      int64_t t0 = units * t / team, t1 = units * (t + 1) / team;
      if (by_image) {
        const int64_t n0 = s.n * t / team, n1 = s.n * (t + 1) / team;
        t0 = n0 * wg.th;
        t1 = n1 * wg.th;
      }
      float* v = f.thread(t, b.v);
      float* dm = f.thread(t, b.m);
      float* dv = fused_dx ? f.thread(t, b.dv) : nullptr;
      float* kscratch = f.thread(t, b.kernel);
      float* pack = f.thread(t, b.pack);
      bool first = true;
      for (int64_t u0 = t0; u0 < t1; u0 += ub) {
        const int64_t u1 = std::min(t1, u0 + ub);
        const int64_t cols = (u1 - u0) * wg.tw;
        sc.input(x, cin, in_stride, wg, u0, u1, v, ld, kscratch);
        sc.grad_output(dy, cout, out_stride, wg, u0, u1, dm, ld);
        if (bsum)
          for (int64_t k = 0; k < cout; ++k)
            bsum[k] += kt.sum(dm + sc.bias_xi * winograd_plane(cout, ld) + k * ld, cols);
        for (int xi = 0; xi < sc.xi; ++xi) {
          GemmArgs a;  // dU[xi] (cout x cin) += dM[xi] (cout x cols) V[xi]^T (cols x cin)
          a.trans_b = true;
          a.m = cout;
          a.n = cin;
          a.k = cols;
          a.a = dm + xi * winograd_plane(cout, ld);
          a.lda = ld;
          a.b = v + xi * winograd_plane(cin, ld);
          a.ldb = ld;
          a.c = du + xi * cout * cin;
          a.ldc = cin;
          a.accumulate = !first;
          a.packing = pack;
          gemm(a);
          if (fused_dx)  // dV[xi] (cin x cols) = U[xi]^T (cin x cout) dM[xi] (cout x cols)
            packed_product(cin, cols, cout, upt + xi * upanel, dm + xi * winograd_plane(cout, ld),
                           dv + xi * winograd_plane(cin, ld), ld, pack);
        }
        if (fused_dx) {
          // each image's dx cleared just before its first tile row adds to it (still in cache
          // then; cleared all at once up front, the adds missed it: 1/3 of the adjoint's samples)
          for (int64_t img = (u0 + wg.th - 1) / wg.th; img * wg.th < u1; ++img)
            std::memset(dx + img * in_stride, 0, static_cast<size_t>(in_stride) * sizeof(float));
          sc.adjoint(dv, ld, cin, wg, u0, u1, dx, in_stride, relu_x ? x : nullptr);
        }
        first = false;
      }
      if (first) std::memset(du, 0, usize * sizeof(float));
    });
#pragma omp barrier
    // dW = G^T (sum of partials, in thread order) G, per (k, c) pair.
    const int64_t pairs = cout * cin, chunks = (pairs + kPairs - 1) / kPairs;
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t kc0 = ch * kPairs, np = std::min<int64_t>(kPairs, pairs - kc0);
      if (sc.m == 4)
        finish_weight_grad<6>(kG4, part, stride, team, pairs, kc0, np, dw);
      else
        finish_weight_grad<4>(kG2, part, stride, team, pairs, kc0, np, dw);
    }
    if (db) {
#pragma omp for schedule(static)
      for (int64_t k = 0; k < cout; ++k) {
        double acc = 0.0;
        for (int o = 0; o < team; ++o) acc += reinterpret_cast<const double*>(part + o * stride + bias_at)[k];
        db[k] = static_cast<float>(acc);
      }
    }
  }
  err.rethrow();
  return masked;
}

}  // namespace cpucnn
