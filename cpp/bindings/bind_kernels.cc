// Direct access to the operators, for kernel tests and kernel benchmarks.
// These run the same code the layers run (dispatch table, threading).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>

#include "bindings.hpp"
#include "core/errors.hpp"
#include "core/tensor.hpp"
#include "layers/layer.hpp"
#include "ops/conv2d.hpp"
#include "ops/gemm.hpp"
#include "ops/peak.hpp"
#include "ops/winograd.hpp"
#include "ops/workspace.hpp"
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
         std::pair<int64_t, int64_t> padding, std::pair<int64_t, int64_t> dilation, int64_t groups, bool need_dx) {
        const Conv2dShape s = conv_shape(x, w, stride, padding, dilation, groups);
        if (dy.ndim() != 4 || dy.shape(0) != s.n || dy.shape(1) != s.cout || dy.shape(2) != s.geo.ho ||
            dy.shape(3) != s.geo.wo)
          throw ValueError("conv2d_backward: dy has the wrong shape");
        py::array_t<float> dx({s.n, s.cin, s.geo.h, s.geo.w});
        py::array_t<float> dw({w.shape(0), w.shape(1), w.shape(2), w.shape(3)});
        py::array_t<float> db(s.cout);
        float* dxp = need_dx ? dx.mutable_data() : nullptr;
        float* dwp = dw.mutable_data();
        float* dbp = db.mutable_data();
        {
          py::gil_scoped_release nogil;
          Tensor scratch;
          conv2d_backward(s, x.data(), w.data(), dy.data(), dxp, dwp, dbp, scratch);
        }
        return py::make_tuple(need_dx ? py::object(dx) : py::object(py::none()), dw, db);
      },
      py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("stride") = std::make_pair(1, 1),
      py::arg("padding") = std::make_pair(0, 0), py::arg("dilation") = std::make_pair(1, 1), py::arg("groups") = 1,
      py::arg("need_dx") = true);
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
      "release_workspaces",
      [] {
        py::gil_scoped_release nogil;
        release_thread_workspaces(get_num_threads());
      },
      "Testing: frees the per-thread workspaces, so the next operations allocate them again.");
  k.def("winograd_prepared_count", &winograd_prepared_count,
        "How many times inference has transformed and packed a layer's Winograd weights (process-wide).");
  k.def(
      "conv2d_winograd_tile",
      [] {
        const WinogradTile t = winograd_tile();
        return std::string(t == WinogradTile::kAuto ? "auto" : t == WinogradTile::kF2 ? "2x2" : "4x4");
      },
      "The Winograd variant setting: 'auto', '2x2' or '4x4'.");
}

}  // namespace cpucnn::bindings
