// The int8 GEMM variants this CPU runs (int8_isas(): avx512vnni / avxvnni / avx2 on x86-64,
// neondot / neon on aarch64) and each vector table's qgemv, quantize and dequantize, checked against
// the scalar reference *exactly* (integer sums, the same requantisation: kernels/int8.hpp) on ragged sizes: rows not a
// multiple of the 4-row panel, K not a multiple of 4, partial column panels, u8 output (with clamps
// and round-half-to-even ties) and float output with and without ReLU, strided output. A variant
// compiled in but not runnable here (e.g. neondot on a CPU without asimddp) is skipped with the
// reason printed; on aarch64 the table must pick neondot exactly when HWCAP reports asimddp.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "dispatch/cpu_features.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/int8.hpp"
#include "ops/qgemm.hpp"

namespace {

using cpucnn::QGemmOut;
using cpucnn_test::check;

std::mt19937 g_rng(2024);

int irand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_rng); }

struct Problem {
  int64_t m, k, k4;
  std::vector<int8_t> a;                // packed weights
  std::vector<uint8_t> x;               // activations: n rows of k codes (0..127)
  std::vector<int32_t> ibias;
  std::vector<float> mult, add;
};

Problem make(int64_t m, int64_t k, int64_t n, int variant) {
  Problem p;
  p.m = m;
  p.k = k;
  p.k4 = (k + 3) / 4;
  std::vector<float> w(static_cast<size_t>(m * k));
  for (float& v : w) v = static_cast<float>(irand(-127, 127));
  if (!w.empty()) w[0] = -127.0f;
  p.a.resize(static_cast<size_t>((m + 3) / 4 * p.k4 * 16));
  cpucnn::qpack_weights(w.data(), m, k, p.a.data());
  p.x.resize(static_cast<size_t>(n * k));
  for (uint8_t& v : p.x) v = static_cast<uint8_t>(irand(0, 127));
  if (!p.x.empty()) p.x[0] = 127;
  p.ibias.resize(static_cast<size_t>(m));
  p.mult.resize(static_cast<size_t>(m));
  p.add.resize(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r) {
    p.ibias[r] = irand(-20000, 20000);
    if (variant == 0) {  // halves: round-half-to-even ties
      p.mult[r] = 0.5f;
      p.add[r] = static_cast<float>(irand(0, 100));
    } else {  // spans the clamps
      p.mult[r] = std::uniform_real_distribution<float>(1e-4f, 4e-3f)(g_rng);
      p.add[r] = std::uniform_real_distribution<float>(-20.0f, 150.0f)(g_rng);
    }
  }
  return p;
}

// y (m x n, out element (r, j) at r * n + j or transposed) = A x^T through fn, panel by panel.
template <typename T>
std::vector<T> run_gemm(cpucnn::QGemmFn fn, int nr, const Problem& p, int64_t n, bool u8, bool relu, bool trans) {
  std::vector<T> y(static_cast<size_t>(p.m * n), T(0));
  std::vector<uint8_t> b(static_cast<size_t>(p.k4 * nr * 4));
  QGemmOut o;
  o.ibias = p.ibias.data();
  o.mult = p.mult.data();
  o.add = p.add.data();
  o.lo = relu ? 3.0f : 0.0f;
  o.hi = 127.0f;
  o.relu = relu;
  o.row_stride = trans ? 1 : n;
  o.col_stride = trans ? p.m : 1;
  for (int64_t j0 = 0; j0 < n; j0 += nr) {
    const int64_t nc = n - j0 < nr ? n - j0 : nr;
    cpucnn::qpack_rows(p.x.data(), p.k, p.k, j0, nc, nr, p.k4, b.data());
    T* base = y.data() + (trans ? j0 * p.m : j0);
    if constexpr (sizeof(T) == 1) {
      o.y8 = reinterpret_cast<uint8_t*>(base);
    } else {
      o.yf = reinterpret_cast<float*>(base);
    }
    (void)u8;
    fn(p.a.data(), p.m, p.k4, b.data(), nc, o);
  }
  return y;
}

template <typename T>
std::vector<T> run_gemv(cpucnn::QGemvFn fn, const Problem& p, bool relu) {
  std::vector<T> y(static_cast<size_t>(p.m), T(0));
  std::vector<uint8_t> xk(static_cast<size_t>(p.k4 * 4), 0);
  std::memcpy(xk.data(), p.x.data(), static_cast<size_t>(p.k));
  QGemmOut o;
  o.ibias = p.ibias.data();
  o.mult = p.mult.data();
  o.add = p.add.data();
  o.lo = relu ? 3.0f : 0.0f;
  o.relu = relu;
  o.row_stride = 1;
  if constexpr (sizeof(T) == 1)
    o.y8 = reinterpret_cast<uint8_t*>(y.data());
  else
    o.yf = reinterpret_cast<float*>(y.data());
  fn(p.a.data(), p.m, p.k4, xk.data(), o);
  return y;
}

std::string shape(const char* what, const std::string& isa, int64_t m, int64_t k, int64_t n, const char* mode) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s %s vs scalar, m=%lld k=%lld n=%lld (%s): not bit-identical", what, isa.c_str(),
                static_cast<long long>(m), static_cast<long long>(k), static_cast<long long>(n), mode);
  return buf;
}

template <typename T>
bool same(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

void test_variant(const std::string& isa) {
  int nr = 0;
  const cpucnn::QGemmFn fn = cpucnn::qgemm_variant(isa, &nr);
  const int64_t ms[] = {1, 3, 4, 5, 8, 13, 17};
  const int64_t ks[] = {1, 3, 4, 7, 8, 16, 33, 100, 259};
  for (int64_t m : ms)
    for (int64_t k : ks) {
      const int64_t n = irand(1, 3 * nr);
      const Problem p = make(m, k, n, irand(0, 1));
      const bool trans = irand(0, 1) == 1;
      check(same(run_gemm<uint8_t>(fn, nr, p, n, true, false, trans),
                 run_gemm<uint8_t>(cpucnn::qgemm_scalar, cpucnn::kQgemmNrScalar, p, n, true, false, trans)),
            shape("qgemm", isa, m, k, n, "u8"));
      check(same(run_gemm<uint8_t>(fn, nr, p, n, true, true, trans),
                 run_gemm<uint8_t>(cpucnn::qgemm_scalar, cpucnn::kQgemmNrScalar, p, n, true, true, trans)),
            shape("qgemm", isa, m, k, n, "u8, lo 3"));
      for (bool relu : {false, true})
        check(same(run_gemm<float>(fn, nr, p, n, false, relu, trans),
                   run_gemm<float>(cpucnn::qgemm_scalar, cpucnn::kQgemmNrScalar, p, n, false, relu, trans)),
              shape("qgemm", isa, m, k, n, relu ? "float, relu" : "float"));
    }
  // every column count of one panel
  for (int64_t n = 1; n <= nr; ++n) {
    const Problem p = make(6, 37, n, 1);
    check(same(run_gemm<uint8_t>(fn, nr, p, n, true, false, false),
               run_gemm<uint8_t>(cpucnn::qgemm_scalar, cpucnn::kQgemmNrScalar, p, n, true, false, false)),
          shape("qgemm", isa, 6, 37, n, "u8, partial panel"));
  }
}

void test_gemv(const cpucnn::KernelTable& kt, const std::string& name) {
  const int64_t ms[] = {1, 3, 4, 8, 13, 16, 24, 33};
  const int64_t ks[] = {1, 3, 4, 15, 16, 17, 64, 259};
  for (int64_t m : ms)
    for (int64_t k : ks) {
      const Problem p = make(m, k, 1, irand(0, 1));
      check(same(run_gemv<uint8_t>(kt.qgemv, p, false), run_gemv<uint8_t>(cpucnn::qgemv_scalar, p, false)),
            shape("qgemv", name, m, k, 1, "u8"));
      for (bool relu : {false, true})
        check(same(run_gemv<float>(kt.qgemv, p, relu), run_gemv<float>(cpucnn::qgemv_scalar, p, relu)),
              shape("qgemv", name, m, k, 1, relu ? "float, relu" : "float"));
    }
}

// The table's quantize / dequantize against the scalar references, bit for bit: ties of the
// rounding (x = (i + 0.5) * scale), values past both clamps, NaN and infinities, ragged lengths.
void test_quantize(const cpucnn::KernelTable& kt, const std::string& name) {
  const float scale = 0.037f, zp = 11.0f;
  for (int64_t n : {1, 7, 8, 9, 31, 64, 1001}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      switch (irand(0, 3)) {
        case 0: x[i] = (static_cast<float>(irand(-30, 140)) + 0.5f) * scale; break;
        case 1: x[i] = std::uniform_real_distribution<float>(-2.0f, 6.0f)(g_rng); break;
        case 2: x[i] = std::uniform_real_distribution<float>(-1e6f, 1e6f)(g_rng); break;
        default: {
          const float special[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(), -0.0f};
          x[i] = special[irand(0, 3)];
        }
      }
    }
    std::vector<uint8_t> q(static_cast<size_t>(n)), qr(static_cast<size_t>(n));
    kt.quantize_u7(x.data(), q.data(), n, scale, zp);
    cpucnn::quantize_u7_scalar(x.data(), qr.data(), n, scale, zp);
    check(same(q, qr), shape("quantize_u7", name, n, 1, 1, "ties, clamps, NaN/inf"));
    std::vector<float> d(static_cast<size_t>(n)), dr(static_cast<size_t>(n));
    kt.dequantize_u8(qr.data(), d.data(), n, scale, zp);
    cpucnn::dequantize_u8_scalar(qr.data(), dr.data(), n, scale, zp);
    check(same(d, dr), shape("dequantize_u8", name, n, 1, 1, "codes 0..127"));
  }
}

// Through the op layer (packing with the table's qgemm_nr, the gemv route, the conv paths):
// quantized Conv2D and Dense on ISA `isa` against the scalar table, bit for bit.
void test_ops(const std::string& isa) {
  auto weights = [](int64_t m, int64_t k, std::vector<float>* w, std::vector<float>* ws, std::vector<float>* bias) {
    w->resize(static_cast<size_t>(m * k));
    ws->assign(static_cast<size_t>(m), 0.0f);
    bias->resize(static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r) {  // integer codes in [-127, 127] and a scale per row
      for (int64_t i = 0; i < k; ++i) (*w)[r * k + i] = static_cast<float>(irand(-127, 127));
      (*ws)[r] = std::uniform_real_distribution<float>(1e-3f, 1e-2f)(g_rng);
      (*bias)[r] = std::uniform_real_distribution<float>(-0.5f, 0.5f)(g_rng);
    }
  };
  for (bool out_u8 : {true, false})
    for (bool relu : {false, true}) {
      cpucnn::QActParams act;
      act.in_scale = 0.02f;
      act.in_zp = 9.0f;
      act.out_scale = 0.05f;
      act.out_zp = 20.0f;
      act.relu = relu;
      act.out_u8 = out_u8;
      // Conv2D: 3x3 stride 1 pad 1 (the shifted path), 3x3 stride 2, 1x1
      const int64_t geo[][5] = {{3, 11, 3, 1, 1}, {5, 9, 3, 2, 0}, {8, 7, 1, 1, 0}};  // cin, hw, kernel, stride, pad
      for (const auto& gg : geo) {
        const int64_t cin = gg[0], hw = gg[1], kk = gg[2], st = gg[3], pd = gg[4], cout = 13, n = 2;
        const int64_t ho = (hw + 2 * pd - kk) / st + 1;
        cpucnn::QConvGeo g{cin, hw, hw, kk, kk, st, st, pd, pd, 1, 1, ho, ho};
        std::vector<float> w, ws, bias;
        weights(cout, cin * kk * kk, &w, &ws, &bias);
        std::vector<uint8_t> x(static_cast<size_t>(n * cin * hw * hw));
        for (uint8_t& v : x) v = static_cast<uint8_t>(irand(0, 127));
        const size_t ny = static_cast<size_t>(n * cout * ho * ho);
        std::vector<uint8_t> y8[2];
        std::vector<float> yf[2];
        for (int t = 0; t < 2; ++t) {
          cpucnn::set_isa(t == 0 ? isa : "scalar");
          const auto pw = cpucnn::qpack_layer("test", w.data(), ws.data(), bias.data(), cout, cin * kk * kk, act);
          y8[t].assign(ny, 0);
          yf[t].assign(ny, 0.0f);
          cpucnn::qconv2d_forward(*pw, g, 9, x.data(), n, out_u8 ? y8[t].data() : nullptr,
                                  out_u8 ? nullptr : yf[t].data());
        }
        check(out_u8 ? same(y8[0], y8[1]) : same(yf[0], yf[1]),
              shape("qconv2d", isa, cout, cin * kk * kk, ho * ho, out_u8 ? (relu ? "u8, relu" : "u8")
                                                                         : (relu ? "float, relu" : "float")));
      }
      // Dense: batch 1, 2 (gemv route), 5, 40 (GEMM panels)
      for (int64_t n : {1, 2, 5, 40}) {
        const int64_t m = 21, k = 70;
        std::vector<float> w, ws, bias;
        weights(m, k, &w, &ws, &bias);
        std::vector<uint8_t> x(static_cast<size_t>(n * k));
        for (uint8_t& v : x) v = static_cast<uint8_t>(irand(0, 127));
        std::vector<uint8_t> y8[2];
        std::vector<float> yf[2];
        for (int t = 0; t < 2; ++t) {
          cpucnn::set_isa(t == 0 ? isa : "scalar");
          const auto pw = cpucnn::qpack_layer("test", w.data(), ws.data(), bias.data(), m, k, act);
          y8[t].assign(static_cast<size_t>(n * m), 0);
          yf[t].assign(static_cast<size_t>(n * m), 0.0f);
          cpucnn::qdense_forward(*pw, x.data(), n, out_u8 ? y8[t].data() : nullptr, out_u8 ? nullptr : yf[t].data());
        }
        check(out_u8 ? same(y8[0], y8[1]) : same(yf[0], yf[1]),
              shape("qdense", isa, m, k, n, out_u8 ? (relu ? "u8, relu" : "u8") : (relu ? "float, relu" : "float")));
      }
    }
}

}  // namespace

int main() {
  const cpucnn::CpuFeatures& f = cpucnn::cpu_features();
  const std::vector<std::string> vars = cpucnn::int8_isas();
  std::printf("int8 GEMM variants here:");
  for (const auto& v : vars) std::printf(" %s", v.c_str());
  std::printf("\n");
  check(!vars.empty() && vars.back() == "scalar", "int8_isas() ends with scalar");
#if defined(__aarch64__)
  std::printf("aarch64 HWCAP: asimd %d, asimddp %d\n", f.asimd, f.asimddp);
  if (!f.asimddp) std::printf("SKIPPED neondot: this CPU lacks the dot-product extension (HWCAP asimddp)\n");
  bool has_dot = false;
  for (const auto& v : vars) has_dot |= v == "neondot";
  check(has_dot == f.asimddp, "neondot is listed exactly when HWCAP has asimddp");
  if (f.asimd) {
    cpucnn::set_isa("neon");
    const cpucnn::KernelTable& kt = cpucnn::kernels();
    check(kt.qgemm == (f.asimddp ? cpucnn::qgemm_neondot : cpucnn::qgemm_neon),
          "the neon table's qgemm is neondot exactly when HWCAP has asimddp");
    check(kt.qgemm_nr == cpucnn::kQgemmNrNeon, "the neon table's qgemm_nr is 16");
  }
#else
  (void)f;
#endif
  int tested = 0;
  for (const auto& v : vars) {
    if (v == "scalar") continue;
    const int before = cpucnn_test::g_failed;
    test_variant(v);
    std::printf("qgemm %s vs scalar: %s\n", v.c_str(), cpucnn_test::g_failed == before ? "all equal" : "MISMATCHES");
    ++tested;
  }
  for (const auto& isa : cpucnn::available_isas()) {
    if (isa == "scalar") continue;
    cpucnn::set_isa(isa);
    const cpucnn::KernelTable& kt = cpucnn::kernels();
    const int before = cpucnn_test::g_failed;
    test_gemv(kt, isa);
    test_quantize(kt, isa);
    test_ops(isa);
    std::printf("qgemv, quantize, dequantize, quantized Conv2D / Dense ops of the %s table vs scalar: %s\n", isa.c_str(),
                cpucnn_test::g_failed == before ? "all equal" : "MISMATCHES");
  }
  if (tested == 0) std::printf("no vector int8 GEMM runs here: only scalar, nothing to compare\n");
  return cpucnn_test::report();
}
