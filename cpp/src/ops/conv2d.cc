#include "ops/conv2d.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/parallel.hpp"
#include "core/tensor.hpp"
#include "dispatch/dispatch.hpp"
#include "ops/gemm.hpp"
#include "ops/winograd.hpp"

namespace cpucnn {

namespace {

using Offsets = Conv2dPlan::Offsets;

// --- im2col + GEMM ----------------------------------------------------------

// A GEMM of the plan with thread t's packing buffers (the team's, when it
// runs inside the GEMM).
void run_gemm(GemmArgs& a, const Conv2dPlan& p, const ScratchFrame& f, const Offsets& at, int t) {
  a.packing = f.thread(t, at.pack);
  a.packing_stride = f.thread_stride();
  if (p.gemm.batch_parallel || p.threads <= 1)
    gemm(a);
  else
    gemm_parallel(a, p.threads);
}

// Floats of one group's weights packed as the GEMM's A (mg rows, k deep).
int64_t packed_group(const Conv2dPlan& p) {
  const int64_t mr = p.table->gemm_mr;
  return (p.gemm.mg + mr - 1) / mr * mr * p.gemm.k;
}

// Group g's weights as the GEMM's A: packed once for inference (`packed`,
// Conv2dOp::infer), else read from w and packed per call.
void set_weights(GemmArgs& a, const Conv2dPlan& p, const float* w, const float* packed, int64_t g) {
  if (packed) {
    a.packed_a = packed + g * packed_group(p);
  } else {
    a.a = w + g * p.gemm.mg * p.gemm.k;
    a.lda = p.gemm.k;
  }
}

// Fills col (k x ld) for group g of samples [n0, n0+ns).
const float* unfold(const Conv2dPlan& p, const float* x, int64_t n0, int64_t ns, int64_t g, float* col) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  const int64_t hw = s.geo.h * s.geo.w;
  const int64_t ld = ns * gp.p;
  if (gp.direct && ns == 1) return x + n0 * s.cin * hw + g * gp.cg * hw;
  for (int64_t i = 0; i < ns; ++i)
    p.table->im2col(x + (n0 + i) * s.cin * hw + g * gp.cg * hw, s.geo, gp.cg, col + i * gp.p, ld);
  return col;
}

void forward_chunk(const Conv2dPlan& p, const ScratchFrame& f, int t, const float* x, const float* w,
                   const float* packed, const float* bias, float* y, bool relu, int64_t n0, int64_t ns) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  const Offsets& at = p.fwd_at;
  const int64_t ld = ns * gp.p;
  const int64_t hw = s.geo.h * s.geo.w;
  const bool implicit = gp.implicit && !(gp.direct && ns == 1);
  float* out = ns == 1 ? y + n0 * s.cout * gp.p : f.thread(t, at.tmp);
  for (int64_t g = 0; g < s.groups; ++g) {
    GemmArgs a;
    a.m = gp.mg;
    a.n = ld;
    a.k = gp.k;
    set_weights(a, p, w, packed, g);
    Im2colPackArgs pack{x + n0 * s.cin * hw + g * gp.cg * hw, s.cin * hw, gp.cg, &s.geo};
    if (implicit) {
      a.pack_b_fn = p.table->im2col_pack;
      a.pack_b_ctx = &pack;
    } else {
      a.b = unfold(p, x, n0, ns, g, f.thread(t, at.col));
    }
    a.ldb = ld;
    a.c = out + g * gp.mg * ld;
    a.ldc = ld;
    run_gemm(a, p, f, at, t);
  }
  // Scatter to NCHW with bias (and ReLU).
  for (int64_t i = 0; i < ns; ++i) {
    for (int64_t co = 0; co < s.cout; ++co) {
      const float* src = out + co * ld + i * gp.p;
      float* dst = y + ((n0 + i) * s.cout + co) * gp.p;
      const float b = bias ? bias[co] : 0.0f;
      if (relu) {
        for (int64_t q = 0; q < gp.p; ++q) {
          const float v = src[q] + b;
          dst[q] = v < 0.0f ? 0.0f : v;
        }
      } else if (src != dst || b != 0.0f) {
        for (int64_t q = 0; q < gp.p; ++q) dst[q] = src[q] + b;
      }
    }
  }
}

void forward_chunks(const Conv2dPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* packed,
                    const float* bias, float* y, bool relu) {
  const ConvGemmPlan& gp = p.gemm;
  const int64_t n = p.shape.n;
  if (!gp.batch_parallel) {
    for (int64_t c = 0; c < gp.chunks; ++c)
      forward_chunk(p, f, 0, x, w, packed, bias, y, relu, c * gp.chunk, std::min(gp.chunk, n - c * gp.chunk));
    return;
  }
  RegionError err;
#pragma omp parallel for num_threads(p.threads) schedule(dynamic, 1)
  for (int64_t c = 0; c < gp.chunks; ++c) {
    const int64_t n0 = c * gp.chunk;
    err.run([&] { forward_chunk(p, f, thread_id(), x, w, packed, bias, y, relu, n0, std::min(gp.chunk, n - n0)); });
  }
  err.rethrow();
}

// Few samples, several threads: each thread takes a slab of output rows of a
// sample and runs its own im2col + GEMM + bias/ReLU on it (no barrier, and
// the result does not depend on the split).
void forward_slabs(const Conv2dPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* packed,
                   const float* bias, float* y, bool relu) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  const Offsets& at = p.fwd_at;
  const ConvGeometry& geo = s.geo;
  const int64_t hw = geo.h * geo.w;
  const int64_t slabs = p.slabs;
  const bool implicit = gp.implicit && !gp.direct;
  RegionError err;
#pragma omp parallel for num_threads(static_cast<int>(slabs)) schedule(static) collapse(2)
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t k = 0; k < slabs; ++k) err.run([&] {
      const int64_t oh0 = geo.ho * k / slabs, oh1 = geo.ho * (k + 1) / slabs;
      if (oh1 <= oh0) return;
      const int t = thread_id();
      ConvGeometry part = geo;  // output rows [oh0, oh1) only
      part.ho = oh1 - oh0;
      part.ph = geo.ph - oh0 * geo.sh;
      const int64_t cols = part.ho * geo.wo;
      float* col = f.thread(t, at.col);
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* xg = x + n * s.cin * hw + g * gp.cg * hw;
        Im2colPackArgs pack{xg, s.cin * hw, gp.cg, &part};
        GemmArgs a;
        if (implicit) {
          a.pack_b_fn = p.table->im2col_pack;
          a.pack_b_ctx = &pack;
        } else {
          p.table->im2col(xg, part, gp.cg, col, cols);
          a.b = col;
        }
        a.m = gp.mg;
        a.n = cols;
        a.k = gp.k;
        set_weights(a, p, w, packed, g);
        a.ldb = cols;
        a.c = y + (n * s.cout + g * gp.mg) * gp.p + oh0 * geo.wo;
        a.ldc = gp.p;
        a.packing = f.thread(t, at.pack);
        gemm(a);
      }
      for (int64_t co = 0; co < s.cout; ++co) {
        float* d = y + (n * s.cout + co) * gp.p + oh0 * geo.wo;
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

// --- direct kernels ---------------------------------------------------------

// The lanes kernel's weights wl[ci][i][j][co].
void pack_lanes(const Conv2dPlan& p, const float* w, float* wl) {
  const int64_t k = p.gemm.k, cout = p.shape.cout;
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t j = 0; j < k; ++j) wl[j * cout + co] = w[co * k + j];
}

// Output channels in the lanes; the weights as pack_lanes lays them out
// (`packed`, made once by Conv2dOp::infer, or made here in the shared part),
// images split over threads.
void forward_lanes(const Conv2dPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* bias,
                   float* y, bool relu, const float* packed) {
  const Conv2dShape& s = p.shape;
  const KernelTable& kt = *p.table;
  const float* wl = packed;
  if (!wl) {
    float* dst = f.shared(p.fwd_at.weights);
    pack_lanes(p, w, dst);
    wl = dst;
  }
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * p.gemm.p;
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(p.threads, s.n));
#pragma omp parallel num_threads(use) if (use > 1)
  {
    const int t = thread_id(), team = team_size();
    const int64_t n0 = s.n * t / team, n1 = s.n * (t + 1) / team;
    if (n1 > n0)
      kt.conv_lanes_fwd(x + n0 * in_size, wl, bias, y + n0 * out_size, n1 - n0, s.cin, s.cout, s.geo, relu,
                        f.thread(t, p.fwd_at.kernel));
  }
}

int64_t oc_packed_floats(const Conv2dPlan& p) {
  const int64_t cpad = (p.shape.cout + 7) / 8 * 8;
  return cpad * p.gemm.k + cpad;
}

// The oc kernel's weights wl[cout / 8][k][8], then the bias padded to cpad.
void pack_oc(const Conv2dPlan& p, const float* w, const float* bias, float* wl) {
  const Conv2dShape& s = p.shape;
  const int64_t k = p.gemm.k, cpad = (s.cout + 7) / 8 * 8;
  float* bl = wl + cpad * k;
  for (int64_t co = 0; co < cpad; ++co) {
    float* d = wl + (co / 8) * 8 * k + co % 8;
    for (int64_t j = 0; j < k; ++j) d[8 * j] = co < s.cout ? w[co * k + j] : 0.0f;
    bl[co] = co < s.cout && bias ? bias[co] : 0.0f;
  }
}

// Output channels in the lanes, any count: the weights and bias as pack_oc
// lays them out (`packed`, made once by Conv2dOp::infer, or made here in the
// shared part), then work items (image, slab of output rows) split over threads.
void forward_oc(const Conv2dPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* bias,
                float* y, bool relu, const float* packed) {
  const Conv2dShape& s = p.shape;
  const int64_t k = p.gemm.k, cpad = (s.cout + 7) / 8 * 8;
  const float* wl = packed;
  if (!wl) {
    float* dst = f.shared(p.fwd_at.weights);
    pack_oc(p, w, bias, dst);
    wl = dst;
  }
  const float* bl = wl + cpad * k;
  const ConvOcFwdFn fn = p.table->conv_oc_fwd;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * s.geo.ho * s.geo.wo;
  const int64_t slabs = p.slabs, items = s.n * slabs;
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(p.threads, items));
#pragma omp parallel num_threads(use) if (use > 1)
  {
    const int t = thread_id(), team = team_size();
    float* scratch = f.thread(t, p.fwd_at.kernel);
    for (int64_t i = items * t / team, e = items * (t + 1) / team; i < e; ++i) {
      const int64_t n = i / slabs, q = i % slabs;
      fn(x + n * in_size, wl, bl, y + n * out_size, s.cin, s.cout, s.geo, s.geo.ho * q / slabs,
         s.geo.ho * (q + 1) / slabs, relu, scratch);
    }
  }
}

// 16 images in the lanes, groups of 16 split over threads; the kernel's
// scratch at `kernel` of each thread's part.
void forward_batch(const Conv2dShape& s, const KernelTable& kt, int threads, const ScratchFrame& f, int64_t kernel,
                   const float* x, const float* w, const float* bias, float* y, bool relu) {
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * s.geo.ho * s.geo.wo;
  const int64_t groups = (s.n + 15) / 16;
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(threads, groups));
#pragma omp parallel num_threads(use) if (use > 1)
  {
    const int t = thread_id(), team = team_size();
    const int64_t n0 = 16 * (groups * t / team), n1 = std::min(s.n, 16 * (groups * (t + 1) / team));
    if (n1 > n0)
      kt.conv_batch_fwd(x + n0 * in_size, w, bias, y + n0 * out_size, n1 - n0, s.cin, s.cout, s.geo, relu,
                        f.thread(t, kernel));
  }
}

// Along image rows: work items are (sample, slab of output rows); each
// writes its own outputs.
void forward_direct(const Conv2dShape& s, const KernelTable& kt, int threads, int64_t slabs, const float* x,
                    const float* w, const float* bias, float* y, bool relu) {
  const ConvDirectFwdFn fn = kt.conv_direct_fwd;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * s.geo.ho * s.geo.wo;
  const int64_t items = s.n * slabs;
  [[maybe_unused]] const int use = static_cast<int>(std::min<int64_t>(threads, items));
#pragma omp parallel for num_threads(use) schedule(static) if (use > 1)
  for (int64_t t = 0; t < items; ++t) {
    const int64_t n = t / slabs, k = t % slabs;
    fn(x + n * in_size, w, bias, y + n * out_size, s.cin, s.cout, s.geo, s.geo.ho * k / slabs,
       s.geo.ho * (k + 1) / slabs, relu);
  }
}

// packed: the lanes, oc and GEMM paths' weights packed once (Conv2dOp::infer), or null.
void run_forward(const Conv2dPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* bias,
                 float* y, bool relu, const float* packed = nullptr) {
  const Conv2dShape& s = p.shape;
  switch (p.forward) {
    case ConvForwardAlgo::kWinograd:
      return winograd_forward(p.wino, f, x, w, bias, y, relu);
    case ConvForwardAlgo::kOc:
      return forward_oc(p, f, x, w, bias, y, relu, packed);
    case ConvForwardAlgo::kLanes:
      return forward_lanes(p, f, x, w, bias, y, relu, packed);
    case ConvForwardAlgo::kBatch:
      return forward_batch(s, *p.table, p.threads, f, p.fwd_at.kernel, x, w, bias, y, relu);
    case ConvForwardAlgo::kDirect:
      return forward_direct(s, *p.table, p.threads, p.slabs, x, w, bias, y, relu);
    case ConvForwardAlgo::kGemmSlabs:
      return forward_slabs(p, f, x, w, packed, bias, y, relu);
    case ConvForwardAlgo::kGemmChunks:
    case ConvForwardAlgo::kGemmInner:
      return forward_chunks(p, f, x, w, packed, bias, y, relu);
  }
}

// --- backward ---------------------------------------------------------------

// dx as the forward direct convolution of dy with w'[ci][co][i][j] =
// w[co][ci][kh-1-i][kw-1-j] (made in the shared part).
void backward_data_direct(const Conv2dPlan& p, const Offsets& at, const ScratchFrame& f, const float* w,
                          const float* dy, float* dx) {
  const Conv2dShape& s = p.shape;
  const int64_t taps = s.geo.kh * s.geo.kw;
  float* wt = f.shared(at.weights);
  for (int64_t co = 0; co < s.cout; ++co)
    for (int64_t ci = 0; ci < s.cin; ++ci)
      for (int64_t t = 0; t < taps; ++t)
        wt[(ci * s.cout + co) * taps + (taps - 1 - t)] = w[(co * s.cin + ci) * taps + t];
  const Conv2dShape t = conv2d_dx_shape(s);
  if (p.data == ConvDataAlgo::kDirectBatch)
    forward_batch(t, *p.table, p.threads, f, at.dx_kernel, dy, wt, nullptr, dx, false);
  else
    forward_direct(t, *p.table, p.threads, p.dx_slabs, dy, wt, nullptr, dx, false);
}

// Weight gradients with the images split over threads, in runs of `unit`
// (whole groups of 16 for the batch kernel): fn(t, n0, n1, part) writes the
// partial of images [n0, n1) into thread t's `part` (wsize floats, layout
// of its own); dw[i] = the partials' part[at(i)] added in thread order.
// db from dy. The split depends only on the team size.
template <class Fn, class At>
void weight_grad_by_images(const Conv2dPlan& p, const ScratchFrame& f, const Offsets& off, int64_t unit,
                           const float* dy, float* dw, float* db, Fn fn, At at) {
  const Conv2dShape& s = p.shape;
  const int64_t wsize = s.cout * p.gemm.k;
  const int64_t units = (s.n + unit - 1) / unit;
  [[maybe_unused]] const int T = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(p.threads, units)));
  const int64_t stride = off.part_stride;
  float* part = f.shared(off.parts);
#pragma omp parallel num_threads(T) if (T > 1)
  {
    const int t = thread_id(), team = team_size();
    const int64_t n0 = std::min(s.n, unit * (units * t / team)), n1 = std::min(s.n, unit * (units * (t + 1) / team));
    float* pw = part + t * stride;
    if (n1 > n0)
      fn(t, n0, n1, pw);
    else
      std::memset(pw, 0, wsize * sizeof(float));
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t i = 0; i < wsize; ++i) {
      const int64_t a = at(i);
      float acc = part[a];
      for (int u = 1; u < team; ++u) acc += part[u * stride + a];
      dw[i] = acc;
    }
    if (db) conv2d_bias_grad(dy, s.n, s.cout, p.gemm.p, db);
  }
}

// Accumulates (or, when first, overwrites) dw/db partials for a chunk
// (none when dw is null) and writes dx for its samples.
void backward_chunk(const Conv2dPlan& p, const ScratchFrame& f, const Offsets& at, int t, const float* x,
                    const float* w, const float* dy, float* dx, float* dw, float* db, bool first, int64_t n0,
                    int64_t ns) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  const KernelTable& kt = *p.table;
  const int64_t ld = ns * gp.p;
  const int64_t hw = s.geo.h * s.geo.w;
  // dy for the chunk as (cout x ld).
  const float* dyc;
  if (ns == 1) {
    dyc = dy + n0 * s.cout * gp.p;
  } else {
    float* tmp = f.thread(t, at.tmp);
    for (int64_t i = 0; i < ns; ++i)
      for (int64_t co = 0; co < s.cout; ++co)
        std::memcpy(tmp + co * ld + i * gp.p, dy + ((n0 + i) * s.cout + co) * gp.p, gp.p * sizeof(float));
    dyc = tmp;
  }
  if (db) {
    for (int64_t co = 0; co < s.cout; ++co) {
      const float acc = static_cast<float>(kt.sum(dyc + co * ld, ld));
      db[co] = first ? acc : db[co] + acc;
    }
  }
  if (dx)
    for (int64_t i = 0; i < ns; ++i) std::memset(dx + (n0 + i) * s.cin * hw, 0, s.cin * hw * sizeof(float));
  float* dcol = dx ? f.thread(t, at.col2) : nullptr;
  for (int64_t g = 0; g < s.groups; ++g) {
    const float* dyg = dyc + g * gp.mg * ld;
    const float* wg = w + g * gp.mg * gp.k;
    if (dw) {
      GemmArgs gw;  // dw_g (mg x k) += dy_g (mg x ld) * col^T (ld x k)
      gw.trans_b = true;
      gw.m = gp.mg;
      gw.n = gp.k;
      gw.k = ld;
      gw.a = dyg;
      gw.lda = ld;
      gw.b = unfold(p, x, n0, ns, g, f.thread(t, at.col));
      gw.ldb = ld;
      gw.c = dw + g * gp.mg * gp.k;
      gw.ldc = gp.k;
      gw.accumulate = !first;
      run_gemm(gw, p, f, at, t);
    }
    if (dx) {
      GemmArgs gd;  // dcol (k x ld) = w_g^T (k x mg) * dy_g (mg x ld)
      gd.trans_a = true;
      gd.m = gp.k;
      gd.n = ld;
      gd.k = gp.mg;
      gd.a = wg;
      gd.lda = gp.k;
      gd.b = dyg;
      gd.ldb = ld;
      gd.c = dcol;
      gd.ldc = ld;
      run_gemm(gd, p, f, at, t);
      for (int64_t i = 0; i < ns; ++i)
        kt.col2im(dcol + i * gp.p, ld, s.geo, gp.cg, dx + (n0 + i) * s.cin * hw + g * gp.cg * hw);
    }
  }
}

// dw, db (and dx when given) by im2col + GEMM over the plan's chunks. With
// threads over chunks, each thread sums its chunks (t, t+T, ...) into its
// own partial; the partials are then added in thread order.
void backward_gemm(const Conv2dPlan& p, const ScratchFrame& f, const Offsets& at, const float* x, const float* w,
                   const float* dy, float* dx, float* dw, float* db) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  if (!gp.batch_parallel) {
    for (int64_t c = 0; c < gp.chunks; ++c) {
      const int64_t n0 = c * gp.chunk;
      backward_chunk(p, f, at, 0, x, w, dy, dx, dw, db, c == 0, n0, std::min(gp.chunk, s.n - n0));
    }
    return;
  }
  const int64_t wsize = s.cout * gp.k;
  const int64_t stride = at.part_stride;
  float* part = f.shared(at.parts);
#pragma omp parallel num_threads(p.threads)
  {
    const int t = thread_id();
    const int team = team_size();  // may be fewer than asked for
    float* pw = part + t * stride;
    float* pb = pw + wsize;
    bool first = true;
    for (int64_t c = t; c < gp.chunks; c += team) {
      const int64_t n0 = c * gp.chunk;
      backward_chunk(p, f, at, t, x, w, dy, dx, pw, db ? pb : nullptr, first, n0, std::min(gp.chunk, s.n - n0));
      first = false;
    }
    if (first) std::memset(pw, 0, stride * sizeof(float));
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
}

// dx alone by GEMM + col2im over the plan's chunks (threads over chunks
// where the plan has them, else inside each GEMM).
void backward_data_gemm(const Conv2dPlan& p, const ScratchFrame& f, const float* w, const float* dy, float* dx) {
  const Conv2dShape& s = p.shape;
  const ConvGemmPlan& gp = p.gemm;
  const Offsets& at = p.bwd_data_at;
  if (!gp.batch_parallel) {
    for (int64_t c = 0; c < gp.chunks; ++c)
      backward_chunk(p, f, at, 0, nullptr, w, dy, dx, nullptr, nullptr, c == 0, c * gp.chunk,
                     std::min(gp.chunk, s.n - c * gp.chunk));
    return;
  }
#pragma omp parallel for num_threads(p.threads) schedule(dynamic, 1)
  for (int64_t c = 0; c < gp.chunks; ++c)
    backward_chunk(p, f, at, thread_id(), nullptr, w, dy, dx, nullptr, nullptr, true, c * gp.chunk,
                   std::min(gp.chunk, s.n - c * gp.chunk));
}

void backward_weight(const Conv2dPlan& p, ConvWeightAlgo algo, const ScratchFrame& f, const Offsets& off,
                     const float* x, const float* w, const float* dy, float* dw, float* db) {
  const Conv2dShape& s = p.shape;
  const KernelTable& kt = *p.table;
  const int64_t in_size = s.cin * s.geo.h * s.geo.w, out_size = s.cout * p.gemm.p;
  const int64_t k = p.gemm.k;
  const auto same = [](int64_t i) { return i; };
  switch (algo) {
    case ConvWeightAlgo::kWinograd:
      return;  // not here: winograd_backward
    case ConvWeightAlgo::kLanes:
      return weight_grad_by_images(
          p, f, off, 1, dy, dw, db,
          [&](int t, int64_t n0, int64_t n1, float* pw) {
            kt.conv_lanes_bwd_w(x + n0 * in_size, dy + n0 * out_size, pw, n1 - n0, s.cin, s.cout, s.geo,
                                f.thread(t, off.kernel));
          },
          [&](int64_t i) { return (i % k) * s.cout + i / k; });  // dw[co][k] from wl[k][co]
    case ConvWeightAlgo::kBatch:
      return weight_grad_by_images(
          p, f, off, 16, dy, dw, db,
          [&](int t, int64_t n0, int64_t n1, float* pw) {
            kt.conv_batch_bwd_w(x + n0 * in_size, dy + n0 * out_size, pw, n1 - n0, s.cin, s.cout, s.geo,
                                f.thread(t, off.kernel));
          },
          same);
    case ConvWeightAlgo::kDirect:
      return weight_grad_by_images(
          p, f, off, 1, dy, dw, db,
          [&](int, int64_t n0, int64_t n1, float* pw) {
            kt.conv_direct_bwd_w(x + n0 * in_size, dy + n0 * out_size, pw, n1 - n0, s.cin, s.cout, s.geo, false);
          },
          same);
    case ConvWeightAlgo::kGemm:
      return backward_gemm(p, f, off, x, w, dy, nullptr, dw, db);
  }
}

// Returns whether the ReLU's backward was applied to dx.
bool run_backward(const Conv2dPlan& p, const ScratchFrame& f, const float* x, const float* w, const float* dy,
                  float* dx, float* dw, float* db, bool relu_x) {
  if (!dw) {  // dx alone
    if (p.winograd) return winograd_backward_data(p.wino, f, x, w, dy, dx, relu_x);
    if (p.data == ConvDataAlgo::kGemm)
      backward_data_gemm(p, f, w, dy, dx);
    else
      backward_data_direct(p, p.bwd_data_at, f, w, dy, dx);
    return false;
  }
  if (p.winograd) return winograd_backward(p.wino, f, x, w, dy, dx, dw, db, relu_x && dx);
  if (!dx) {
    backward_weight(p, p.weight_alone, f, p.bwd_alone_at, x, w, dy, dw, db);
  } else if (p.data == ConvDataAlgo::kGemm) {
    backward_gemm(p, f, p.bwd_at, x, w, dy, dx, dw, db);
  } else {
    backward_data_direct(p, p.bwd_at, f, w, dy, dx);
    backward_weight(p, p.weight, f, p.bwd_at, x, w, dy, dw, db);
  }
  return false;
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

std::shared_ptr<const Conv2dPlan> Conv2dOp::plan(const Conv2dShape& s) {
  const int threads = get_num_threads();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& p : plans_)
    if (p && conv2d_plan_current(*p, s, threads)) return p;
  auto p = std::make_shared<const Conv2dPlan>(plan_conv2d(s, threads));
  plans_[next_] = p;
  next_ = (next_ + 1) % kPlans;
  return p;
}

void Conv2dOp::forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  const auto p = plan(s);
  ScratchFrame f(p->fwd_scratch, p->threads);
  run_forward(*p, f, x, w, bias, y, relu);
}

// A layer's weights packed for its forward path, for one version of the
// parameters and one kernel table: the GEMM paths' as the micro-kernel's A,
// every group packed_group floats apart; the oc and lanes paths' as pack_oc
// and pack_lanes lay them out.
struct ConvPackedWeights {
  const KernelTable* table = nullptr;
  uint64_t version = 0;
  ConvForwardAlgo algo = ConvForwardAlgo::kGemmInner;  // the GEMM paths share one layout
  int64_t groups = 0, mg = 0, k = 0;
  Tensor panels;
};

namespace {

std::atomic<uint64_t> g_packed{0};

bool packs_weights(ConvForwardAlgo a) {
  return a == ConvForwardAlgo::kOc || a == ConvForwardAlgo::kLanes || a == ConvForwardAlgo::kGemmChunks ||
         a == ConvForwardAlgo::kGemmInner || a == ConvForwardAlgo::kGemmSlabs;
}

// The layout a path's packed weights take (the GEMM paths share one).
ConvForwardAlgo packing_of(ConvForwardAlgo a) {
  return a == ConvForwardAlgo::kOc || a == ConvForwardAlgo::kLanes ? a : ConvForwardAlgo::kGemmInner;
}

bool packed_for(const ConvPackedWeights& gw, const Conv2dPlan& p, uint64_t version) {
  return gw.table == p.table && gw.version == version && gw.algo == packing_of(p.forward) &&
         gw.groups == p.shape.groups && gw.mg == p.gemm.mg && gw.k == p.gemm.k;
}

// Packs w (and, for the oc path, the bias) for p's forward path (allocates:
// outside any parallel region).
std::shared_ptr<const ConvPackedWeights> pack_weights(const Conv2dPlan& p, const float* w, const float* bias,
                                                      uint64_t version) {
  auto gw = std::make_shared<ConvPackedWeights>();
  gw->table = p.table;
  gw->version = version;
  gw->algo = packing_of(p.forward);
  gw->groups = p.shape.groups;
  gw->mg = p.gemm.mg;
  gw->k = p.gemm.k;
  g_packed.fetch_add(1);
  if (gw->algo == ConvForwardAlgo::kOc) {
    gw->panels = Tensor({oc_packed_floats(p)});
    pack_oc(p, w, bias, gw->panels.data());
    return gw;
  }
  if (gw->algo == ConvForwardAlgo::kLanes) {
    gw->panels = Tensor({std::max<int64_t>(1, p.shape.cout * p.gemm.k)});
    pack_lanes(p, w, gw->panels.data());
    return gw;
  }
  const int64_t stride = packed_group(p);
  gw->panels = Tensor({std::max<int64_t>(1, gw->groups * stride)});
  for (int64_t g = 0; g < gw->groups; ++g) {
    GemmTile t;
    t.m = gw->mg;
    t.k = gw->k;
    t.a = w + g * gw->mg * gw->k;
    t.lda = gw->k;
    p.table->gemm_pack_a(t, gw->panels.data() + g * stride);
  }
  return gw;
}

}  // namespace

uint64_t conv2d_packed_count() { return g_packed.load(); }

void Conv2dOp::infer(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                     uint64_t version) {
  const auto p = plan(s);
  if (!p->prepared_winograd && packs_weights(p->forward) && p->gemm.k > 0 && p->gemm.mg > 0) {
    // The weights packed once per version, not once per call (and per tile).
    std::shared_ptr<const ConvPackedWeights> packed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!packed_ || !packed_for(*packed_, *p, version)) packed_ = pack_weights(*p, w, bias, version);
      packed = packed_;
    }
    ScratchFrame f(p->fwd_scratch, p->threads);
    return run_forward(*p, f, x, w, bias, y, relu, packed->panels.data());
  }
  if (!p->prepared_winograd) {
    ScratchFrame f(p->fwd_scratch, p->threads);
    return run_forward(*p, f, x, w, bias, y, relu);
  }
  std::shared_ptr<const WinogradWeights> prepared;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<const WinogradWeights>& slot = winograd_[p->wino.tile == 4 ? 1 : 0];
    if (!slot || !winograd_prepared_for(*slot, p->wino, version)) slot = winograd_prepare(p->wino, w, version);
    prepared = slot;
  }
  ScratchFrame f(p->wino.prepared, p->wino.threads);
  winograd_forward_prepared(p->wino, f, x, *prepared, bias, y, relu);
}

void Conv2dOp::backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                        float* db, bool relu_x) {
  const auto p = plan(s);
  bool masked = false;  // the ReLU's backward already applied to dx
  if (!dw && !dx) return;
  {
    ScratchFrame f(!dw ? p->bwd_data_scratch : dx ? p->bwd_scratch : p->bwd_alone_scratch, p->threads);
    masked = run_backward(*p, f, x, w, dy, dx, dw, db, relu_x);
  }
  if (relu_x && dx && !masked) {  // the ReLU's backward as its own pass
    const KernelTable& kt = *p->table;
    parallel_for(s.n * s.cin * s.geo.h * s.geo.w, int64_t(1) << 15,
                 [&](int64_t b, int64_t e) { kt.relu_bwd(x + b, dx + b, dx + b, e - b); });
  }
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  Conv2dOp().forward(s, x, w, bias, y, relu);
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, bool relu_x) {
  Conv2dOp().backward(s, x, w, dy, dx, dw, db, relu_x);
}

}  // namespace cpucnn
