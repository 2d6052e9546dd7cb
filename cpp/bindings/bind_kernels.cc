// Direct access to the operators, for kernel tests and kernel benchmarks.
// These run the same code the layers run (dispatch table, threading).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "core/errors.hpp"
#include "core/tensor.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/layer.hpp"
#include "ops/conv2d.hpp"
#include "ops/gemm.hpp"
#include "ops/peak.hpp"
#include "ops/winograd.hpp"
#include "ops/scratch.hpp"
#include "core/parallel.hpp"

namespace py = pybind11;

namespace cpucnn::bindings {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

Conv2dShape conv_shape(const FloatArray& x, const FloatArray& w, std::pair<int64_t, int64_t> stride,
                       std::pair<int64_t, int64_t> padding, std::pair<int64_t, int64_t> dilation, int64_t groups) {
  if (x.ndim() != 4 || w.ndim() != 4) throw ValueError("conv2d: x and w must be 4-D");
  Conv2dShape s;
  s.n = x.shape(0);
  s.cin = x.shape(1);
  s.cout = w.shape(0);
  s.groups = groups;
  if (groups <= 0 || s.cin % groups || s.cout % groups || w.shape(1) * groups != s.cin)
    throw ValueError("conv2d: bad groups / weight shape");
  ConvGeometry& g = s.geo;
  g.h = x.shape(2);
  g.w = x.shape(3);
  g.kh = w.shape(2);
  g.kw = w.shape(3);
  g.sh = stride.first;
  g.sw = stride.second;
  g.ph = padding.first;
  g.pw = padding.second;
  g.dh = dilation.first;
  g.dw = dilation.second;
  if (g.kh <= 0 || g.kw <= 0 || s.cin <= 0 || s.cout <= 0) throw ValueError("conv2d: empty weight or input channels");
  if (g.sh <= 0 || g.sw <= 0 || g.dh <= 0 || g.dw <= 0 || g.ph < 0 || g.pw < 0) throw ValueError("conv2d: bad geometry");
  for (int64_t v : {g.sh, g.sw, g.dh, g.dw, g.ph, g.pw})
    if (v > kMaxSetting) throw ValueError("conv2d: stride, padding and dilation must be at most 2^24");
  const int64_t ekh = g.dh * (g.kh - 1) + 1, ekw = g.dw * (g.kw - 1) + 1;
  if (ekh > g.h + 2 * g.ph || ekw > g.w + 2 * g.pw) throw ValueError("conv2d: kernel larger than padded input");
  g.ho = (g.h + 2 * g.ph - ekh) / g.sh + 1;
  g.wo = (g.w + 2 * g.pw - ekw) / g.sw + 1;
  checked_numel({s.n, s.cout, g.ho, g.wo}, "conv2d output");
  return s;
}

// A max-pooling window over planes of h x w (every leading axis is planes).
Pool2dParams pool_params(int64_t h, int64_t w, std::pair<int64_t, int64_t> k, std::pair<int64_t, int64_t> s,
                         std::pair<int64_t, int64_t> pad) {
  if (h <= 0 || w <= 0) throw ValueError("maxpool2d: empty planes");
  Pool2dParams p{};
  p.h = h;
  p.w = w;
  p.kh = k.first;
  p.kw = k.second;
  p.sh = s.first;
  p.sw = s.second;
  p.ph = pad.first;
  p.pw = pad.second;
  if (p.kh <= 0 || p.kw <= 0 || p.sh <= 0 || p.sw <= 0 || p.ph < 0 || p.pw < 0 || 2 * p.ph > p.kh ||
      2 * p.pw > p.kw)
    throw ValueError("maxpool2d: bad window");
  if (p.kh > h + 2 * p.ph || p.kw > w + 2 * p.pw) throw ValueError("maxpool2d: window larger than padded input");
  if (h * w >= (int64_t(1) << 31)) throw ValueError("maxpool2d: planes must be below 2^31 elements");
  p.ho = (h + 2 * p.ph - p.kh) / p.sh + 1;
  p.wo = (w + 2 * p.pw - p.kw) / p.sw + 1;
  return p;
}

// A contiguous float32 copy of a 1-D array of n elements.
py::array_t<float> float_copy(const FloatArray& a, int64_t n, const char* what) {
  if (a.ndim() != 1 || a.shape(0) != n)
    throw ValueError(std::string(what) + " must be 1-D of " + std::to_string(n) + " elements");
  py::array_t<float> out(n);
  std::copy(a.data(), a.data() + n, out.mutable_data());
  return out;
}

}  // namespace

void register_kernels(py::module_& m) {
  py::module_ k = m.def_submodule("kernels", "Operators for tests and benchmarks.");
  k.def(
      "gemm",
      [](const FloatArray& a, const FloatArray& b, bool trans_a, bool trans_b, int threads) {
        if (a.ndim() != 2 || b.ndim() != 2) throw ValueError("gemm: a and b must be 2-D");
        GemmArgs g;
        g.trans_a = trans_a;
        g.trans_b = trans_b;
        g.m = trans_a ? a.shape(1) : a.shape(0);
        g.k = trans_a ? a.shape(0) : a.shape(1);
        const int64_t kb = trans_b ? b.shape(1) : b.shape(0);
        g.n = trans_b ? b.shape(0) : b.shape(1);
        if (kb != g.k) throw ValueError("gemm: inner dimensions differ");
        if (threads < 1 || threads > 1024) throw ValueError("gemm: threads must be in [1, 1024]");
        py::array_t<float> c({g.m, g.n});
        g.a = a.data();
        g.lda = a.shape(1);
        g.b = b.data();
        g.ldb = b.shape(1);
        g.c = c.mutable_data();
        g.ldc = g.n;
        py::gil_scoped_release nogil;
        if (threads > 1)
          gemm_parallel(g, threads);
        else
          gemm(g);
        return c;
      },
      py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("threads") = 1,
      "C = op(A) op(B) through the packed GEMM.");
  k.def(
      "fma_peak_gflops",
      [](const std::string& isa, int threads, double seconds) {
        py::gil_scoped_release nogil;
        return fma_peak_gflops(isa, threads, seconds);
      },
      py::arg("isa"), py::arg("threads") = 1, py::arg("seconds") = 0.5,
      "The measured FMA peak (GFLOP/s) of `threads` threads running independent FMA chains of `isa` "
      "('avx2' or 'avx512') at once, each thread's rate over its own CPU time, summed: the best of ~1 ms runs "
      "repeated for `seconds`. Measured, never derived from a clock frequency.");
  k.def(
      "conv2d_forward",
      [](const FloatArray& x, const FloatArray& w, std::optional<FloatArray> bias, std::pair<int64_t, int64_t> stride,
         std::pair<int64_t, int64_t> padding, std::pair<int64_t, int64_t> dilation, int64_t groups, bool relu) {
        const Conv2dShape s = conv_shape(x, w, stride, padding, dilation, groups);
        py::array_t<float> y({s.n, s.cout, s.geo.ho, s.geo.wo});
        if (bias && (bias->ndim() != 1 || bias->shape(0) != s.cout))
          throw ValueError("conv2d: bias must have shape (" + std::to_string(s.cout) + ",), got " +
                           std::to_string(bias->ndim()) + "-D of " + std::to_string(bias->size()) + " elements");
        const float* b = bias ? bias->data() : nullptr;
        float* yp = y.mutable_data();
        py::gil_scoped_release nogil;
        conv2d_forward(s, x.data(), w.data(), b, yp, relu);
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("bias") = py::none(), py::arg("stride") = std::make_pair(1, 1),
      py::arg("padding") = std::make_pair(0, 0), py::arg("dilation") = std::make_pair(1, 1), py::arg("groups") = 1,
      py::arg("relu") = false);
  k.def(
      "conv2d_backward",
      [](const FloatArray& x, const FloatArray& w, const FloatArray& dy, std::pair<int64_t, int64_t> stride,
         std::pair<int64_t, int64_t> padding, std::pair<int64_t, int64_t> dilation, int64_t groups, bool need_dx,
         bool need_dw) {
        const Conv2dShape s = conv_shape(x, w, stride, padding, dilation, groups);
        if (!need_dx && !need_dw) throw ValueError("conv2d_backward: asks for neither dx nor dw");
        if (dy.ndim() != 4 || dy.shape(0) != s.n || dy.shape(1) != s.cout || dy.shape(2) != s.geo.ho ||
            dy.shape(3) != s.geo.wo)
          throw ValueError("conv2d_backward: dy has the wrong shape");
        py::array_t<float> dx({s.n, s.cin, s.geo.h, s.geo.w});
        py::array_t<float> dw({w.shape(0), w.shape(1), w.shape(2), w.shape(3)});
        py::array_t<float> db(s.cout);
        float* dxp = need_dx ? dx.mutable_data() : nullptr;
        float* dwp = need_dw ? dw.mutable_data() : nullptr;
        float* dbp = need_dw ? db.mutable_data() : nullptr;
        {
          py::gil_scoped_release nogil;
          conv2d_backward(s, x.data(), w.data(), dy.data(), dxp, dwp, dbp);
        }
        const py::object none = py::none();
        return py::make_tuple(need_dx ? py::object(dx) : none, need_dw ? py::object(dw) : none,
                              need_dw ? py::object(db) : none);
      },
      py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("stride") = std::make_pair(1, 1),
      py::arg("padding") = std::make_pair(0, 0), py::arg("dilation") = std::make_pair(1, 1), py::arg("groups") = 1,
      py::arg("need_dx") = true, py::arg("need_dw") = true,
      "(dx, dw, db) of the convolution; need_dw=False computes dx alone (a frozen layer), None for dw and db.");
  k.def(
      "set_conv2d_winograd",
      [](const std::string& mode) {
        if (mode == "auto")
          set_conv2d_winograd(WinogradMode::kAuto);
        else if (mode == "always")
          set_conv2d_winograd(WinogradMode::kAlways);
        else if (mode == "never")
          set_conv2d_winograd(WinogradMode::kNever);
        else
          throw ValueError("set_conv2d_winograd: mode must be 'auto', 'always' or 'never', got '" + mode + "'");
      },
      py::arg("mode"),
      "Winograd (F(2x2) or F(4x4), 3x3) for eligible 3x3 stride-1 convolutions: 'auto' (where it pays; the "
      "default), 'always' (wherever it applies) or 'never' (im2col + GEMM).");
  k.def(
      "conv2d_winograd",
      [] {
        const WinogradMode m = conv2d_winograd();
        return std::string(m == WinogradMode::kAuto ? "auto" : m == WinogradMode::kAlways ? "always" : "never");
      },
      "The Winograd mode: 'auto', 'always' or 'never'.");
  k.def(
      "set_conv2d_winograd_tile",
      [](const std::string& tile) {
        if (tile == "auto")
          set_winograd_tile(WinogradTile::kAuto);
        else if (tile == "2x2")
          set_winograd_tile(WinogradTile::kF2);
        else if (tile == "4x4")
          set_winograd_tile(WinogradTile::kF4);
        else
          throw ValueError("set_conv2d_winograd_tile: tile must be 'auto', '2x2' or '4x4', got '" + tile + "'");
      },
      py::arg("tile"),
      "Which Winograd variant runs where Winograd does: 'auto' (F(4x4, 3x3) where the ISA has it, on maps "
      "of at least 8x8 outputs with at least 16 of its 4x4 tiles per thread, else F(2x2, 3x3); the default), "
      "'2x2' or '4x4' (F(4x4) wherever Winograd runs, on ISAs that have it; F(2x2) on the others).");
  k.def(
      "fail_allocation_after",
      [](int64_t n) { fail_allocation_after(n); }, py::arg("n"),
      "Testing: the n-th allocation of the core from now (0: the next) fails with MemoryError, once; -1: off.");
  k.def(
      "release_scratch",
      [] {
        py::gil_scoped_release nogil;
        release_scratch();
      },
      "Testing: frees the calling thread's scratch arena (ops/scratch.hpp), so the next operations "
      "reserve it again.");
  k.def("allocations_in_parallel_regions", &allocations_in_parallel_regions,
        "Testing: how many allocations of the core have run inside an OpenMP parallel region (process-wide). "
        "Operators plan their scratch before their regions, so this stays 0.");
  k.def("winograd_prepared_count", &winograd_prepared_count,
        "How many times inference has transformed and packed a layer's Winograd weights (process-wide).");
  k.def("conv2d_packed_count", &conv2d_packed_count,
        "How many times inference has packed the weights of a layer on the im2col + GEMM or "
        "output-channels-in-lanes paths (process-wide).");
  k.def(
      "maxpool2d_forward",
      [](const FloatArray& x, std::pair<int64_t, int64_t> pool, std::pair<int64_t, int64_t> stride,
         std::pair<int64_t, int64_t> padding) {
        if (x.ndim() < 2) throw ValueError("maxpool2d_forward: x must be at least 2-D");
        const int64_t h = x.shape(x.ndim() - 2), w = x.shape(x.ndim() - 1);
        const int64_t planes = x.size() / std::max<int64_t>(1, h * w);
        const Pool2dParams p = pool_params(h, w, pool, stride, padding);
        std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
        shape[shape.size() - 2] = p.ho;
        shape[shape.size() - 1] = p.wo;
        py::array_t<float> y(shape);
        py::array_t<int32_t> arg(shape);
        float* yp = y.mutable_data();
        int32_t* ap = arg.mutable_data();
        const auto fwd = kernels().maxpool2d_fwd;
        {
          py::gil_scoped_release nogil;
          fwd(x.data(), yp, ap, planes, p);
        }
        return py::make_tuple(y, arg);
      },
      py::arg("x"), py::arg("pool"), py::arg("stride"), py::arg("padding") = std::make_pair(0, 0),
      "(y, argmax): the current ISA's max-pooling kernel over the last two axes, one thread.");
  k.def(
      "maxpool2d_backward",
      [](const FloatArray& dy, const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& argmax,
         std::pair<int64_t, int64_t> in_hw, std::pair<int64_t, int64_t> pool, std::pair<int64_t, int64_t> stride,
         std::pair<int64_t, int64_t> padding) {
        const Pool2dParams p = pool_params(in_hw.first, in_hw.second, pool, stride, padding);
        if (dy.ndim() < 2 || dy.shape(dy.ndim() - 2) != p.ho || dy.shape(dy.ndim() - 1) != p.wo)
          throw ValueError("maxpool2d_backward: dy has the wrong shape");
        if (argmax.ndim() != dy.ndim() || argmax.size() != dy.size())
          throw ValueError("maxpool2d_backward: argmax must have dy's shape");
        const int64_t planes = dy.size() / std::max<int64_t>(1, p.ho * p.wo);
        const int32_t* ap = argmax.data();
        for (int64_t i = 0, n = argmax.size(); i < n; ++i)
          if (ap[i] < -1 || ap[i] >= p.h * p.w) throw ValueError("maxpool2d_backward: argmax out of range");
        std::vector<py::ssize_t> shape(dy.shape(), dy.shape() + dy.ndim());
        shape[shape.size() - 2] = p.h;
        shape[shape.size() - 1] = p.w;
        py::array_t<float> dx(shape);
        float* dxp = dx.mutable_data();
        const auto bwd = kernels().maxpool2d_bwd;
        {
          py::gil_scoped_release nogil;
          bwd(dy.data(), ap, dxp, planes, p);
        }
        return dx;
      },
      py::arg("dy"), py::arg("argmax"), py::arg("in_hw"), py::arg("pool"), py::arg("stride"),
      py::arg("padding") = std::make_pair(0, 0),
      "dx: the current ISA's max-pooling backward kernel (argmax from maxpool2d_forward), one thread.");
  k.def(
      "sgd_update",
      [](const FloatArray& w, const FloatArray& g, const FloatArray& buf, double lr, double momentum,
         double weight_decay, bool nesterov, bool first_step) {
        if (w.ndim() != 1) throw ValueError("sgd_update: w must be 1-D");
        const int64_t n = w.shape(0);
        py::array_t<float> wo = float_copy(w, n, "sgd_update: w"), bo = float_copy(buf, n, "sgd_update: buf");
        if (g.ndim() != 1 || g.shape(0) != n) throw ValueError("sgd_update: g must have w's shape");
        const SgdParams p{static_cast<float>(lr), static_cast<float>(momentum), static_cast<float>(weight_decay),
                          nesterov, first_step};
        float* wp = wo.mutable_data();
        float* bp = bo.mutable_data();
        const auto fn = kernels().sgd_update;
        {
          py::gil_scoped_release nogil;
          fn(wp, g.data(), bp, n, p);
        }
        return py::make_tuple(wo, bo);
      },
      py::arg("w"), py::arg("g"), py::arg("buf"), py::arg("lr"), py::arg("momentum") = 0.0,
      py::arg("weight_decay") = 0.0, py::arg("nesterov") = false, py::arg("first_step") = false,
      "(w, buf) after one step of the current ISA's SGD kernel (inputs unchanged), one thread.");
  k.def(
      "adam_update",
      [](const FloatArray& w, const FloatArray& g, const FloatArray& m, const FloatArray& v, double lr, double beta1,
         double beta2, double eps, double weight_decay, int64_t step) {
        if (w.ndim() != 1) throw ValueError("adam_update: w must be 1-D");
        const int64_t n = w.shape(0);
        py::array_t<float> wo = float_copy(w, n, "adam_update: w"), mo = float_copy(m, n, "adam_update: m"),
                           vo = float_copy(v, n, "adam_update: v");
        if (g.ndim() != 1 || g.shape(0) != n) throw ValueError("adam_update: g must have w's shape");
        if (step < 1) throw ValueError("adam_update: step counts from 1");
        const double t = static_cast<double>(step);
        const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);  // as the Adam optimizer
        const AdamParams p{static_cast<float>(lr), b1, b2, static_cast<float>(eps), static_cast<float>(weight_decay),
                           static_cast<float>(1.0 - std::pow(static_cast<double>(b1), t)),
                           static_cast<float>(1.0 - std::pow(static_cast<double>(b2), t))};
        float* wp = wo.mutable_data();
        float* mp = mo.mutable_data();
        float* vp = vo.mutable_data();
        const auto fn = kernels().adam_update;
        {
          py::gil_scoped_release nogil;
          fn(wp, g.data(), mp, vp, n, p);
        }
        return py::make_tuple(wo, mo, vo);
      },
      py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"), py::arg("lr"), py::arg("beta1") = 0.9,
      py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::arg("step") = 1,
      "(w, m, v) after step `step` (from 1) of the current ISA's Adam kernel (inputs unchanged), one thread.");
  k.def(
      "conv2d_winograd_tile",
      [] {
        const WinogradTile t = winograd_tile();
        return std::string(t == WinogradTile::kAuto ? "auto" : t == WinogradTile::kF2 ? "2x2" : "4x4");
      },
      "The Winograd variant setting: 'auto', '2x2' or '4x4'.");
}

}  // namespace cpucnn::bindings
