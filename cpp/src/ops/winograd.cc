#include "ops/winograd.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/winograd.hpp"
#include "ops/gemm.hpp"
#include "ops/workspace.hpp"

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
  return sc;  // no adjoint kernel: dx runs as a forward pass over dy
}

// F(4x4) where the ISA has it and the setting allows, on maps of at least
// 8x8 outputs (two tiles a side; below that most of a 4x4 tile would be
// outside the plane) with at least a transform register's worth of its
// tiles per thread (16 for avx512, 8 for avx2): with fewer, a thread's
// transforms and GEMM panels are mostly empty (avx512, batch 1, 2 threads,
// 16x16 maps: 62 us for F(4x4), 45 us for F(2x2); avx2, 1 thread, 64 -> 128
// channels on 8x8 maps: 4 tiles 174 vs 97 us, 8 tiles 178 vs 184, 16 tiles
// 165 vs 359).
Scheme scheme_for(const Conv2dShape& s) {
  const KernelTable& kt = kernels();
  const auto tile = static_cast<WinogradTile>(g_tile.load(std::memory_order_relaxed));
  if (!kt.winograd4_input || tile == WinogradTile::kF2) return scheme_f2(kt);
  if (tile == WinogradTile::kF4) return scheme_f4(kt);
  const ConvGeometry& g = s.geo;
  const int64_t tiles = s.n * ((g.ho + 3) / 4) * ((g.wo + 3) / 4);
  const int64_t per_thread = kt.winograd4_lanes;
  const bool f4 = g.ho >= 8 && g.wo >= 8 && tiles >= per_thread * std::max(1, get_num_threads());
  return f4 ? scheme_f4(kt) : scheme_f2(kt);
}

WinogradGeometry tiles_of(const ConvGeometry& g, int m) {
  return WinogradGeometry{g.h, g.w, g.ho, g.wo, g.ph, g.pw, (g.ho + m - 1) / m, (g.wo + m - 1) / m};
}

// C (m x n) = A (m x k, packed for the micro-kernel) B (k x n); B and C
// rows ld floats apart (the transformed arrays' layout).
void packed_product(int64_t m, int64_t n, int64_t k, const float* packed_a, const float* b, float* c, int64_t ld) {
  GemmArgs a;
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

// The 16 transformed kernels U[xi] (rows x cols each) packed once as the
// micro-kernel's A (not once per block): U[xi] itself, or its transpose,
// the panel of xi at dst + xi * packed_size(m, k).
void pack_transformed(const float* u, int xis, int64_t rows, int64_t cols, bool transpose, float* dst) {
  GemmTile t;
  t.trans_a = transpose;
  t.m = transpose ? cols : rows;
  t.k = transpose ? rows : cols;
  t.lda = cols;
  for (int xi = 0; xi < xis; ++xi) {
    t.a = u + xi * rows * cols;
    kernels().gemm_pack_a(t, dst + xi * packed_size(t.m, t.k));
  }
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
int64_t units_per_block(const Scheme& sc, int64_t units, int64_t tw, int64_t channels, int threads) {
  constexpr int64_t kPanel = 32;
  const int64_t cols = std::clamp<int64_t>(int64_t(131072) / (sc.xi * std::max<int64_t>(channels, 1)), kPanel, 512);
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
    const double use = static_cast<double>(c) / static_cast<double>((c + kPanel - 1) / kPanel * kPanel);
    const int64_t busiest = std::min(units, (blocks + threads - 1) / threads * ub);
    const double cost = static_cast<double>(busiest) / use;
    if (ub == most || cost < best_cost - 1e-9) {
      best = ub;
      best_cost = cost;
    }
  }
  return best;
}

// y = winograd conv of x (cin planes) with the 16 transformed kernels
// packed as GEMM A panels (`up`, packed_size(cout, cin) floats apart).
// relu_y (may be null; only where the scheme has a masked output): y is
// multiplied by [relu_y > 0].
void forward_packed(const Scheme& sc, int64_t n, int64_t cin, int64_t cout, const WinogradGeometry& wg,
                    const float* x, const float* up, const float* bias, float* y, bool relu, int threads,
                    const float* relu_y = nullptr) {
  const int64_t upanel = packed_size(cout, cin);
  const int64_t units = n * wg.th;
  const int64_t ub = units_per_block(sc, units, wg.tw, std::max(cin, cout), threads);
  const int64_t blocks = (units + ub - 1) / ub;
  const int64_t ld = ub * wg.tw;
  const int64_t in_stride = cin * wg.h * wg.w, out_stride = cout * wg.ho * wg.wo;
  const int64_t vsize = sc.xi * winograd_plane(cin, ld), msize = sc.xi * winograd_plane(cout, ld);
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(threads, blocks));
  RegionError err;
#pragma omp parallel for num_threads(use) schedule(static) if (use > 1)
  for (int64_t b = 0; b < blocks; ++b) err.run([&] {
    const int64_t u0 = b * ub, u1 = std::min(units, u0 + ub);
    const int64_t cols = (u1 - u0) * wg.tw;
    Workspace& ws = thread_workspace();
    float* v = ws.get(Workspace::kCol, static_cast<size_t>(vsize));
    float* m = ws.get(Workspace::kCol2, static_cast<size_t>(msize));
    float* scratch = ws.get(Workspace::kKernel, static_cast<size_t>(winograd_input_scratch(cin, wg)));
    sc.input(x, cin, in_stride, wg, u0, u1, v, ld, scratch);
    for (int xi = 0; xi < sc.xi; ++xi)  // M[xi] (cout x cols) = U[xi] (cout x cin) V[xi] (cin x cols)
      packed_product(cout, cols, cin, up + xi * upanel, v + xi * winograd_plane(cin, ld),
                     m + xi * winograd_plane(cout, ld), ld);
    if (sc.masked_output)
      sc.masked_output(m, ld, cout, bias, relu, wg, u0, u1, y, out_stride, relu_y);
    else
      sc.output(m, ld, cout, bias, relu, wg, u0, u1, y, out_stride);
  });
  err.rethrow();
}

// U[xi] = (G w G^T)[xi] of the weights w (cout x cin x 3 x 3): xi planes of
// cout x cin in this thread's workspace.
float* transform_weights(const Scheme& sc, const float* w, int64_t cout, int64_t cin) {
  float* u = thread_workspace().get(Workspace::kTmp2, static_cast<size_t>(sc.xi * cout * cin));
  sc.weights(w, cout, cin, cin * 9, 9, false, u);
  return u;
}

// The same with transformed weights u (xi x cout x cin), packed here.
void forward_transformed(const Scheme& sc, int64_t n, int64_t cin, int64_t cout, const WinogradGeometry& wg,
                         const float* x, const float* u, const float* bias, float* y, bool relu, int threads,
                         const float* relu_y = nullptr) {
  float* up = thread_workspace().get(Workspace::kTmp, static_cast<size_t>(sc.xi * packed_size(cout, cin)));
  pack_transformed(u, sc.xi, cout, cin, false, up);
  forward_packed(sc, n, cin, cout, wg, x, up, bias, y, relu, threads, relu_y);
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

int winograd_tile_for(const Conv2dShape& s) { return scheme_for(s).m; }

namespace {
std::atomic<uint64_t> g_prepared{0};
}  // namespace

uint64_t winograd_prepared_count() { return g_prepared.load(); }

std::shared_ptr<const WinogradWeights> winograd_prepare(const Conv2dShape& s, const float* w, uint64_t version) {
  const Scheme sc = scheme_for(s);
  auto p = std::make_shared<WinogradWeights>();
  p->table = &kernels();
  p->tile = sc.m;
  p->cout = s.cout;
  p->cin = s.cin;
  p->version = version;
  g_prepared.fetch_add(1);
  p->packed.resize({sc.xi * packed_size(s.cout, s.cin)});
  pack_transformed(transform_weights(sc, w, s.cout, s.cin), sc.xi, s.cout, s.cin, false, p->packed.data());
  return p;
}

bool winograd_prepared_for(const WinogradWeights& p, const Conv2dShape& s, uint64_t version) {
  return p.version == version && p.table == &kernels() && p.tile == scheme_for(s).m && p.cout == s.cout &&
         p.cin == s.cin;
}

void winograd_forward_prepared(const Conv2dShape& s, const float* x, const WinogradWeights& p, const float* bias,
                               float* y, bool relu, int threads) {
  // The variant the weights were packed for (the choice for s may have
  // moved since with the thread count or the tile setting).
  const Scheme sc = p.tile == 4 ? scheme_f4(*p.table) : scheme_f2(*p.table);
  forward_packed(sc, s.n, s.cin, s.cout, tiles_of(s.geo, sc.m), x, p.packed.data(), bias, y, relu, threads);
}

void winograd_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                      int threads) {
  const Scheme sc = scheme_for(s);
  forward_transformed(sc, s.n, s.cin, s.cout, tiles_of(s.geo, sc.m), x, transform_weights(sc, w, s.cout, s.cin), bias,
                      y, relu, threads);
}

namespace {

// dx as a forward Winograd pass over dy: dx = conv(dy, w') with
// w'[c][k][i][j] = w[k][c][2 - i][2 - j] and padding 2 - p.
// With relu_x (the layer's input), dx is multiplied by [x > 0] where the
// scheme's output kernel can (returns whether it did).
bool backward_data_as_forward(const Scheme& sc, const Conv2dShape& s, const float* w, const float* dy, float* dx,
                              int threads, const float* relu_x) {
  float* u = thread_workspace().get(Workspace::kTmp2, static_cast<size_t>(sc.xi * s.cout * s.cin));
  sc.weights(w, s.cin, s.cout, 9, s.cin * 9, true, u);
  const ConvGeometry& g = s.geo;
  const WinogradGeometry wg{g.ho, g.wo, g.h, g.w, 2 - g.ph, 2 - g.pw, (g.h + sc.m - 1) / sc.m, (g.w + sc.m - 1) / sc.m};
  if (!sc.masked_output) relu_x = nullptr;
  forward_transformed(sc, s.n, s.cout, s.cin, wg, dy, u, nullptr, dx, false, threads, relu_x);
  return relu_x != nullptr;
}

}  // namespace

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

bool winograd_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db, int threads, Tensor& scratch, bool relu_x) {
  const KernelTable& kt = kernels();
  const Scheme sc = scheme_for(s);
  // With the adjoint kernel, dx comes out of the weight-gradient pass: it
  // already holds dM = A e A^T per tile, so dV = U^T dM (a GEMM) and dx =
  // the overlap-add of B dV B^T: no transform of dy on its own grid.
  const bool fused_dx = dx && sc.adjoint;
  bool masked = fused_dx && relu_x;
  if (dx && !fused_dx) masked = backward_data_as_forward(sc, s, w, dy, dx, threads, relu_x ? x : nullptr);
  const WinogradGeometry wg = tiles_of(s.geo, sc.m);
  const int64_t cin = s.cin, cout = s.cout;
  const int64_t units = s.n * wg.th;
  const int64_t ub = units_per_block(sc, units, wg.tw, std::max(cin, cout), 1);
  const int64_t ld = ub * wg.tw;
  // Per thread: its dU partial, then (with db) its bias partials, cout
  // doubles. The bias gradient comes from dM: with A^T = [1 1 1 0; 0 1 -1 -1]
  // (F(2x2)), dM[5] = (A e A^T)[1][1] is the sum of the tile's 2x2 dy values,
  // so db is the sum of plane 5 of dM, read while it is in cache (not dy
  // again); F(4x4)'s A^T has its column of ones at 1 too: plane 7.
  const int64_t usize = sc.xi * cout * cin;
  const int64_t bias_at = (usize + 15) / 16 * 16;
  const int64_t stride = db ? bias_at + (2 * cout + 15) / 16 * 16 : bias_at;
  const int64_t in_stride = cin * wg.h * wg.w, out_stride = cout * wg.ho * wg.wo;
  // U^T packed for the dV GEMMs (cin x cout per xi).
  const int64_t upanel = packed_size(cin, cout);
  float* upt = nullptr;
  if (fused_dx) {
    const float* u = transform_weights(sc, w, cout, cin);
    upt = thread_workspace().get(Workspace::kTmp, static_cast<size_t>(sc.xi * upanel));
    pack_transformed(u, sc.xi, cout, cin, true, upt);
  }
  // Threads take whole images where dx may come out of this pass
  // (overlapping patches of one image are added by one thread, in order),
  // whether or not it does this time, so dw does not depend on it.
  const bool by_image = sc.adjoint != nullptr;
  const int64_t items = by_image ? s.n : (units + ub - 1) / ub;
  const int use = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  scratch.resize({static_cast<int64_t>(use) * stride});
  float* part = scratch.data();
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
        if (fused_dx && n1 > n0)
          std::memset(dx + n0 * in_stride, 0, static_cast<size_t>((n1 - n0) * in_stride) * sizeof(float));
      }
      Workspace& ws = thread_workspace();
      float* v = ws.get(Workspace::kCol, static_cast<size_t>(sc.xi * winograd_plane(cin, ld)));
      float* dm = ws.get(Workspace::kCol2, static_cast<size_t>(sc.xi * winograd_plane(cout, ld)));
      float* dv = fused_dx ? ws.get(Workspace::kCol3, static_cast<size_t>(sc.xi * winograd_plane(cin, ld))) : nullptr;
      float* scratch = ws.get(Workspace::kKernel, static_cast<size_t>(winograd_input_scratch(cin, wg)));
      bool first = true;
      for (int64_t u0 = t0; u0 < t1; u0 += ub) {
        const int64_t u1 = std::min(t1, u0 + ub);
        const int64_t cols = (u1 - u0) * wg.tw;
        sc.input(x, cin, in_stride, wg, u0, u1, v, ld, scratch);
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
          gemm(a);
          if (fused_dx)  // dV[xi] (cin x cols) = U[xi]^T (cin x cout) dM[xi] (cout x cols)
            packed_product(cin, cols, cout, upt + xi * upanel, dm + xi * winograd_plane(cout, ld),
                           dv + xi * winograd_plane(cin, ld), ld);
        }
        if (fused_dx) sc.adjoint(dv, ld, cin, wg, u0, u1, dx, in_stride, relu_x ? x : nullptr);
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
