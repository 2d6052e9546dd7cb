#include "ops/conv2d.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "ops/gemm.hpp"
#include "ops/winograd.hpp"
#include "ops/workspace.hpp"

namespace cpucnn {

namespace {

constexpr int64_t kColBudget = int64_t(1) << 20;  // floats of im2col per thread (4 MiB)
constexpr int64_t kMinCols = 512;                 // GEMM width worth batching samples for

struct Plan {
  int64_t cg, mg, k, p;   // in channels per group, out channels per group, GEMM depth, pixels
  int64_t chunk;          // samples per chunk
  int64_t chunks;
  int threads;
  bool batch_parallel;    // threads over chunks (else inside each GEMM)
  bool direct;            // 1x1, stride 1, no padding: the input is its own im2col
};

Plan make_plan(const Conv2dShape& s) {
  kernels();  // resolve the table before any parallel region (it may throw)
  const ConvGeometry& g = s.geo;
  Plan p;
  p.cg = s.cin / s.groups;
  p.mg = s.cout / s.groups;
  p.k = p.cg * g.kh * g.kw;
  p.p = g.ho * g.wo;
  p.threads = std::max(1, get_num_threads());
  const int64_t per_sample = std::max<int64_t>(1, p.k * p.p);
  const int64_t cap = std::max<int64_t>(1, kColBudget / per_sample);
  const int64_t fair = (s.n + p.threads - 1) / p.threads;
  // Enough samples per chunk for a GEMM about kMinCols wide; a single sample
  // needs no gather/scatter at all.
  const int64_t wide = (kMinCols + p.p - 1) / p.p;
  p.chunk = std::max<int64_t>(1, std::min({cap, fair, wide}));
  p.chunks = (s.n + p.chunk - 1) / p.chunk;
  // Threads only pay for work well above an OpenMP fork/join.
  const int64_t macs = s.n * s.cout * p.k * p.p;
  if (macs < (int64_t(1) << 17)) p.threads = 1;
  p.batch_parallel = p.threads > 1 && p.chunks >= p.threads;
  p.direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
             g.ho == g.h && g.wo == g.w;
  return p;
}

void run_gemm(const GemmArgs& a, const Plan& plan) {
  if (plan.batch_parallel || plan.threads <= 1)
    gemm(a);
  else
    gemm_parallel(a, plan.threads);
}

// Fills col (k x ld) for group g of samples [n0, n0+ns).
const float* unfold(const Conv2dShape& s, const Plan& plan, const float* x, int64_t n0, int64_t ns, int64_t g,
                    float* col) {
  const int64_t hw = s.geo.h * s.geo.w;
  const int64_t ld = ns * plan.p;
  if (plan.direct && ns == 1) return x + n0 * s.cin * hw + g * plan.cg * hw;
  for (int64_t i = 0; i < ns; ++i)
    kernels().im2col(x + (n0 + i) * s.cin * hw + g * plan.cg * hw, s.geo, plan.cg, col + i * plan.p, ld);
  return col;
}

// Whether the forward GEMM can unfold its input while packing (no im2col
// buffer): the ISA has the kernel and the stride along W is 1.
bool use_implicit(const Conv2dShape& s, const Plan& plan, int64_t ns) {
  return kernels().im2col_pack != nullptr && s.geo.sw == 1 && !(plan.direct && ns == 1);
}

void forward_chunk(const Conv2dShape& s, const Plan& plan, const float* x, const float* w, const float* bias,
                   float* y, bool relu, int64_t n0, int64_t ns) {
  Workspace& ws = thread_workspace();
  const int64_t ld = ns * plan.p;
  const int64_t hw = s.geo.h * s.geo.w;
  float* col = use_implicit(s, plan, ns) ? nullptr : ws.get(Workspace::kCol, static_cast<size_t>(plan.k * ld));
  float* out = ns == 1 ? y + n0 * s.cout * plan.p : ws.get(Workspace::kTmp, static_cast<size_t>(s.cout * ld));
  for (int64_t g = 0; g < s.groups; ++g) {
    GemmArgs a;
    a.m = plan.mg;
    a.n = ld;
    a.k = plan.k;
    a.a = w + g * plan.mg * plan.k;
    a.lda = plan.k;
    Im2colPackArgs pack{x + n0 * s.cin * hw + g * plan.cg * hw, s.cin * hw, plan.cg, &s.geo};
    if (use_implicit(s, plan, ns)) {
      a.pack_b_fn = kernels().im2col_pack;
      a.pack_b_ctx = &pack;
    } else {
      a.b = unfold(s, plan, x, n0, ns, g, col);
    }
    a.ldb = ld;
    a.c = out + g * plan.mg * ld;
    a.ldc = ld;
    run_gemm(a, plan);
  }
  // Scatter to NCHW with bias (and ReLU).
  for (int64_t i = 0; i < ns; ++i) {
    for (int64_t co = 0; co < s.cout; ++co) {
      const float* src = out + co * ld + i * plan.p;
      float* dst = y + ((n0 + i) * s.cout + co) * plan.p;
      const float b = bias ? bias[co] : 0.0f;
      if (relu) {
        for (int64_t q = 0; q < plan.p; ++q) {
          const float v = src[q] + b;
          dst[q] = v < 0.0f ? 0.0f : v;
        }
      } else if (src != dst || b != 0.0f) {
        for (int64_t q = 0; q < plan.p; ++q) dst[q] = src[q] + b;
      }
    }
  }
}

// Accumulates (or, when first, overwrites) dw/db partials for a chunk and
// writes dx for its samples.
void backward_chunk(const Conv2dShape& s, const Plan& plan, const float* x, const float* w, const float* dy,
                    float* dx, float* dw, float* db, bool first, int64_t n0, int64_t ns) {
  Workspace& ws = thread_workspace();
  const int64_t ld = ns * plan.p;
  const int64_t hw = s.geo.h * s.geo.w;
  // dy for the chunk as (cout x ld).
  const float* dyc;
  if (ns == 1) {
    dyc = dy + n0 * s.cout * plan.p;
  } else {
    float* t = ws.get(Workspace::kTmp, static_cast<size_t>(s.cout * ld));
    for (int64_t i = 0; i < ns; ++i)
      for (int64_t co = 0; co < s.cout; ++co)
        std::memcpy(t + co * ld + i * plan.p, dy + ((n0 + i) * s.cout + co) * plan.p, plan.p * sizeof(float));
    dyc = t;
  }
  if (db) {
    for (int64_t co = 0; co < s.cout; ++co) {
      const float acc = static_cast<float>(kernels().sum(dyc + co * ld, ld));
      db[co] = first ? acc : db[co] + acc;
    }
  }
  if (dx)
    for (int64_t i = 0; i < ns; ++i) std::memset(dx + (n0 + i) * s.cin * hw, 0, s.cin * hw * sizeof(float));
  float* col = ws.get(Workspace::kCol, static_cast<size_t>(plan.k * ld));
  float* dcol = dx ? ws.get(Workspace::kCol2, static_cast<size_t>(plan.k * ld)) : nullptr;
  for (int64_t g = 0; g < s.groups; ++g) {
    const float* dyg = dyc + g * plan.mg * ld;
    const float* wg = w + g * plan.mg * plan.k;
    GemmArgs gw;  // dw_g (mg x k) += dy_g (mg x ld) * col^T (ld x k)
    gw.trans_b = true;
    gw.m = plan.mg;
    gw.n = plan.k;
    gw.k = ld;
    gw.a = dyg;
    gw.lda = ld;
    gw.b = unfold(s, plan, x, n0, ns, g, col);
    gw.ldb = ld;
    gw.c = dw + g * plan.mg * plan.k;
    gw.ldc = plan.k;
    gw.accumulate = !first;
    run_gemm(gw, plan);
    if (dx) {
      GemmArgs gd;  // dcol (k x ld) = w_g^T (k x mg) * dy_g (mg x ld)
      gd.trans_a = true;
      gd.m = plan.k;
      gd.n = ld;
      gd.k = plan.mg;
      gd.a = wg;
      gd.lda = plan.k;
      gd.b = dyg;
      gd.ldb = ld;
      gd.c = dcol;
      gd.ldc = ld;
      run_gemm(gd, plan);
      for (int64_t i = 0; i < ns; ++i)
        kernels().col2im(dcol + i * plan.p, ld, s.geo, plan.cg, dx + (n0 + i) * s.cin * hw + g * plan.cg * hw);
    }
  }
}

}  // namespace

namespace {

// Few samples, several threads: each thread takes a slab of output rows of a
// sample and runs its own im2col + GEMM + bias/ReLU on it (no barrier, and
// the result does not depend on the split).
void forward_spatial(const Conv2dShape& s, const Plan& plan, const float* x, const float* w, const float* bias,
                     float* y, bool relu) {
  const ConvGeometry& geo = s.geo;
  const int64_t hw = geo.h * geo.w;
  const int64_t slabs = std::min<int64_t>(plan.threads, geo.ho);
  RegionError err;
#pragma omp parallel for num_threads(static_cast<int>(slabs)) schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t t = 0; t < slabs; ++t) err.run([&] {
      const int64_t oh0 = geo.ho * t / slabs, oh1 = geo.ho * (t + 1) / slabs;
      if (oh1 <= oh0) return;
      ConvGeometry part = geo;  // output rows [oh0, oh1) only
      part.ho = oh1 - oh0;
      part.ph = geo.ph - oh0 * geo.sh;
      const int64_t cols = part.ho * geo.wo;
      const bool implicit = use_implicit(s, plan, 1) && !plan.direct;
      float* col = implicit ? nullptr : thread_workspace().get(Workspace::kCol, static_cast<size_t>(plan.k * cols));
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* xg = x + n * s.cin * hw + g * plan.cg * hw;
        Im2colPackArgs pack{xg, s.cin * hw, plan.cg, &part};
        GemmArgs a;
        if (implicit) {
          a.pack_b_fn = kernels().im2col_pack;
          a.pack_b_ctx = &pack;
        } else {
          kernels().im2col(xg, part, plan.cg, col, cols);
          a.b = col;
        }
        a.m = plan.mg;
        a.n = cols;
        a.k = plan.k;
        a.a = w + g * plan.mg * plan.k;
        a.lda = plan.k;
        a.ldb = cols;
        a.c = y + (n * s.cout + g * plan.mg) * plan.p + oh0 * geo.wo;
        a.ldc = plan.p;
        gemm(a);
      }
      for (int64_t co = 0; co < s.cout; ++co) {
        float* d = y + (n * s.cout + co) * plan.p + oh0 * geo.wo;
        const float b = bias ? bias[co] : 0.0f;
        if (relu) {
          for (int64_t q = 0; q < cols; ++q) d[q] = d[q] + b < 0.0f ? 0.0f : d[q] + b;
        } else if (b != 0.0f) {
          for (int64_t q = 0; q < cols; ++q) d[q] += b;
        }
      }
    });
  }
  err.rethrow();
}

}  // namespace

namespace {

// Thin layers (few output channels) are faster as a direct convolution than
// as a GEMM that must unfold and pack its input (measured with
// benchmarks/bench_kernels.py: lenet5's convs gain 1.3-2x; with 32 output
// channels the GEMM is already as fast).
bool use_direct(const Conv2dShape& s, const Plan&) {
  return kernels().conv_direct_fwd != nullptr && s.groups == 1 && s.geo.sw == 1 && s.geo.dw == 1 && s.cout <= 16;
}

// The lane kernels' buffers per thread (kernels/conv_lanes/, conv_batch/:
// a padded input, an output or dy, dw lane sums) stay within kLaneScratch
// floats (4 MiB): they are for small maps, whose buffers sit in L2.
constexpr int64_t kLaneScratch = int64_t(1) << 20;

// Layers with 16 or 32 output channels and a short reduction: the output
// channels in the lanes (kernels/conv_lanes/), images split over threads
// (so only with an image per thread; at batch 1 the direct kernel splits
// rows). Forward from 64 taps x input channels: below that the padded copy
// and the transposes cost more than the products (convnet_s and vgg_s
// conv1, 9 and 27: 1.1-1.4x slower than im2col + GEMM at batch 64, while
// lenet5 conv2, 150, runs 2.5-3x faster). The weight gradient pays
// throughout (1.4-2.3x on those three); see lanes_dw.
bool lanes_shape(const Conv2dShape& s, const Plan& plan) {
  const ConvGeometry& g = s.geo;
  return kernels().conv_lanes_fwd != nullptr && s.groups == 1 && g.sw == 1 && g.dw == 1 && s.cout % 16 == 0 &&
         s.cout <= 32 && plan.k <= 256 && s.n >= plan.threads &&
         conv2d_lanes_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

bool use_lanes(const Conv2dShape& s, const Plan& plan) { return lanes_shape(s, plan) && plan.k >= 64; }

// The layout of the weights it reads: wl[ci][i][j][co].
void forward_lanes(const Conv2dShape& s, const Plan& plan, const float* x, const float* w, const float* bias,
                   float* y, bool relu) {
  const KernelTable& kt = kernels();
  float* wl = thread_workspace().get(Workspace::kTmp2, static_cast<size_t>(s.cout * plan.k));
  for (int64_t co = 0; co < s.cout; ++co)
    for (int64_t k = 0; k < plan.k; ++k) wl[k * s.cout + co] = w[co * plan.k + k];
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * plan.p;
  const int64_t per = conv2d_lanes_scratch(s.cin, s.cout, s.geo);
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(plan.threads, s.n));
  RegionError err;
#pragma omp parallel num_threads(use) if (use > 1)
  err.run([&] {
    const int t = thread_id(), team = team_size();
    const int64_t n0 = s.n * t / team, n1 = s.n * (t + 1) / team;
    float* sc = thread_workspace().get(Workspace::kCol, static_cast<size_t>(per));
    if (n1 > n0)
      kt.conv_lanes_fwd(x + n0 * in_size, wl, bias, y + n0 * out_size, n1 - n0, s.cin, s.cout, s.geo, relu, sc);
  });
  err.rethrow();
}

// Thin layers (<= 16 output channels) with 16 images or more per thread:
// 16 images in the lanes (kernels/conv_batch/), groups of 16 split over
// threads. Every lane is useful whatever the row width, and taps over the
// padding are skipped, which the full convolution of backward-data is full
// of (lenet5 conv2's dx: a 10x10 map padded to 18x18).
bool use_batch(const Conv2dShape& s, const Plan& plan) {
  return kernels().conv_batch_fwd != nullptr && s.groups == 1 && s.geo.sw == 1 && s.geo.dw == 1 && s.cout <= 16 &&
         s.n >= 16 * plan.threads && conv2d_batch_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

void forward_batch(const Conv2dShape& s, const Plan& plan, const float* x, const float* w, const float* bias,
                   float* y, bool relu) {
  const KernelTable& kt = kernels();
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * s.geo.ho * s.geo.wo;
  const int64_t per = conv2d_batch_scratch(s.cin, s.cout, s.geo);
  const int64_t groups = (s.n + 15) / 16;
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(plan.threads, groups));
  RegionError err;
#pragma omp parallel num_threads(use) if (use > 1)
  err.run([&] {
    const int t = thread_id(), team = team_size();
    const int64_t n0 = 16 * (groups * t / team), n1 = std::min(s.n, 16 * (groups * (t + 1) / team));
    float* sc = thread_workspace().get(Workspace::kCol, static_cast<size_t>(per));
    if (n1 > n0)
      kt.conv_batch_fwd(x + n0 * in_size, w, bias, y + n0 * out_size, n1 - n0, s.cin, s.cout, s.geo, relu, sc);
  });
  err.rethrow();
}

// Work items are (sample, slab of output rows); each writes its own outputs.
void forward_direct(const Conv2dShape& s, const Plan& plan, const float* x, const float* w, const float* bias,
                    float* y, bool relu) {
  const ConvDirectFwdFn fn = kernels().conv_direct_fwd;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * plan.p;
  const int64_t slabs = plan.threads > 1 && s.n < plan.threads ? std::min<int64_t>(plan.threads, s.geo.ho) : 1;
  const int64_t items = s.n * slabs;
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(plan.threads, items));
#pragma omp parallel for num_threads(use) schedule(static) if (use > 1)
  for (int64_t t = 0; t < items; ++t) {
    const int64_t n = t / slabs, k = t % slabs;
    fn(x + n * in_size, w, bias, y + n * out_size, s.cin, s.cout, s.geo, s.geo.ho * k / slabs,
       s.geo.ho * (k + 1) / slabs, relu);
  }
}

}  // namespace

namespace {

std::atomic<int> g_winograd{static_cast<int>(WinogradMode::kAuto)};

bool use_winograd(const Conv2dShape& s) {
  const auto mode = static_cast<WinogradMode>(g_winograd.load(std::memory_order_relaxed));
  if (mode == WinogradMode::kNever || !winograd_applicable(s)) return false;
  return mode == WinogradMode::kAlways || winograd_pays(s);
}

}  // namespace

void conv2d_bias_grad(const float* dy, int64_t n, int64_t cout, int64_t plane, float* db) {
  const KernelTable& kt = kernels();
#pragma omp for schedule(static)
  for (int64_t co = 0; co < cout; ++co) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) acc += kt.sum(dy + (i * cout + co) * plane, plane);
    db[co] = static_cast<float>(acc);
  }
}

void Conv2dWeightCache::forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                                bool relu, uint64_t version) {
  const auto mode = static_cast<WinogradMode>(g_winograd.load(std::memory_order_relaxed));
  if (mode == WinogradMode::kNever || !winograd_applicable(s) ||
      (mode == WinogradMode::kAuto && !winograd_prepared_pays(s)))
    return conv2d_forward(s, x, w, bias, y, relu);
  const Plan plan = make_plan(s);
  std::shared_ptr<const WinogradWeights> p;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<const WinogradWeights>& slot = winograd_[winograd_tile_for(s) == 4 ? 1 : 0];
    if (!slot || !winograd_prepared_for(*slot, s, version)) slot = winograd_prepare(s, w, version);
    p = slot;
  }
  winograd_forward_prepared(s, x, *p, bias, y, relu, plan.threads);
}

void set_conv2d_winograd(WinogradMode mode) { g_winograd.store(static_cast<int>(mode)); }
WinogradMode conv2d_winograd() { return static_cast<WinogradMode>(g_winograd.load()); }

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  const Plan plan = make_plan(s);
  if (use_winograd(s)) return winograd_forward(s, x, w, bias, y, relu, plan.threads);
  if (use_lanes(s, plan)) return forward_lanes(s, plan, x, w, bias, y, relu);
  if (use_batch(s, plan)) return forward_batch(s, plan, x, w, bias, y, relu);
  if (use_direct(s, plan)) return forward_direct(s, plan, x, w, bias, y, relu);
  if (plan.batch_parallel) {
    RegionError err;
#pragma omp parallel for num_threads(plan.threads) schedule(static, 1)
    for (int64_t c = 0; c < plan.chunks; ++c) {
      const int64_t n0 = c * plan.chunk;
      err.run([&] { forward_chunk(s, plan, x, w, bias, y, relu, n0, std::min(plan.chunk, s.n - n0)); });
    }
    err.rethrow();
  } else if (plan.threads > 1 && s.geo.ho > 1 && s.cout * plan.k * plan.p * s.n >= (int64_t(1) << 18)) {
    forward_spatial(s, plan, x, w, bias, y, relu);
  } else {
    for (int64_t c = 0; c < plan.chunks; ++c) {
      const int64_t n0 = c * plan.chunk;
      forward_chunk(s, plan, x, w, bias, y, relu, n0, std::min(plan.chunk, s.n - n0));
    }
  }
}

namespace {

// With stride 1 and dilation 1, dx is the "full" convolution of dy with the
// kernel flipped and its channel axes swapped. When that convolution is thin
// it runs on the direct kernel instead of a GEMM followed by col2im.
bool direct_dx(const Conv2dShape& s) {
  const ConvGeometry& g = s.geo;
  return kernels().conv_direct_fwd != nullptr && s.groups == 1 && g.sh == 1 && g.sw == 1 && g.dh == 1 &&
         g.dw == 1 && g.ph <= g.kh - 1 && g.pw <= g.kw - 1 && s.cin <= 16;
}

void backward_data_direct(const Conv2dShape& s, const Plan& plan, const float* w, const float* dy, float* dx) {
  const ConvGeometry& g = s.geo;
  const int64_t taps = g.kh * g.kw;
  // w'[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j]
  float* wt = thread_workspace().get(Workspace::kTmp2, static_cast<size_t>(s.cout * s.cin * taps));
  for (int64_t co = 0; co < s.cout; ++co)
    for (int64_t ci = 0; ci < s.cin; ++ci)
      for (int64_t t = 0; t < taps; ++t)
        wt[(ci * s.cout + co) * taps + (taps - 1 - t)] = w[(co * s.cin + ci) * taps + t];
  Conv2dShape t;
  t.n = s.n;
  t.cin = s.cout;
  t.cout = s.cin;
  t.groups = 1;
  t.geo = ConvGeometry{g.ho, g.wo, g.h, g.w, g.kh, g.kw, 1, 1, g.kh - 1 - g.ph, g.kw - 1 - g.pw, 1, 1};
  Plan tp = plan;
  tp.p = g.h * g.w;
  if (use_batch(t, tp))
    forward_batch(t, tp, dy, wt, nullptr, dx, false);
  else
    forward_direct(t, tp, dy, wt, nullptr, dx, false);
}

// Thin layers' weight gradient straight from x and dy (no im2col, whose
// unfolded copy is kh*kw times the input, feeding a GEMM that is mostly
// padding when it has fewer than 8 rows (output channels) or 16 columns
// (cin*kh*kw)). Measured (benchmarks/bench_kernels.py, batch 256): lenet5
// conv1 (6 out) 1.5x and convnet_s conv1 (9 taps) 1.25x faster this way;
// lenet5 conv2 (16 x 150) and vgg_s conv1 (32 x 27) are faster as GEMMs
// (all four now run on a lane kernel first, where one applies: lanes_dw,
// batch_dw).
// Images are split over threads into partial sums added in thread order.
bool direct_dw(const Conv2dShape& s) {
  const ConvGeometry& g = s.geo;
  return kernels().conv_direct_bwd_w != nullptr && s.groups == 1 && g.sw == 1 && g.dw == 1 &&
         (s.cout < 8 || s.cin * g.kh * g.kw < 16);
}

// Weight gradients with the images split over threads, in runs of `unit`
// (whole groups of 16 for the batch kernel): fn(n0, n1, part) writes the
// partial of images [n0, n1) into the thread's `part` (wsize floats, layout
// of its own); dw[i] = the partials' part[at(i)] added in thread order.
// db from dy. The split depends only on the team size.
template <class Fn, class At>
void weight_grad_by_images(const Conv2dShape& s, const Plan& plan, int64_t unit, const float* dy, float* dw,
                           float* db, Tensor& scratch, Fn fn, At at) {
  const int64_t wsize = s.cout * plan.k;
  const int64_t units = (s.n + unit - 1) / unit;
  const int T = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(plan.threads, units)));
  const int64_t stride = (wsize + 15) / 16 * 16;
  scratch.resize({static_cast<int64_t>(T) * stride});
  float* part = scratch.data();
  RegionError err;
#pragma omp parallel num_threads(T) if (T > 1)
  {
    const int t = thread_id(), team = team_size();
    const int64_t n0 = std::min(s.n, unit * (units * t / team)), n1 = std::min(s.n, unit * (units * (t + 1) / team));
    float* pw = part + t * stride;
    err.run([&] {
      if (n1 > n0)
        fn(n0, n1, pw);
      else
        std::memset(pw, 0, wsize * sizeof(float));
    });
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t i = 0; i < wsize; ++i) {
      const int64_t a = at(i);
      float acc = part[a];
      for (int u = 1; u < team; ++u) acc += part[u * stride + a];
      dw[i] = acc;
    }
    if (db) conv2d_bias_grad(dy, s.n, s.cout, plan.p, db);
  }
  err.rethrow();
}

void backward_weight_direct(const Conv2dShape& s, const Plan& plan, const float* x, const float* dy, float* dw,
                            float* db, Tensor& scratch) {
  const ConvDirectBwdWFn fn = kernels().conv_direct_bwd_w;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * plan.p;
  weight_grad_by_images(
      s, plan, 1, dy, dw, db, scratch,
      [&](int64_t n0, int64_t n1, float* pw) {
        fn(x + n0 * in_size, dy + n0 * out_size, pw, n1 - n0, s.cin, s.cout, s.geo, false);
      },
      [](int64_t i) { return i; });
}

// The same with 16 images in the lanes (kernels/conv_batch/) where there
// are 16 images or more per thread and the kernel is 3 or 5 wide: lenet5
// conv1's dw (6 output channels, rows of 28) 1.7-1.9x faster than the row kernel.
bool batch_dw(const Conv2dShape& s, const Plan& plan) {
  return kernels().conv_batch_bwd_w != nullptr && s.groups == 1 && s.geo.sw == 1 && s.geo.dw == 1 &&
         (s.geo.kw == 3 || s.geo.kw == 5) && s.n >= 16 * plan.threads &&
         conv2d_batch_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

void backward_weight_batch(const Conv2dShape& s, const Plan& plan, const float* x, const float* dy, float* dw,
                           float* db, Tensor& scratch) {
  const ConvBatchBwdWFn fn = kernels().conv_batch_bwd_w;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * plan.p;
  const int64_t per = conv2d_batch_scratch(s.cin, s.cout, s.geo);
  weight_grad_by_images(
      s, plan, 16, dy, dw, db, scratch,
      [&](int64_t n0, int64_t n1, float* pw) {
        float* sc = thread_workspace().get(Workspace::kCol, static_cast<size_t>(per));
        fn(x + n0 * in_size, dy + n0 * out_size, pw, n1 - n0, s.cin, s.cout, s.geo, sc);
      },
      [](int64_t i) { return i; });
}

// The weight gradient with the output channels in the lanes (see
// lanes_shape), for 3- and 5-wide kernels: each thread sums its images into
// its own partial (layout wl), added in thread order into dw.
bool lanes_dw(const Conv2dShape& s, const Plan& plan) {
  return lanes_shape(s, plan) && kernels().conv_lanes_bwd_w != nullptr && (s.geo.kw == 3 || s.geo.kw == 5);
}

void backward_weight_lanes(const Conv2dShape& s, const Plan& plan, const float* x, const float* dy, float* dw,
                           float* db, Tensor& scratch) {
  const ConvLanesBwdWFn fn = kernels().conv_lanes_bwd_w;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * plan.p;
  const int64_t per = conv2d_lanes_scratch(s.cin, s.cout, s.geo);
  weight_grad_by_images(
      s, plan, 1, dy, dw, db, scratch,
      [&](int64_t n0, int64_t n1, float* pw) {
        float* sc = thread_workspace().get(Workspace::kCol, static_cast<size_t>(per));
        fn(x + n0 * in_size, dy + n0 * out_size, pw, n1 - n0, s.cin, s.cout, s.geo, sc);
      },
      [&](int64_t i) { return (i % plan.k) * s.cout + i / plan.k; });  // dw[co][k] from wl[k][co]
}

}  // namespace

namespace {

void backward_gemm_or_direct(const Conv2dShape& s, const Plan& plan, const float* x, const float* w,
                             const float* dy, float* dx, float* dw, float* db, Tensor& scratch) {
  if (dx && direct_dx(s)) {
    backward_data_direct(s, plan, w, dy, dx);
    dx = nullptr;  // the GEMM path below computes only dw and db
  }
  if (!dx && lanes_dw(s, plan)) return backward_weight_lanes(s, plan, x, dy, dw, db, scratch);
  if (!dx && direct_dw(s) && batch_dw(s, plan))
    return backward_weight_batch(s, plan, x, dy, dw, db, scratch);
  if (!dx && direct_dw(s)) return backward_weight_direct(s, plan, x, dy, dw, db, scratch);
  const int64_t wsize = s.cout * plan.k;
  if (!plan.batch_parallel) {
    for (int64_t c = 0; c < plan.chunks; ++c) {
      const int64_t n0 = c * plan.chunk;
      backward_chunk(s, plan, x, w, dy, dx, dw, db, c == 0, n0, std::min(plan.chunk, s.n - n0));
    }
    return;
  }
  // Each thread sums its chunks (t, t+T, ...) into its own partial; the
  // partials are then added in thread order.
  const int T = plan.threads;
  const int64_t stride = (wsize + s.cout + 15) / 16 * 16;
  scratch.resize({static_cast<int64_t>(T) * stride});
  float* part = scratch.data();
  RegionError err;
#pragma omp parallel num_threads(T)
  {
    const int t = thread_id();
    const int team = team_size();  // may be fewer than asked for
    float* pw = part + t * stride;
    float* pb = pw + wsize;
    err.run([&] {
      bool first = true;
      for (int64_t c = t; c < plan.chunks; c += team) {
        const int64_t n0 = c * plan.chunk;
        backward_chunk(s, plan, x, w, dy, dx, pw, db ? pb : nullptr, first, n0, std::min(plan.chunk, s.n - n0));
        first = false;
      }
      if (first) std::memset(pw, 0, stride * sizeof(float));
    });
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t i = 0; i < wsize + s.cout; ++i) {
      if (i >= wsize && !db) continue;
      float acc = part[i];
      for (int u = 1; u < team; ++u) acc += part[u * stride + i];
      if (i < wsize)
        dw[i] = acc;
      else
        db[i - wsize] = acc;
    }
  }
  err.rethrow();
}

}  // namespace

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, Tensor& scratch, bool relu_x) {
  const Plan plan = make_plan(s);
  bool masked = false;  // the ReLU's backward already applied to dx
  if (use_winograd(s))
    masked = winograd_backward(s, x, w, dy, dx, dw, db, plan.threads, scratch, relu_x && dx);
  else
    backward_gemm_or_direct(s, plan, x, w, dy, dx, dw, db, scratch);
  if (relu_x && dx && !masked) {  // the ReLU's backward as its own pass
    const KernelTable& kt = kernels();
    parallel_for(s.n * s.cin * s.geo.h * s.geo.w, int64_t(1) << 15,
                 [&](int64_t b, int64_t e) { kt.relu_bwd(x + b, dx + b, dx + b, e - b); });
  }
}

}  // namespace cpucnn
