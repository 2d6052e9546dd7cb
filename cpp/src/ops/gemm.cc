#include "ops/gemm.hpp"

#include <algorithm>
#include <cstring>

#include "core/parallel.hpp"
#include "ops/workspace.hpp"
#include "dispatch/dispatch.hpp"

namespace cpucnn {

namespace {

constexpr int64_t kKc = 256;   // depth of a packed block (B micro-panel stays in L1)
constexpr int64_t kMc = 192;   // rows of A packed at once (L2)
constexpr int64_t kNc = 2048;  // columns of B packed at once (L2/L3)

inline float a_at(const GemmArgs& g, int64_t i, int64_t p) {
  return g.trans_a ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
}

// A[i0:i0+mc, p0:p0+kc] -> MR-row panels, each kc x MR, zero-padded rows.
void pack_a(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, float* dst) {
  for (int64_t ir = 0; ir < mc; ir += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ir);
    if (!g.trans_a) {
      for (int64_t i = 0; i < rows; ++i) {
        const float* src = g.a + (i0 + ir + i) * g.lda + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * mr + i] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.a + (p0 + p) * g.lda + i0 + ir;
        for (int64_t i = 0; i < rows; ++i) dst[p * mr + i] = src[i];
      }
    }
    if (rows < mr)
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t i = rows; i < mr; ++i) dst[p * mr + i] = 0.0f;
    dst += kc * mr;
  }
}

// B[p0:p0+kc, j0:j0+nc] -> NR-column panels, each kc x NR, zero-padded columns.
void pack_b(const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - jr);
    if (!g.trans_b) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.b + (p0 + p) * g.ldb + j0 + jr;
        float* d = dst + p * nr;
        std::memcpy(d, src, cols * sizeof(float));
        for (int64_t j = cols; j < nr; ++j) d[j] = 0.0f;
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = g.b + (j0 + jr + j) * g.ldb + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * nr + j] = src[p];
      }
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = cols; j < nr; ++j) dst[p * nr + j] = 0.0f;
    }
    dst += kc * nr;
  }
}

// One C tile [i0, i0+mc) x [j0, j0+nc), all of K.
void gemm_tile(const GemmArgs& g, const KernelTable& kt, int64_t i0, int64_t mc, int64_t j0, int64_t nc) {
  const int mr = kt.gemm_mr, nr = kt.gemm_nr;
  const int64_t mc_pad = (mc + mr - 1) / mr * mr, nc_pad = (nc + nr - 1) / nr * nr;
  Workspace& ws = thread_workspace();
  float* bp = ws.get(Workspace::kGemmB, static_cast<size_t>(std::min(g.k, kKc) * nc_pad));
  float* ap = ws.get(Workspace::kGemmA, static_cast<size_t>(std::min(g.k, kKc) * mc_pad));
  alignas(64) float edge[16 * 64];
  for (int64_t p0 = 0; p0 < g.k; p0 += kKc) {
    const int64_t kc = std::min(kKc, g.k - p0);
    const bool acc = g.accumulate || p0 > 0;
    pack_b(g, p0, kc, j0, nc, nr, bp);
    pack_a(g, i0, mc, p0, kc, mr, ap);
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int64_t cols = std::min<int64_t>(nr, nc - jr);
      for (int64_t ir = 0; ir < mc; ir += mr) {
        const int64_t rows = std::min<int64_t>(mr, mc - ir);
        float* c = g.c + (i0 + ir) * g.ldc + j0 + jr;
        const float* a = ap + ir * kc;
        const float* b = bp + jr * kc;
        if (rows == mr && cols == nr) {
          kt.gemm_ukernel(kc, a, b, c, g.ldc, acc);
        } else {
          kt.gemm_ukernel(kc, a, b, edge, nr, false);
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < cols; ++j)
              c[i * g.ldc + j] = acc ? c[i * g.ldc + j] + edge[i * nr + j] : edge[i * nr + j];
        }
      }
    }
  }
}

void gemm_empty_k(const GemmArgs& g) {
  if (g.accumulate) return;
  for (int64_t i = 0; i < g.m; ++i) std::memset(g.c + i * g.ldc, 0, g.n * sizeof(float));
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return gemm_empty_k(g);
  const KernelTable& kt = kernels();
  for (int64_t j0 = 0; j0 < g.n; j0 += kNc)
    for (int64_t i0 = 0; i0 < g.m; i0 += kMc)
      gemm_tile(g, kt, i0, std::min(kMc, g.m - i0), j0, std::min(kNc, g.n - j0));
}

void gemm_parallel(const GemmArgs& g, int threads) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return gemm_empty_k(g);
  const KernelTable& kt = kernels();
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
#pragma omp parallel for num_threads(use) schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t i0 = (t % mt) * kMc, j0 = (t / mt) * nc;
    gemm_tile(g, kt, i0, std::min(kMc, g.m - i0), j0, std::min(nc, g.n - j0));
  }
}

}  // namespace cpucnn
