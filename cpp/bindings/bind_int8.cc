// _core.int8: the int8 kernels by ISA, for the tests that check every
// variant against the scalar reference, and for benchmarks.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "core/errors.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/int8.hpp"
#include "kernels/params.hpp"
#include "ops/qwinograd.hpp"

namespace py = pybind11;

// The AVX2 variant of an int8 helper kernel; x86 builds only (elsewhere vector_isa refuses "avx2").
#if defined(__x86_64__) || defined(__i386__)
#define CPUCNN_INT8_AVX2(fn) fn##_avx2
#else
#define CPUCNN_INT8_AVX2(fn) fn##_scalar
#endif

namespace cpucnn::bindings {

namespace {

template <class T>
using Arr = py::array_t<T, py::array::c_style | py::array::forcecast>;

// The float-family kernels (quantize, dequantize, max pool) of "scalar" or "avx2".
bool vector_isa(const std::string& isa, const char* what) {
  if (isa != "scalar" && isa != "avx2") throw ValueError(std::string(what) + ": isa must be 'scalar' or 'avx2', got '" + isa + "'");
  if (isa == "avx2") {
    bool ok = false;
    for (const auto& s : available_isas()) ok |= s == "avx2" || s == "avx512";
    if (!ok) throw ValueError(std::string(what) + ": this CPU has no AVX2");
  }
  return isa == "avx2";
}

py::array qgemm(const std::string& isa, const Arr<int8_t>& w, const Arr<uint8_t>& x, const Arr<int32_t>& ibias,
                const Arr<float>& mult, const Arr<float>& add, float lo, float hi, bool relu, bool out_u8) {
  int nr = 0;
  const QGemmFn fn = qgemm_variant(isa, &nr);
  if (w.ndim() != 2 || x.ndim() != 2 || w.shape(1) != x.shape(1))
    throw ValueError("qgemm: w (m, k) and x (n, k) must share k, got w " + std::to_string(w.ndim()) + "-D and x " +
                     std::to_string(x.ndim()) + "-D");
  const int64_t m = w.shape(0), k = w.shape(1), n = x.shape(0);
  if (ibias.size() != m || mult.size() != m || add.size() != m) throw ValueError("qgemm: ibias, mult, add need m values");
  if (k > kQMaxK) throw ValueError("qgemm: k too large");
  const int8_t* wp = w.data();
  for (int64_t i = 0; i < m * k; ++i)
    if (wp[i] == -128) throw ValueError("qgemm: weights must be in [-127, 127]");
  const uint8_t* xp = x.data();
  for (int64_t i = 0; i < n * k; ++i)
    if (xp[i] > kQActMax) throw ValueError("qgemm: activations must be in [0, 127]");
  std::vector<float> wf(static_cast<size_t>(m * k));
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = wp[i];
  const int64_t k4 = (k + 3) / 4;
  std::vector<int8_t> a(static_cast<size_t>((m + 3) / 4 * k4 * 16));
  qpack_weights(wf.data(), m, k, a.data());
  std::vector<uint8_t> b(static_cast<size_t>(k4 * nr * 4) + 64);
  py::array out = out_u8 ? py::array(py::dtype::of<uint8_t>(), {m, n}) : py::array(py::dtype::of<float>(), {m, n});
  QGemmOut o;
  o.ibias = ibias.data();
  o.mult = mult.data();
  o.add = add.data();
  o.lo = lo;
  o.hi = hi;
  o.relu = relu;
  o.row_stride = n;
  o.col_stride = 1;
  for (int64_t j0 = 0; j0 < n; j0 += nr) {
    const int64_t nc = std::min<int64_t>(nr, n - j0);
    qpack_rows(xp, k, k, j0, nc, nr, k4, b.data());
    QGemmOut oj = o;
    if (out_u8)
      oj.y8 = static_cast<uint8_t*>(out.mutable_data()) + j0;
    else
      oj.yf = static_cast<float*>(out.mutable_data()) + j0;
    fn(a.data(), m, k4, b.data(), nc, oj);
  }
  return out;
}

py::array qgemv(const std::string& isa, const Arr<int8_t>& w, const Arr<uint8_t>& x, const Arr<int32_t>& ibias,
                const Arr<float>& mult, const Arr<float>& add, float lo, float hi, bool relu, bool out_u8) {
  const bool v = vector_isa(isa, "qgemv");
  if (w.ndim() != 2 || x.ndim() != 2 || w.shape(1) != x.shape(1)) throw ValueError("qgemv: w (m, k) and x (n, k) must share k");
  const int64_t m = w.shape(0), k = w.shape(1), n = x.shape(0);
  if (ibias.size() != m || mult.size() != m || add.size() != m) throw ValueError("qgemv: ibias, mult, add need m values");
  const int8_t* wp = w.data();
  for (int64_t i = 0; i < m * k; ++i)
    if (wp[i] == -128) throw ValueError("qgemv: weights must be in [-127, 127]");
  for (int64_t i = 0; i < n * k; ++i)
    if (x.data()[i] > kQActMax) throw ValueError("qgemv: activations must be in [0, 127]");
  std::vector<float> wf(static_cast<size_t>(m * k));
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = wp[i];
  const int64_t k4 = (k + 3) / 4;
  std::vector<int8_t> a(static_cast<size_t>((m + 3) / 4 * k4 * 16));
  qpack_weights(wf.data(), m, k, a.data());
  std::vector<uint8_t> xb(static_cast<size_t>(k4 * 4), 0);
  py::array out = out_u8 ? py::array(py::dtype::of<uint8_t>(), {n, m}) : py::array(py::dtype::of<float>(), {n, m});
  for (int64_t j = 0; j < n; ++j) {
    std::copy(x.data() + j * k, x.data() + (j + 1) * k, xb.begin());
    QGemmOut o;
    o.ibias = ibias.data();
    o.mult = mult.data();
    o.add = add.data();
    o.lo = lo;
    o.hi = hi;
    o.relu = relu;
    o.row_stride = 1;
    if (out_u8)
      o.y8 = static_cast<uint8_t*>(out.mutable_data()) + j * m;
    else
      o.yf = static_cast<float*>(out.mutable_data()) + j * m;
    (v ? CPUCNN_INT8_AVX2(qgemv) : qgemv_scalar)(a.data(), m, k4, xb.data(), o);
  }
  return out;
}

}  // namespace

void register_int8(py::module_& m) {
  py::module_ q = m.def_submodule("int8", "The int8 kernels by ISA (tests and benchmarks).");
  q.def("isas", &int8_isas, "The int8 GEMM variants this CPU runs, best first.");
  q.def("qgemm", &qgemm, py::arg("isa"), py::arg("w"), py::arg("x"), py::arg("ibias"), py::arg("mult"), py::arg("add"),
        py::arg("lo"), py::arg("hi"), py::arg("relu"), py::arg("out_u8"),
        "y (m, n) = requantise(w (m, k) int8 x x (n, k) u8 transposed) with the GEMM variant `isa`.");
  q.def("qgemv", &qgemv, py::arg("isa"), py::arg("w"), py::arg("x"), py::arg("ibias"), py::arg("mult"), py::arg("add"),
        py::arg("lo"), py::arg("hi"), py::arg("relu"), py::arg("out_u8"),
        "y (n, m): each row of x (n, k) u8 through the one-column kernel of `isa` ('scalar' or 'avx2').");
  q.def(
      "set_conv2d_winograd",
      [](const std::string& mode) {
        if (mode == "auto")
          set_qconv2d_winograd(QWinogradMode::kAuto);
        else if (mode == "always")
          set_qconv2d_winograd(QWinogradMode::kAlways);
        else if (mode == "never")
          set_qconv2d_winograd(QWinogradMode::kNever);
        else
          throw ValueError("int8.set_conv2d_winograd: mode must be 'auto', 'always' or 'never', got '" + mode + "'");
      },
      py::arg("mode"),
      "The int8 Winograd F(2x2, 3x3) path of quantized 3x3 stride-1 convolutions (exact: the same outputs as the "
      "direct path): 'auto' (where it pays; the default), 'always' (wherever it applies: int32 sums cannot "
      "overflow) or 'never' (the direct paths). Process-wide.");
  q.def(
      "conv2d_winograd",
      [] {
        const QWinogradMode m = qconv2d_winograd();
        return std::string(m == QWinogradMode::kAuto ? "auto" : m == QWinogradMode::kAlways ? "always" : "never");
      },
      "The int8 Winograd mode: 'auto', 'always' or 'never'.");
  q.def("winograd_runs", &qwinograd_runs,
        "How many quantized convolutions have run on the int8 Winograd path (process-wide).");
  q.def(
      "quantize",
      [](const std::string& isa, const Arr<float>& x, float scale, float zp) {
        const bool v = vector_isa(isa, "quantize");
        py::array_t<uint8_t> out(x.size());
        (v ? CPUCNN_INT8_AVX2(quantize_u7) : quantize_u7_scalar)(x.data(), out.mutable_data(), x.size(), scale, zp);
        return out;
      },
      py::arg("isa"), py::arg("x"), py::arg("scale"), py::arg("zero_point"));
  q.def(
      "dequantize",
      [](const std::string& isa, const Arr<uint8_t>& qv, float scale, float zp) {
        const bool v = vector_isa(isa, "dequantize");
        py::array_t<float> out(qv.size());
        (v ? CPUCNN_INT8_AVX2(dequantize_u8) : dequantize_u8_scalar)(qv.data(), out.mutable_data(), qv.size(), scale, zp);
        return out;
      },
      py::arg("isa"), py::arg("q"), py::arg("scale"), py::arg("zero_point"));
  q.def(
      "maxpool2d",
      [](const std::string& isa, const Arr<uint8_t>& x, int64_t k, int64_t s, int64_t pad) {
        const bool v = vector_isa(isa, "maxpool2d");
        if (x.ndim() != 3) throw ValueError("maxpool2d: x must be (planes, h, w)");
        if (k <= 0 || s <= 0 || pad < 0 || 2 * pad > k || k > x.shape(1) + 2 * pad || k > x.shape(2) + 2 * pad)
          throw ValueError("maxpool2d: bad window");
        Pool2dParams p{x.shape(1), x.shape(2), (x.shape(1) + 2 * pad - k) / s + 1, (x.shape(2) + 2 * pad - k) / s + 1,
                       k, k, s, s, pad, pad};
        py::array_t<uint8_t> out({x.shape(0), p.ho, p.wo});
        (v ? CPUCNN_INT8_AVX2(qmaxpool2d) : qmaxpool2d_scalar)(x.data(), out.mutable_data(), x.shape(0), p);
        return out;
      },
      py::arg("isa"), py::arg("x"), py::arg("pool"), py::arg("stride"), py::arg("padding"));
}

}  // namespace cpucnn::bindings
