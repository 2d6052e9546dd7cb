#include "ops/gemm.hpp"

#include <algorithm>
#include <cstring>

#include "core/parallel.hpp"
#include "ops/scratch.hpp"
#include "dispatch/dispatch.hpp"

namespace cpucnn {

namespace {

constexpr int64_t kMc = kGemmMc;  // rows of a C tile when tiles are split across threads
constexpr int64_t kNc = 2048;      // columns of B packed at once (L2/L3)

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The packing buffers of a GEMM of this size, one thread's: A panels for
// up to kGemmMc rows (a tile packs A that many rows at a time), then (from
// the next cache line) B panels for up to kNc columns, kc deep.
int64_t a_panels(const KernelTable& kt, int64_t m, int64_t k) {
  return round_up(std::min(k, kGemmKc) * round_up(std::min(m, kMc), kt.gemm_mr), 16);
}

int64_t packing_floats(const KernelTable& kt, int64_t m, int64_t n, int64_t k) {
  k = std::max<int64_t>(k, 1);
  return a_panels(kt, m, k) + std::min(k, kGemmKc) * round_up(std::min(n, kNc), kt.gemm_nr);
}

// One C tile over all of K with the packing buffers at `pack`
// (packing_floats(g.m, g.n, g.k) floats).
void run_tile(const GemmArgs& g, const KernelTable& kt, float* pack, int64_t i0, int64_t mc, int64_t j0,
              int64_t nc) {
  kt.gemm_tile(g, i0, mc, j0, nc, pack, pack + a_panels(kt, g.m, g.k));
}

// A few rows of A against B^T (Dense at small batch): dot products over
// contiguous rows of B^T, split over columns. Each element is computed the
// same way whatever the split, so results do not depend on the thread count.
constexpr int64_t kGemvMaxRows = 4;

bool use_gemv(const GemmArgs& g) { return g.trans_b && !g.trans_a && g.m <= kGemvMaxRows; }

void gemv_range(const GemmArgs& g, const KernelTable& kt, int64_t j0, int64_t j1) {
  for (int64_t i = 0; i < g.m; ++i)
    kt.gemv_rows(g.b + j0 * g.ldb, g.ldb, g.a + i * g.lda, g.k, g.c + i * g.ldc + j0, j1 - j0, g.accumulate);
}

void gemm_empty_k(const GemmArgs& g) {
  if (g.accumulate) return;
  for (int64_t i = 0; i < g.m; ++i) std::memset(g.c + i * g.ldc, 0, g.n * sizeof(float));
}

}  // namespace

int64_t gemm_packing_floats(int64_t m, int64_t n, int64_t k) { return packing_floats(kernels(), m, n, k); }

std::shared_ptr<const PackedGemmB> gemm_pack_b(const GemmArgs& g) {
  const KernelTable& kt = kernels();
  auto p = std::make_shared<PackedGemmB>();
  p->table = &kt;
  p->n = g.n;
  p->k = g.k;
  p->panels = Tensor({round_up(std::max<int64_t>(g.n, 1), kt.gemm_nr) * std::max<int64_t>(g.k, 1)});
  if (g.n > 0 && g.k > 0) kt.gemm_pack_b(g, p->panels.data());
  return p;
}

bool gemm_packed_b_current(const PackedGemmB& p, int64_t n, int64_t k) {
  return p.table == &kernels() && p.n == n && p.k == k;
}

namespace {

// One tile over all rows a column block: each block of B is packed once.
void gemm_tiles(const GemmArgs& g, const KernelTable& kt, float* pack) {
  for (int64_t j0 = 0; j0 < g.n; j0 += kNc) run_tile(g, kt, pack, 0, g.m, j0, std::min(kNc, g.n - j0));
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return gemm_empty_k(g);
  const KernelTable& kt = kernels();
  if (use_gemv(g)) return gemv_range(g, kt, 0, g.n);
  if (g.packing) return gemm_tiles(g, kt, g.packing);
  // No plan gave it buffers: a frame of its own (inside another op's
  // parallel region that is an allocation there, which no op of ours does:
  // tests count them, allocations_in_parallel_regions).
  ScratchLayout layout;
  const int64_t at = layout.per_thread(packing_floats(kt, g.m, g.n, g.k));
  ScratchFrame frame(layout, 1);
  gemm_tiles(g, kt, frame.thread(0, at));
}

void gemm_parallel(const GemmArgs& g, int threads) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return gemm_empty_k(g);
  const KernelTable& kt = kernels();
  if (use_gemv(g)) {
    const int64_t work = g.m * g.n * g.k;
    const int use = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, work >> 16)));
    if (use <= 1 || g.n < use) return gemv_range(g, kt, 0, g.n);
#pragma omp parallel for num_threads(use) schedule(static)
    for (int t = 0; t < use; ++t) gemv_range(g, kt, g.n * t / use, g.n * (t + 1) / use);
    return;
  }
  // Tiles small enough that every thread gets work, but no smaller than a
  // few micro-tiles (tiny GEMMs stay on one thread).
  const int64_t flops = g.m * g.n * g.k;
  if (threads <= 1 || flops < (int64_t(1) << 18)) return gemm(g);
  const int64_t mt = (g.m + kMc - 1) / kMc;
  int64_t nc = kNc;
  if (mt < threads * 2) {
    const int64_t want_nt = (threads * 2 + mt - 1) / mt;
    nc = std::max<int64_t>(kt.gemm_nr * 2, (g.n + want_nt - 1) / want_nt);
    nc = (nc + kt.gemm_nr - 1) / kt.gemm_nr * kt.gemm_nr;
    nc = std::min(nc, kNc);
  }
  const int64_t nt = (g.n + nc - 1) / nc;
  const int64_t tiles = mt * nt;
  const int use = static_cast<int>(std::min<int64_t>(threads, tiles));
  if (use <= 1) return gemm(g);
  // The team's packing buffers: the caller's, or reserved here, before the region.
  float* pack = g.packing;
  int64_t stride = g.packing_stride;
  ScratchLayout layout;
  const int64_t at = layout.per_thread(pack ? 0 : packing_floats(kt, g.m, g.n, g.k));
  ScratchFrame frame(layout, pack ? 0 : use);
  if (!pack) {
    pack = frame.thread(0, at);
    stride = frame.thread_stride();
  }
  RegionError err;
  // Tiles to whichever thread is free (each tile's C is computed whole by
  // one thread, so the result does not depend on the split).
#pragma omp parallel for num_threads(use) schedule(dynamic, 1)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t i0 = (t % mt) * kMc, j0 = (t / mt) * nc;
    err.run([&] { run_tile(g, kt, pack + thread_id() * stride, i0, std::min(kMc, g.m - i0), j0, std::min(nc, g.n - j0)); });
  }
  err.rethrow();
}

}  // namespace cpucnn
