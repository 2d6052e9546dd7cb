#include "ops/winograd.hpp"

#include <algorithm>
#include <cstring>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/winograd.hpp"
#include "ops/gemm.hpp"
#include "ops/workspace.hpp"

namespace cpucnn {

namespace {

constexpr int kXi = 16;  // points of the 4x4 transform domain
// Below this many tiles per call (small images at batch 1) transforming the
// weights costs more than the multiplies saved: im2col + GEMM runs instead.
constexpr int64_t kMinTiles = 256;
// With the weights prepared once (inference), from this many.
constexpr int64_t kMinTilesPrepared = 64;

// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
constexpr float kG[4][3] = {{1.0f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.0f, 0.0f, 1.0f}};

WinogradGeometry tiles_of(const ConvGeometry& g) {
  return WinogradGeometry{g.h, g.w, g.ho, g.wo, g.ph, g.pw, (g.ho + 1) / 2, (g.wo + 1) / 2};
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
void pack_transformed(const float* u, int64_t rows, int64_t cols, bool transpose, float* dst) {
  GemmTile t;
  t.trans_a = transpose;
  t.m = transpose ? cols : rows;
  t.k = transpose ? rows : cols;
  t.lda = cols;
  for (int xi = 0; xi < kXi; ++xi) {
    t.a = u + xi * rows * cols;
    kernels().gemm_pack_a(t, dst + xi * packed_size(t.m, t.k));
  }
}

// Units (tile rows) per block: the transformed input and output of a block
// (16 x channels x columns each) stay within about 1 MiB of L2; every thread
// gets a block when that leaves blocks at least one GEMM panel (32 columns)
// wide; among the sizes allowed, the one that wastes least of its last panel.
// (Splitting a block's 16 products between threads instead was 1.6x slower
// at batch 1: the transformed data then crosses between the cores' caches.)
int64_t units_per_block(int64_t units, int64_t tw, int64_t channels, int threads) {
  constexpr int64_t kPanel = 32;
  const int64_t cols = std::clamp<int64_t>(int64_t(8192) / std::max<int64_t>(channels, 1), kPanel, 512);
  int64_t most = std::max<int64_t>(1, cols / tw);
  const int64_t fair = (units + threads - 1) / threads;
  most = std::max<int64_t>(1, std::min(most, std::max(fair, (kPanel + tw - 1) / tw)));
  // Few blocks in all (small images at batch 1): equal shares, whatever
  // their last panel wastes (a thread with one block more keeps the rest waiting).
  if (threads > 1 && (units + most - 1) / most <= threads && fair * tw >= kPanel / 2) return fair;
  int64_t best = most;
  double best_use = 0.0;
  for (int64_t ub = most; ub >= std::max<int64_t>(1, most / 2); --ub) {
    const int64_t c = ub * tw;
    const double use = static_cast<double>(c) / static_cast<double>((c + kPanel - 1) / kPanel * kPanel);
    if (use > best_use + 1e-9) {
      best = ub;
      best_use = use;
    }
  }
  return best;
}

// y = winograd conv of x (cin planes) with the 16 transformed kernels
// packed as GEMM A panels (`up`, packed_size(cout, cin) floats apart).
void forward_packed(int64_t n, int64_t cin, int64_t cout, const WinogradGeometry& wg, const float* x,
                    const float* up, const float* bias, float* y, bool relu, int threads) {
  const KernelTable& kt = kernels();
  const int64_t upanel = packed_size(cout, cin);
  const int64_t units = n * wg.th;
  const int64_t ub = units_per_block(units, wg.tw, std::max(cin, cout), threads);
  const int64_t blocks = (units + ub - 1) / ub;
  const int64_t ld = ub * wg.tw;
  const int64_t in_stride = cin * wg.h * wg.w, out_stride = cout * wg.ho * wg.wo;
  const int64_t vsize = kXi * winograd_plane(cin, ld), msize = kXi * winograd_plane(cout, ld);
  const int use = static_cast<int>(std::min<int64_t>(threads, blocks));
#pragma omp parallel for num_threads(use) schedule(static) if (use > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t u0 = b * ub, u1 = std::min(units, u0 + ub);
    const int64_t cols = (u1 - u0) * wg.tw;
    Workspace& ws = thread_workspace();
    float* v = ws.get(Workspace::kCol, static_cast<size_t>(vsize));
    float* m = ws.get(Workspace::kCol2, static_cast<size_t>(msize));
    kt.winograd_input(x, cin, in_stride, wg, u0, u1, v, ld);
    for (int xi = 0; xi < kXi; ++xi)  // M[xi] (cout x cols) = U[xi] (cout x cin) V[xi] (cin x cols)
      packed_product(cout, cols, cin, up + xi * upanel, v + xi * winograd_plane(cin, ld),
                     m + xi * winograd_plane(cout, ld), ld);
    kt.winograd_output(m, ld, cout, bias, relu, wg, u0, u1, y, out_stride);
  }
}

// U[xi] = (G w G^T)[xi] of the weights w (cout x cin x 3 x 3): 16 planes of
// cout x cin in this thread's workspace.
float* transform_weights(const float* w, int64_t cout, int64_t cin) {
  float* u = thread_workspace().get(Workspace::kTmp2, static_cast<size_t>(kXi * cout * cin));
  kernels().winograd_weights(w, cout, cin, cin * 9, 9, false, u);
  return u;
}

// The same with transformed weights u (16 x cout x cin), packed here.
void forward_transformed(int64_t n, int64_t cin, int64_t cout, const WinogradGeometry& wg, const float* x,
                         const float* u, const float* bias, float* y, bool relu, int threads) {
  float* up = thread_workspace().get(Workspace::kTmp, static_cast<size_t>(kXi * packed_size(cout, cin)));
  pack_transformed(u, cout, cin, false, up);
  forward_packed(n, cin, cout, wg, x, up, bias, y, relu, threads);
}

}  // namespace

bool winograd_applicable(const Conv2dShape& s) {
  const ConvGeometry& g = s.geo;
  return kernels().winograd_input != nullptr && s.groups == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 &&
         g.sw == 1 && g.dh == 1 && g.dw == 1 && s.cin >= 8 && s.cout >= 8 && g.ho >= 2 && g.wo >= 2;
}

namespace {

int64_t tile_count(const Conv2dShape& s) { return s.n * ((s.geo.ho + 1) / 2) * ((s.geo.wo + 1) / 2); }

}  // namespace

bool winograd_pays(const Conv2dShape& s) { return tile_count(s) >= kMinTiles; }
bool winograd_prepared_pays(const Conv2dShape& s) { return tile_count(s) >= kMinTilesPrepared; }

std::shared_ptr<const WinogradWeights> winograd_prepare(const Conv2dShape& s, const float* w) {
  auto p = std::make_shared<WinogradWeights>();
  p->table = &kernels();
  p->cout = s.cout;
  p->cin = s.cin;
  const int64_t count = s.cout * s.cin * 9;
  p->source.assign(w, w + count);
  p->packed.resize({kXi * packed_size(s.cout, s.cin)});
  pack_transformed(transform_weights(w, s.cout, s.cin), s.cout, s.cin, false, p->packed.data());
  return p;
}

bool winograd_prepared_for(const WinogradWeights& p, const Conv2dShape& s, const float* w) {
  return p.table == &kernels() && p.cout == s.cout && p.cin == s.cin &&
         static_cast<int64_t>(p.source.size()) == s.cout * s.cin * 9 &&
         std::memcmp(p.source.data(), w, p.source.size() * sizeof(float)) == 0;
}

void winograd_forward_prepared(const Conv2dShape& s, const float* x, const WinogradWeights& p, const float* bias,
                               float* y, bool relu, int threads) {
  forward_packed(s.n, s.cin, s.cout, tiles_of(s.geo), x, p.packed.data(), bias, y, relu, threads);
}

void winograd_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                      int threads) {
  forward_transformed(s.n, s.cin, s.cout, tiles_of(s.geo), x, transform_weights(w, s.cout, s.cin), bias, y, relu,
                      threads);
}

namespace {

// dx as a forward Winograd pass over dy: dx = conv(dy, w') with
// w'[c][k][i][j] = w[k][c][2 - i][2 - j] and padding 2 - p.
void backward_data_as_forward(const Conv2dShape& s, const float* w, const float* dy, float* dx, int threads) {
  float* u = thread_workspace().get(Workspace::kTmp2, static_cast<size_t>(kXi * s.cout * s.cin));
  kernels().winograd_weights(w, s.cin, s.cout, 9, s.cin * 9, true, u);
  const ConvGeometry& g = s.geo;
  const WinogradGeometry wg{g.ho, g.wo, g.h, g.w, 2 - g.ph, 2 - g.pw, (g.h + 1) / 2, (g.w + 1) / 2};
  forward_transformed(s.n, s.cout, s.cin, wg, dy, u, nullptr, dx, false, threads);
}

}  // namespace

bool winograd_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db, int threads, Tensor& scratch, bool relu_x) {
  const KernelTable& kt = kernels();
  // With the adjoint kernel, dx comes out of the weight-gradient pass: it
  // already holds dM = A e A^T per tile, so dV = U^T dM (a GEMM) and dx =
  // the overlap-add of B dV B^T: no transform of dy on its own grid.
  const bool fused_dx = dx && kt.winograd_input_adjoint;
  if (dx && !fused_dx) backward_data_as_forward(s, w, dy, dx, threads);
  const WinogradGeometry wg = tiles_of(s.geo);
  const int64_t cin = s.cin, cout = s.cout;
  const int64_t units = s.n * wg.th;
  const int64_t ub = units_per_block(units, wg.tw, std::max(cin, cout), 1);
  const int64_t ld = ub * wg.tw;
  // Per thread: its dU partial, then (with db) its bias partials, cout
  // doubles. The bias gradient comes from dM: with A^T = [1 1 1 0; 0 1 -1 -1],
  // dM[5] = (A e A^T)[1][1] is the sum of the tile's 2x2 dy values, so db is
  // the sum of plane 5 of dM, read while it is in cache (not dy again).
  const int64_t usize = kXi * cout * cin;
  const int64_t bias_at = (usize + 15) / 16 * 16;
  const int64_t stride = db ? bias_at + (2 * cout + 15) / 16 * 16 : bias_at;
  const int64_t in_stride = cin * wg.h * wg.w, out_stride = cout * wg.ho * wg.wo;
  // U^T packed for the dV GEMMs (cin x cout per xi).
  const int64_t upanel = packed_size(cin, cout);
  float* upt = nullptr;
  if (fused_dx) {
    const float* u = transform_weights(w, cout, cin);
    upt = thread_workspace().get(Workspace::kTmp, static_cast<size_t>(kXi * upanel));
    pack_transformed(u, cout, cin, true, upt);
  }
  // Threads take whole images where dx may come out of this pass
  // (overlapping patches of one image are added by one thread, in order),
  // whether or not it does this time, so dw does not depend on it.
  const bool by_image = kt.winograd_input_adjoint != nullptr;
  const int64_t items = by_image ? s.n : (units + ub - 1) / ub;
  const int use = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  scratch.resize({static_cast<int64_t>(use) * stride});
  float* part = scratch.data();
#pragma omp parallel num_threads(use) if (use > 1)
  {
    const int t = thread_id(), team = team_size();
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
    float* v = ws.get(Workspace::kCol, static_cast<size_t>(kXi * winograd_plane(cin, ld)));
    float* dm = ws.get(Workspace::kCol2, static_cast<size_t>(kXi * winograd_plane(cout, ld)));
    float* dv = fused_dx ? ws.get(Workspace::kCol3, static_cast<size_t>(kXi * winograd_plane(cin, ld))) : nullptr;
    bool first = true;
    for (int64_t u0 = t0; u0 < t1; u0 += ub) {
      const int64_t u1 = std::min(t1, u0 + ub);
      const int64_t cols = (u1 - u0) * wg.tw;
      kt.winograd_input(x, cin, in_stride, wg, u0, u1, v, ld);
      kt.winograd_grad_output(dy, cout, out_stride, wg, u0, u1, dm, ld);
      if (bsum)
        for (int64_t k = 0; k < cout; ++k) bsum[k] += kt.sum(dm + 5 * winograd_plane(cout, ld) + k * ld, cols);
      for (int xi = 0; xi < kXi; ++xi) {
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
      if (fused_dx) kt.winograd_input_adjoint(dv, ld, cin, wg, u0, u1, dx, in_stride, relu_x ? x : nullptr);
      first = false;
    }
    if (first) std::memset(du, 0, usize * sizeof(float));
#pragma omp barrier
    // dW = G^T (sum of partials, in thread order) G, per (k, c) pair.
#pragma omp for schedule(static)
    for (int64_t kc = 0; kc < cout * cin; ++kc) {
      float d[4][4];
      for (int xi = 0; xi < kXi; ++xi) {
        float acc = part[xi * cout * cin + kc];
        for (int o = 1; o < team; ++o) acc += part[o * stride + xi * cout * cin + kc];
        d[xi / 4][xi % 4] = acc;
      }
      float t3[3][4];  // G^T d
      for (int i = 0; i < 3; ++i)
        for (int q = 0; q < 4; ++q)
          t3[i][q] = kG[0][i] * d[0][q] + kG[1][i] * d[1][q] + kG[2][i] * d[2][q] + kG[3][i] * d[3][q];
      float* out = dw + kc * 9;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          out[i * 3 + j] = t3[i][0] * kG[0][j] + t3[i][1] * kG[1][j] + t3[i][2] * kG[2][j] + t3[i][3] * kG[3][j];
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
  return fused_dx && relu_x;
}

}  // namespace cpucnn
