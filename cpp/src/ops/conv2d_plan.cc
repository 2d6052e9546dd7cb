#include "ops/conv2d_plan.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/limits.hpp"
#include "dispatch/dispatch.hpp"
#include "ops/conv2d.hpp"
#include "ops/gemm.hpp"

namespace cpucnn {

namespace {

std::atomic<int> g_winograd{static_cast<int>(WinogradMode::kAuto)};

WinogradMode winograd_mode() { return static_cast<WinogradMode>(g_winograd.load(std::memory_order_relaxed)); }

// --- im2col + GEMM ----------------------------------------------------------

constexpr int64_t kColBudget = int64_t(1) << 20;  // floats of im2col per thread (4 MiB)
constexpr int64_t kMinCols = 512;                 // GEMM width worth batching samples for
// Threads only pay for work well above an OpenMP fork/join.
constexpr int64_t kMinThreadedMacs = int64_t(1) << 17;
// Few samples, several threads: split output rows when there is this much work.
constexpr int64_t kMinSlabMacs = int64_t(1) << 18;

ConvGemmPlan plan_gemm(const Conv2dShape& s, const KernelTable& kt, int& threads) {
  const ConvGeometry& g = s.geo;
  ConvGemmPlan p;
  p.cg = s.cin / s.groups;
  p.mg = s.cout / s.groups;
  p.k = p.cg * g.kh * g.kw;
  p.p = g.ho * g.wo;
  const int64_t per_sample = std::max<int64_t>(1, p.k * p.p);
  const int64_t cap = std::max<int64_t>(1, kColBudget / per_sample);
  const int64_t fair = (s.n + threads - 1) / threads;
  // Enough samples per chunk for a GEMM about kMinCols wide; a single sample
  // needs no gather/scatter at all.
  const int64_t wide = (kMinCols + p.p - 1) / p.p;
  p.chunk = std::max<int64_t>(1, std::min({cap, fair, wide}));
  p.chunks = (s.n + p.chunk - 1) / p.chunk;
  if (s.n * s.cout * p.k * p.p < kMinThreadedMacs) threads = 1;
  p.batch_parallel = threads > 1 && p.chunks >= threads;
  p.direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.ho == g.h && g.wo == g.w;
  // The forward GEMM unfolds its input while packing where the ISA has the
  // kernel and the stride along W is 1 (a 1x1 direct layer's single sample
  // is read in place instead).
  p.implicit = kt.im2col_pack != nullptr && g.sw == 1;
  return p;
}

// --- direct kernels for thin layers ----------------------------------------

// Thin layers (few output channels) are faster as a direct convolution than
// as a GEMM that must unfold and pack its input (measured with
// benchmarks/bench_kernels.py: lenet5's convs gain 1.3-2x; with 32 output
// channels the GEMM is already as fast).
// On AVX2 (8 lanes) up to 8 output channels only: KernelTable::thin.
bool use_direct(const Conv2dShape& s, const KernelTable& kt) {
  return kt.conv_direct_fwd != nullptr && s.groups == 1 && s.geo.sw == 1 && s.geo.dw == 1 &&
         s.cout <= kt.thin.direct_fwd_max_cout;
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
bool lanes_shape(const Conv2dShape& s, const KernelTable& kt, const ConvGemmPlan& gp, int threads) {
  const ConvGeometry& g = s.geo;
  return kt.conv_lanes_fwd != nullptr && s.groups == 1 && g.sw == 1 && g.dw == 1 && s.cout % 16 == 0 &&
         s.cout <= 32 && gp.k <= 256 && s.n >= threads && conv2d_lanes_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

bool use_lanes(const Conv2dShape& s, const KernelTable& kt, const ConvGemmPlan& gp, int threads) {
  return lanes_shape(s, kt, gp, threads) && gp.k >= 64;
}

// Thin layers (<= 16 output channels) with 16 images or more per thread:
// 16 images in the lanes (kernels/conv_batch/), groups of 16 split over
// threads. Every lane is useful whatever the row width, and taps over the
// padding are skipped, which the full convolution of backward-data is full
// of (lenet5 conv2's dx: a 10x10 map padded to 18x18).
bool use_batch(const Conv2dShape& s, const KernelTable& kt, int threads) {
  return kt.conv_batch_fwd != nullptr && s.groups == 1 && s.geo.sw == 1 && s.geo.dw == 1 &&
         s.cout <= kt.thin.batch_fwd_max_cout &&
         s.n >= 16 * threads && conv2d_batch_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

// With stride 1 and dilation 1, dx is the "full" convolution of dy with the
// kernel flipped and its channel axes swapped. When that convolution is thin
// it runs on the direct kernel instead of a GEMM followed by col2im (on
// AVX2 only on the batch kernel, for layers of few outputs: KernelTable::thin).
bool direct_dx(const Conv2dShape& s, const KernelTable& kt) {
  const ConvGeometry& g = s.geo;
  return kt.conv_direct_fwd != nullptr && s.groups == 1 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
         g.ph <= g.kh - 1 && g.pw <= g.kw - 1 && s.cin <= 16 && s.cout <= kt.thin.dx_max_layer_cout;
}

// Thin layers' weight gradient straight from x and dy (no im2col, whose
// unfolded copy is kh*kw times the input, feeding a GEMM that is mostly
// padding when it has fewer than 8 rows (output channels) or 16 columns
// (cin*kh*kw)). Measured (benchmarks/bench_kernels.py, batch 256): lenet5
// conv1 (6 out) 1.5x and convnet_s conv1 (9 taps) 1.25x faster this way;
// lenet5 conv2 (16 x 150) and vgg_s conv1 (32 x 27) are faster as GEMMs
// (all four now run on a lane kernel first, where one applies: lanes_dw,
// batch_dw).
// On AVX2 only the first condition pays (KernelTable::thin).
bool direct_dw(const Conv2dShape& s, const KernelTable& kt) {
  const ConvGeometry& g = s.geo;
  return kt.conv_direct_bwd_w != nullptr && s.groups == 1 && g.sw == 1 && g.dw == 1 &&
         (s.cout < 8 || (kt.thin.dw_few_taps && s.cin * g.kh * g.kw < 16));
}

// The same with 16 images in the lanes (kernels/conv_batch/) where there
// are 16 images or more per thread and the kernel is 3 or 5 wide: lenet5
// conv1's dw (6 output channels, rows of 28) 1.7-1.9x faster than the row kernel.
bool batch_dw(const Conv2dShape& s, const KernelTable& kt, int threads) {
  return kt.conv_batch_bwd_w != nullptr && s.groups == 1 && s.geo.sw == 1 && s.geo.dw == 1 &&
         (s.geo.kw == 3 || s.geo.kw == 5) && s.n >= 16 * threads &&
         conv2d_batch_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

// The weight gradient with the output channels in the lanes (see
// lanes_shape), for 3- and 5-wide kernels.
bool lanes_dw(const Conv2dShape& s, const KernelTable& kt, const ConvGemmPlan& gp, int threads) {
  return lanes_shape(s, kt, gp, threads) && kt.conv_lanes_bwd_w != nullptr && (s.geo.kw == 3 || s.geo.kw == 5);
}

// Thin layers' forward with the output channels in the lanes, any count of
// them (kernels/conv_oc/): up to KernelTable::oc_fwd_max_cout output
// channels and oc_fwd_max_taps taps x input channels (where it beat the
// lanes, batch, row and GEMM paths: dispatch.cc), any stride, padding and
// dilation; images split over threads, or the rows of an image at batch 1.
bool use_oc(const Conv2dShape& s, const KernelTable& kt) {
  return kt.conv_oc_fwd != nullptr && s.groups == 1 && s.cout <= kt.oc_fwd_max_cout &&
         s.cin * s.geo.kh * s.geo.kw <= kt.oc_fwd_max_taps &&
         conv2d_oc_scratch(s.cin, s.cout, s.geo) <= kLaneScratch;
}

bool use_winograd(const Conv2dShape& s) {
  const WinogradMode mode = winograd_mode();
  if (mode == WinogradMode::kNever || !winograd_applicable(s)) return false;
  return mode == WinogradMode::kAlways || winograd_pays(s);
}

bool use_prepared_winograd(const Conv2dShape& s) {
  const WinogradMode mode = winograd_mode();
  if (mode == WinogradMode::kNever || !winograd_applicable(s)) return false;
  return mode == WinogradMode::kAlways || winograd_prepared_pays(s);
}

// Output-row slabs per image for the row kernel: with fewer images than
// threads, each image's rows are split.
int64_t row_slabs(const Conv2dShape& s, int threads) {
  return threads > 1 && s.n < threads ? std::min<int64_t>(threads, s.geo.ho) : 1;
}

// --- scratch ----------------------------------------------------------------

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

void forward_scratch(Conv2dPlan& p) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  ScratchLayout& l = p.fwd_scratch;
  Conv2dPlan::Offsets& at = p.fwd_at;
  switch (p.forward) {
    case ConvForwardAlgo::kWinograd:
      l = p.wino.forward;
      break;
    case ConvForwardAlgo::kOc: {
      const int64_t cpad = (s.cout + 7) / 8 * 8;
      at.weights = l.shared(cpad * gp.k + cpad);
      at.kernel = l.per_thread(conv2d_oc_scratch(s.cin, s.cout, s.geo));
      break;
    }
    case ConvForwardAlgo::kLanes:
      at.weights = l.shared(s.cout * gp.k);
      at.kernel = l.per_thread(conv2d_lanes_scratch(s.cin, s.cout, s.geo));
      break;
    case ConvForwardAlgo::kBatch:
      at.kernel = l.per_thread(conv2d_batch_scratch(s.cin, s.cout, s.geo));
      break;
    case ConvForwardAlgo::kDirect:
      break;
    case ConvForwardAlgo::kGemmSlabs: {
      const int64_t cols = (s.geo.ho + p.slabs - 1) / p.slabs * s.geo.wo;
      at.col = l.per_thread(gp.implicit && !gp.direct ? 0 : gp.k * cols);
      at.pack = l.per_thread(gemm_packing_floats(gp.mg, cols, gp.k));
      break;
    }
    case ConvForwardAlgo::kGemmChunks:
    case ConvForwardAlgo::kGemmInner: {
      const int64_t ld = gp.chunk * gp.p;
      at.col = l.per_thread(gp.implicit ? 0 : gp.k * ld);
      at.tmp = l.per_thread(gp.chunk > 1 ? s.cout * ld : 0);
      at.pack = l.per_thread(gemm_packing_floats(gp.mg, ld, gp.k));
      break;
    }
  }
}

// The weight gradient's scratch (partials summed in thread order, and the
// kernels' own), added to l.
void weight_scratch(const Conv2dPlan& p, ConvWeightAlgo algo, bool with_dx, ScratchLayout& l, Conv2dPlan::Offsets& at) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  const int64_t wsize = s.cout * gp.k;
  switch (algo) {
    case ConvWeightAlgo::kWinograd:
      break;  // the Winograd plan's own layout
    case ConvWeightAlgo::kLanes:
    case ConvWeightAlgo::kBatch:
    case ConvWeightAlgo::kDirect:
      at.part_stride = round16(wsize);
      at.parts = l.shared(saturating_mul(p.threads, at.part_stride));
      if (algo == ConvWeightAlgo::kLanes) at.kernel = l.per_thread(conv2d_lanes_scratch(s.cin, s.cout, s.geo));
      if (algo == ConvWeightAlgo::kBatch) at.kernel = l.per_thread(conv2d_batch_scratch(s.cin, s.cout, s.geo));
      break;
    case ConvWeightAlgo::kGemm: {
      const int64_t ld = gp.chunk * gp.p;
      at.part_stride = round16(wsize + s.cout);
      if (gp.batch_parallel) at.parts = l.shared(saturating_mul(p.threads, at.part_stride));
      at.tmp = l.per_thread(gp.chunk > 1 ? s.cout * ld : 0);
      at.col = l.per_thread(gp.k * ld);
      at.col2 = l.per_thread(with_dx ? gp.k * ld : 0);
      at.pack = l.per_thread(std::max(gemm_packing_floats(gp.mg, gp.k, ld), gemm_packing_floats(gp.k, ld, gp.mg)));
      break;
    }
  }
}

// dx alone: the GEMM's dx half over the same chunks, or the direct pass.
void data_scratch(Conv2dPlan& p) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  ScratchLayout& l = p.bwd_data_scratch;
  Conv2dPlan::Offsets& at = p.bwd_data_at;
  if (p.data == ConvDataAlgo::kGemm) {
    const int64_t ld = gp.chunk * gp.p;
    at.tmp = l.per_thread(gp.chunk > 1 ? s.cout * ld : 0);
    at.col2 = l.per_thread(gp.k * ld);
    at.pack = l.per_thread(gemm_packing_floats(gp.k, ld, gp.mg));
    return;
  }
  at.weights = l.shared(s.cout * s.cin * s.geo.kh * s.geo.kw);
  if (p.data == ConvDataAlgo::kDirectBatch) {
    const Conv2dShape t = conv2d_dx_shape(s);
    at.dx_kernel = l.per_thread(conv2d_batch_scratch(t.cin, t.cout, t.geo));
  }
}

void backward_scratch(Conv2dPlan& p) {
  if (p.winograd) {
    p.bwd_scratch = p.wino.backward;
    p.bwd_alone_scratch = p.wino.backward;
    p.bwd_data_scratch = p.wino.backward_data;
    return;
  }
  data_scratch(p);
  const Conv2dShape& s = p.shape;
  weight_scratch(p, p.weight_alone, false, p.bwd_alone_scratch, p.bwd_alone_at);
  ScratchLayout& l = p.bwd_scratch;
  Conv2dPlan::Offsets& at = p.bwd_at;
  if (p.data == ConvDataAlgo::kGemm) return weight_scratch(p, ConvWeightAlgo::kGemm, true, l, at);
  // dx first, as a forward over dy with flipped weights; then dw on its own.
  weight_scratch(p, p.weight, false, l, at);
  at.weights = l.shared(s.cout * s.cin * s.geo.kh * s.geo.kw);
  if (p.data == ConvDataAlgo::kDirectBatch) {
    const Conv2dShape t = conv2d_dx_shape(s);
    at.dx_kernel = l.per_thread(conv2d_batch_scratch(t.cin, t.cout, t.geo));
  }
}

}  // namespace

void set_conv2d_winograd(WinogradMode mode) { g_winograd.store(static_cast<int>(mode)); }
WinogradMode conv2d_winograd() { return winograd_mode(); }

Conv2dShape conv2d_dx_shape(const Conv2dShape& s) {
  const ConvGeometry& g = s.geo;
  Conv2dShape t;
  t.n = s.n;
  t.cin = s.cout;
  t.cout = s.cin;
  t.groups = 1;
  t.geo = ConvGeometry{g.ho, g.wo, g.h, g.w, g.kh, g.kw, 1, 1, g.kh - 1 - g.ph, g.kw - 1 - g.pw, 1, 1};
  return t;
}

Conv2dPlan plan_conv2d(const Conv2dShape& s, int threads) {
  const KernelTable& kt = kernels();  // resolves the table (may throw) before any region
  Conv2dPlan p;
  p.shape = s;
  p.table = &kt;
  p.winograd_mode = static_cast<int>(winograd_mode());
  p.winograd_tile = static_cast<int>(winograd_tile());
  p.requested_threads = threads;
  p.threads = std::max(1, threads);
  p.gemm = plan_gemm(s, kt, p.threads);
  const ConvGemmPlan& gp = p.gemm;
  const int T = p.threads;

  p.winograd = use_winograd(s);
  p.prepared_winograd = use_prepared_winograd(s);
  if (p.winograd || p.prepared_winograd) p.wino = winograd_plan(s, T);

  // Forward.
  if (p.winograd)
    p.forward = ConvForwardAlgo::kWinograd;
  else if (use_oc(s, kt))
    p.forward = ConvForwardAlgo::kOc;
  else if (use_lanes(s, kt, gp, T))
    p.forward = ConvForwardAlgo::kLanes;
  else if (use_batch(s, kt, T))
    p.forward = ConvForwardAlgo::kBatch;
  else if (use_direct(s, kt))
    p.forward = ConvForwardAlgo::kDirect;
  else if (gp.batch_parallel)
    p.forward = ConvForwardAlgo::kGemmChunks;
  else if (T > 1 && s.geo.ho > 1 && s.cout * gp.k * gp.p * s.n >= kMinSlabMacs)
    p.forward = ConvForwardAlgo::kGemmSlabs;
  else
    p.forward = ConvForwardAlgo::kGemmInner;
  if (p.forward == ConvForwardAlgo::kDirect || p.forward == ConvForwardAlgo::kOc) p.slabs = row_slabs(s, T);
  if (p.forward == ConvForwardAlgo::kGemmSlabs) p.slabs = std::min<int64_t>(T, s.geo.ho);

  // Backward.
  if (p.winograd) {
    p.data = ConvDataAlgo::kWinograd;
    p.weight = p.weight_alone = ConvWeightAlgo::kWinograd;
  } else {
    if (lanes_dw(s, kt, gp, T))
      p.weight_alone = ConvWeightAlgo::kLanes;
    else if (direct_dw(s, kt) && batch_dw(s, kt, T))
      p.weight_alone = ConvWeightAlgo::kBatch;
    else if (direct_dw(s, kt))
      p.weight_alone = ConvWeightAlgo::kDirect;
    else
      p.weight_alone = ConvWeightAlgo::kGemm;
    const Conv2dShape t = conv2d_dx_shape(s);
    if (direct_dx(s, kt) && use_batch(t, kt, T)) {
      p.data = ConvDataAlgo::kDirectBatch;
    } else if (direct_dx(s, kt) && kt.thin.dx_on_rows) {
      p.data = ConvDataAlgo::kDirectRows;
      p.dx_slabs = row_slabs(t, T);
    } else {
      p.data = ConvDataAlgo::kGemm;
    }
    p.weight = p.data == ConvDataAlgo::kGemm ? ConvWeightAlgo::kGemm : p.weight_alone;
  }
  forward_scratch(p);
  backward_scratch(p);
  return p;
}

bool conv2d_plan_current(const Conv2dPlan& p, const Conv2dShape& s, int threads) {
  const Conv2dShape& q = p.shape;
  return p.table == &kernels() && p.requested_threads == threads && q.n == s.n && q.cin == s.cin &&
         q.cout == s.cout && q.groups == s.groups && std::memcmp(&q.geo, &s.geo, sizeof(ConvGeometry)) == 0 &&
         p.winograd_mode == static_cast<int>(winograd_mode()) && p.winograd_tile == static_cast<int>(winograd_tile());
}

}  // namespace cpucnn
