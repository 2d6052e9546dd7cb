// Every kernel of the table of each ISA this CPU runs (avx512, avx2 on x86; neon on aarch64, here
// under qemu-user) checked against the scalar table's kernel on ragged sizes: GEMM in its forward
// (A B), backward-data (A^T B) and backward-weights (A B^T) forms, with and without accumulate and
// with A pre-packed, on whole and partial tiles; gemv; im2col (forward) and col2im (backward-data);
// the Winograd F(2x2, 3x3) transforms (input, output, grad_output, weights plain and flipped: no
// scalar table entry, so against the shared loops of kernels/winograd/*.inc compiled here without
// ISA flags); ReLU forward/backward and sum; max pooling forward (values and argmax, with ties and
// NaN) and backward; SGD and Adam updates. Float reassociation (FMA, lane order) is allowed where
// the kernel reorders sums: |got - want| <= 1e-5 * (sum of |terms|) + 1e-6; kernels documented as
// bit-for-bit the scalar ones (ReLU, max pooling, SGD, Adam) must match exactly.
//
// An ISA compiled in but not runnable on this CPU is skipped with the reason printed; table slots
// with no scalar counterpart (the x86 thin-layer convolutions, Winograd F(4x4), implicit im2col)
// are listed as not checked here (the Python conv tests cover them).
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
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/winograd.hpp"

namespace cpucnn {
// The reference Winograd F(2x2) transforms: the shared loops, compiled here with no ISA flags.
#include "kernels/winograd/weights.inc"
#include "kernels/winograd/winograd.inc"
}  // namespace cpucnn

namespace {

using cpucnn::KernelTable;
using cpucnn_test::check;

std::mt19937 g_rng(12345);

std::vector<float> randv(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(g_rng);
  return v;
}

std::string fmt(const char* f, long long a = 0, long long b = 0, long long c = 0, long long d = 0,
                long long e = 0, long long g = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c, d, e, g);
  return buf;
}

// got vs want within tol * scale[i] + 1e-6 (scale: sum of |terms| of each value); the worst
// index is reported.
bool close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& scale,
           double tol, std::string* why) {
  if (got.size() != want.size()) {
    *why = "sizes differ";
    return false;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - double(want[i]));
    const double lim = tol * (scale.empty() ? std::fabs(double(want[i])) : scale[i]) + 1e-6;
    if (!(d <= lim)) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "index %zu: got %.9g, want %.9g (|diff| %.3g > %.3g)", i, double(got[i]),
                    double(want[i]), d, lim);
      *why = buf;
      return false;
    }
  }
  return true;
}

bool same_bits(const void* a, const void* b, size_t bytes, std::string* why) {
  if (std::memcmp(a, b, bytes) == 0) return true;
  const unsigned char* x = static_cast<const unsigned char*>(a);
  const unsigned char* y = static_cast<const unsigned char*>(b);
  size_t i = 0;
  while (x[i] == y[i]) ++i;
  *why = "first differing byte " + std::to_string(i) + " (element " + std::to_string(i / 4) + ")";
  return false;
}

// ---------------------------------------------------------------------------------------------
// GEMM: C[m x n] (+)= op(A) op(B) through the table's tile function over tiles of mc x nc.
std::vector<float> run_gemm(const KernelTable& kt, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                            const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c0,
                            bool acc, bool prepack, int64_t tile_m, int64_t tile_n) {
  cpucnn::GemmTile t;
  t.trans_a = ta;
  t.trans_b = tb;
  t.m = m;
  t.n = n;
  t.k = k;
  t.a = a.data();
  t.lda = ta ? m : k;
  t.b = b.data();
  t.ldb = tb ? k : n;
  std::vector<float> c = c0;
  t.c = c.data();
  t.ldc = n;
  t.accumulate = acc;
  const int64_t mr = kt.gemm_mr, nr = kt.gemm_nr;
  std::vector<float> packed;
  if (prepack) {
    packed.assign(static_cast<size_t>((m + mr - 1) / mr * mr * k), 0.0f);
    kt.gemm_pack_a(t, packed.data());
    t.packed_a = packed.data();
  }
  const int64_t kc = std::min<int64_t>(k, cpucnn::kGemmKc);
  std::vector<float> ap(static_cast<size_t>(kc * ((std::min<int64_t>(tile_m, cpucnn::kGemmMc) + mr - 1) / mr * mr)));
  std::vector<float> bp(static_cast<size_t>(kc * ((tile_n + nr - 1) / nr * nr)));
  for (int64_t i0 = 0; i0 < m; i0 += tile_m)
    for (int64_t j0 = 0; j0 < n; j0 += tile_n)
      kt.gemm_tile(t, i0, std::min(tile_m, m - i0), j0, std::min(tile_n, n - j0), ap.data(), bp.data());
  return c;
}

void test_gemm(const KernelTable& kt, const KernelTable& ref) {
  struct Case {
    int64_t m, n, k;
  };
  // Ragged in every dimension: edges of the MR x NR tile, depths around kGemmKc.
  const Case cases[] = {{1, 1, 1},   {7, 13, 5},   {8, 12, 16},  {9, 25, 33},  {17, 11, 257},
                        {33, 50, 300}, {6, 16, 64}, {200, 37, 19}, {5, 70, 520}};
  const char* forms[] = {"forward A*B", "backward-data A^T*B", "backward-weights A*B^T", "A^T*B^T"};
  for (const Case& cs : cases)
    for (int form = 0; form < 4; ++form)
      for (int variant = 0; variant < 3; ++variant) {
        const bool ta = form == 1 || form == 3, tb = form == 2 || form == 3;
        const bool acc = variant == 1, prepack = variant == 2 && !ta;
        const auto a = randv(static_cast<size_t>(cs.m * cs.k)), b = randv(static_cast<size_t>(cs.k * cs.n));
        const auto c0 = randv(static_cast<size_t>(cs.m * cs.n));
        // Whole tile, and tiles that split rows and columns unevenly.
        // (With A pre-packed, a tile starts on a panel: a multiple of the table's MR rows.)
        int64_t tm = variant == 0 ? cs.m : std::max<int64_t>(1, cs.m / 2 + 1);
        if (prepack) tm = (tm + kt.gemm_mr - 1) / kt.gemm_mr * kt.gemm_mr;
        const int64_t tn = variant == 0 ? cs.n : std::max<int64_t>(1, cs.n / 3 + 1);
        const auto got = run_gemm(kt, ta, tb, cs.m, cs.n, cs.k, a, b, c0, acc, prepack, tm, tn);
        const auto want = run_gemm(ref, ta, tb, cs.m, cs.n, cs.k, a, b, c0, acc, false, cs.m, cs.n);
        std::vector<double> scale(got.size());
        for (int64_t i = 0; i < cs.m; ++i)
          for (int64_t j = 0; j < cs.n; ++j) {
            double s = acc ? std::fabs(c0[i * cs.n + j]) : 0.0;
            for (int64_t p = 0; p < cs.k; ++p) {
              const float av = ta ? a[p * cs.m + i] : a[i * cs.k + p];
              const float bv = tb ? b[j * cs.k + p] : b[p * cs.n + j];
              s += std::fabs(double(av) * bv);
            }
            scale[i * cs.n + j] = s;
          }
        std::string why;
        check(close(got, want, scale, 1e-5, &why),
              std::string(kt.isa) + " gemm " + forms[form] +
                  fmt(" m=%lld n=%lld k=%lld accumulate=%lld prepacked=%lld tile %lldx", cs.m, cs.n, cs.k, acc,
                      prepack, tm) +
                  std::to_string(tn) + ": " + why);
      }
}

void test_gemv(const KernelTable& kt, const KernelTable& ref) {
  for (int64_t n : {1, 3, 4, 7, 33})
    for (int64_t k : {1, 5, 16, 17, 100, 1000})
      for (bool acc : {false, true}) {
        const int64_t ldw = k + 3;
        const auto w = randv(static_cast<size_t>(n * ldw)), x = randv(static_cast<size_t>(k));
        auto y = randv(static_cast<size_t>(n)), y2 = y;
        kt.gemv_rows(w.data(), ldw, x.data(), k, y.data(), n, acc);
        ref.gemv_rows(w.data(), ldw, x.data(), k, y2.data(), n, acc);
        std::vector<double> scale(static_cast<size_t>(n), 0.0);
        for (int64_t j = 0; j < n; ++j)
          for (int64_t p = 0; p < k; ++p) scale[j] += std::fabs(double(w[j * ldw + p]) * x[p]) + std::fabs(y2[j]);
        std::string why;
        check(close(y, y2, scale, 1e-5, &why),
              std::string(kt.isa) + fmt(" gemv n=%lld k=%lld accumulate=%lld: ", n, k, acc) + why);
      }
}

// ---------------------------------------------------------------------------------------------
void test_im2col(const KernelTable& kt, const KernelTable& ref) {
  struct G {
    int64_t h, w, kh, kw, sh, sw, ph, pw, dh, dw, c;
  };
  const G cases[] = {{7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 3},  {13, 11, 3, 4, 2, 1, 1, 2, 1, 1, 2},
                     {10, 10, 5, 5, 1, 1, 2, 2, 1, 1, 1}, {9, 17, 3, 3, 2, 2, 0, 0, 2, 1, 4},
                     {5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 5},   {28, 28, 5, 5, 1, 1, 2, 2, 1, 1, 1}};
  for (const G& s : cases) {
    cpucnn::ConvGeometry g{s.h, s.w, 0, 0, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw};
    g.ho = (s.h + 2 * s.ph - s.dh * (s.kh - 1) - 1) / s.sh + 1;
    g.wo = (s.w + 2 * s.pw - s.dw * (s.kw - 1) - 1) / s.sw + 1;
    const int64_t rows = s.c * s.kh * s.kw, cols = g.ho * g.wo, ld = cols + 5;
    const auto x = randv(static_cast<size_t>(s.c * s.h * s.w));
    std::vector<float> col(static_cast<size_t>(rows * ld), 7.0f), col2 = col;
    kt.im2col(x.data(), g, s.c, col.data(), ld);
    ref.im2col(x.data(), g, s.c, col2.data(), ld);
    std::string why;
    const std::string shape = fmt(" x %lldx%lldx%lld kernel %lldx%lld stride %lld", s.c, s.h, s.w, s.kh, s.kw, s.sh) +
                              fmt(",%lld pad %lld,%lld dilation %lld,%lld: ", s.sw, s.ph, s.pw, s.dh, s.dw);
    check(same_bits(col.data(), col2.data(), col.size() * 4, &why), std::string(kt.isa) + " im2col (forward)" + shape + why);
    const auto dcol = randv(static_cast<size_t>(rows * ld));
    std::vector<float> dx(x.size(), 0.0f), dx2 = dx;
    kt.col2im(dcol.data(), ld, g, s.c, dx.data());
    ref.col2im(dcol.data(), ld, g, s.c, dx2.data());
    std::vector<double> scale(dx.size(), double(s.kh * s.kw));  // taps summed into a pixel, |dcol| < 1
    check(close(dx, dx2, scale, 1e-6, &why), std::string(kt.isa) + " col2im (backward-data)" + shape + why);
  }
}

// ---------------------------------------------------------------------------------------------
void test_winograd(const KernelTable& kt) {
  if (!kt.winograd_input) {
    std::printf("%s: no Winograd F(2x2) kernels in the table: not checked\n", kt.isa);
    return;
  }
  struct S {
    int64_t n, c, co, h, w;
  };
  const S cases[] = {{1, 3, 2, 5, 7}, {2, 8, 9, 8, 8}, {3, 5, 4, 11, 6}, {1, 16, 8, 1, 3}};
  for (const S& s : cases) {
    cpucnn::WinogradGeometry g{s.h, s.w, s.h, s.w, 1, 1, (s.h + 1) / 2, (s.w + 1) / 2};
    const int64_t units = s.n * g.th, ld = units * g.tw + 3;
    const std::string shape = fmt(" n=%lld cin=%lld cout=%lld %lldx%lld: ", s.n, s.c, s.co, s.h, s.w);
    std::string why;
    // input transform (forward)
    const auto x = randv(static_cast<size_t>(s.n * s.c * s.h * s.w));
    std::vector<float> scratch(static_cast<size_t>(cpucnn::winograd_input_scratch(s.c, g)));
    const int64_t vsize = 16 * cpucnn::winograd_plane(s.c, ld);
    std::vector<float> v(static_cast<size_t>(vsize), 0.0f), v2 = v;
    for (int64_t u0 = 0; u0 < units; u0 += 2) {  // blocks of two units, as threads would take them
      const int64_t u1 = std::min(units, u0 + 2);
      const int64_t off = u0 * g.tw;
      kt.winograd_input(x.data(), s.c, s.c * s.h * s.w, g, u0, u1, v.data() + off, ld, scratch.data());
      cpucnn::winograd_input_impl(x.data(), s.c, s.c * s.h * s.w, g, u0, u1, v2.data() + off, ld, scratch.data());
    }
    check(close(v, v2, {}, 1e-6, &why), std::string(kt.isa) + " winograd input (forward)" + shape + why);
    // output transform (forward, + bias, ReLU and not)
    const int64_t msize = 16 * cpucnn::winograd_plane(s.co, ld);
    const auto m = randv(static_cast<size_t>(msize));
    const auto bias = randv(static_cast<size_t>(s.co));
    for (bool relu : {false, true}) {
      std::vector<float> y(static_cast<size_t>(s.n * s.co * s.h * s.w), 0.0f), y2 = y;
      kt.winograd_output(m.data(), ld, s.co, bias.data(), relu, g, 0, units, y.data(), s.co * s.h * s.w);
      cpucnn::winograd_output_impl(m.data(), ld, s.co, bias.data(), relu, g, 0, units, y2.data(), s.co * s.h * s.w);
      std::vector<double> scale(y.size(), 10.0);
      check(close(y, y2, scale, 1e-6, &why),
            std::string(kt.isa) + " winograd output (forward" + (relu ? ", relu)" : ")") + shape + why);
    }
    // grad_output (backward-data and -weights both start from it)
    const auto dy = randv(static_cast<size_t>(s.n * s.co * s.h * s.w));
    std::vector<float> dm(static_cast<size_t>(msize), 0.0f), dm2 = dm;
    kt.winograd_grad_output(dy.data(), s.co, s.co * s.h * s.w, g, 0, units, dm.data(), ld);
    cpucnn::winograd_grad_output_impl(dy.data(), s.co, s.co * s.h * s.w, g, 0, units, dm2.data(), ld);
    std::vector<double> scale(dm.size(), 10.0);
    check(close(dm, dm2, scale, 1e-6, &why), std::string(kt.isa) + " winograd grad_output (backward)" + shape + why);
    // weights, plain (forward) and flipped (backward-data)
    const auto k = randv(static_cast<size_t>(s.co * s.c * 9));
    for (bool flip : {false, true}) {
      std::vector<float> u(static_cast<size_t>(16 * s.co * s.c)), u2 = u;
      kt.winograd_weights(k.data(), s.co, s.c, s.c * 9, 9, flip, u.data());
      cpucnn::winograd_weights_impl(k.data(), s.co, s.c, s.c * 9, 9, flip, u2.data());
      std::vector<double> sc(u.size(), 10.0);
      check(close(u, u2, sc, 1e-6, &why),
            std::string(kt.isa) + " winograd weights (" + (flip ? "flipped, backward-data)" : "forward)") + shape +
                why);
    }
  }
}

// ---------------------------------------------------------------------------------------------
void test_eltwise(const KernelTable& kt, const KernelTable& ref) {
  for (int64_t n : {1, 3, 4, 7, 8, 9, 31, 64, 1001}) {
    auto x = randv(static_cast<size_t>(n));
    if (n > 4) {
      x[1] = -0.0f;
      x[2] = std::numeric_limits<float>::quiet_NaN();
      x[3] = 0.0f;
    }
    std::vector<float> y(x.size()), y2(x.size());
    kt.relu_fwd(x.data(), y.data(), n);
    ref.relu_fwd(x.data(), y2.data(), n);
    std::string why;
    check(same_bits(y.data(), y2.data(), y.size() * 4, &why), std::string(kt.isa) + fmt(" relu forward n=%lld: ", n) + why);
    const auto dy = randv(static_cast<size_t>(n));
    std::vector<float> dx(x.size()), dx2(x.size());
    kt.relu_bwd(y2.data(), dy.data(), dx.data(), n);
    ref.relu_bwd(y2.data(), dy.data(), dx2.data(), n);
    check(same_bits(dx.data(), dx2.data(), dx.size() * 4, &why), std::string(kt.isa) + fmt(" relu backward n=%lld: ", n) + why);
    const auto s = randv(static_cast<size_t>(n), -1000.0f, 1000.0f);
    const double a = kt.sum(s.data(), n), b = ref.sum(s.data(), n);
    double mag = 0.0;
    for (float v : s) mag += std::fabs(v);
    check(std::fabs(a - b) <= 1e-12 * mag,
          std::string(kt.isa) + fmt(" sum n=%lld: ", n) + std::to_string(a) + " vs " + std::to_string(b));
  }
}

void test_pool(const KernelTable& kt, const KernelTable& ref) {
  struct P {
    int64_t planes, h, w, k, s, pad;
  };
  const P cases[] = {{3, 8, 8, 2, 2, 0},  {2, 7, 9, 2, 2, 0},  {5, 28, 28, 2, 2, 0}, {1, 2, 2, 2, 2, 0},
                     {2, 5, 19, 2, 2, 0}, {2, 9, 10, 3, 2, 1}, {1, 6, 6, 3, 1, 1}};
  for (const P& c : cases) {
    cpucnn::Pool2dParams p{c.h, c.w, (c.h + 2 * c.pad - c.k) / c.s + 1, (c.w + 2 * c.pad - c.k) / c.s + 1,
                           c.k, c.k, c.s, c.s, c.pad, c.pad};
    auto x = randv(static_cast<size_t>(c.planes * c.h * c.w));
    // Ties, NaN, -0 and +0 in some windows.
    for (size_t i = 0; i + 1 < x.size(); i += 11) x[i + 1] = x[i];
    for (size_t i = 5; i < x.size(); i += 37) x[i] = std::numeric_limits<float>::quiet_NaN();
    for (size_t i = 7; i + 1 < x.size(); i += 29) {
      x[i] = -0.0f;
      x[i + 1] = 0.0f;
    }
    const size_t outs = static_cast<size_t>(c.planes * p.ho * p.wo);
    std::vector<float> y(outs), y2(outs);
    std::vector<int32_t> am(outs), am2(outs);
    kt.maxpool2d_fwd(x.data(), y.data(), am.data(), c.planes, p);
    ref.maxpool2d_fwd(x.data(), y2.data(), am2.data(), c.planes, p);
    const std::string shape =
        fmt(" planes=%lld %lldx%lld window %lld stride %lld pad %lld: ", c.planes, c.h, c.w, c.k, c.s, c.pad);
    std::string why;
    check(same_bits(y.data(), y2.data(), outs * 4, &why), std::string(kt.isa) + " maxpool forward" + shape + why);
    check(same_bits(am.data(), am2.data(), outs * 4, &why), std::string(kt.isa) + " maxpool argmax" + shape + why);
    auto dy = randv(outs);
    dy[0] = -0.0f;
    std::vector<float> dx(x.size(), 3.0f), dx2(x.size(), 5.0f);  // garbage the kernels must overwrite
    kt.maxpool2d_bwd(dy.data(), am2.data(), dx.data(), c.planes, p);
    ref.maxpool2d_bwd(dy.data(), am2.data(), dx2.data(), c.planes, p);
    check(same_bits(dx.data(), dx2.data(), dx.size() * 4, &why), std::string(kt.isa) + " maxpool backward" + shape + why);
  }
}

void test_optim(const KernelTable& kt, const KernelTable& ref) {
  for (int64_t n : {1, 3, 4, 5, 8, 13, 100}) {
    const auto w0 = randv(static_cast<size_t>(n)), g = randv(static_cast<size_t>(n)), b0 = randv(static_cast<size_t>(n));
    for (int mode = 0; mode < 5; ++mode) {
      cpucnn::SgdParams p{0.05f, mode == 0 ? 0.0f : 0.9f, mode >= 3 ? 1e-3f : 0.0f, mode == 2 || mode == 4, mode == 3};
      auto w = w0, w2 = w0, b = b0, b2 = b0;
      for (int step = 0; step < 3; ++step) {
        kt.sgd_update(w.data(), g.data(), b.data(), n, p);
        ref.sgd_update(w2.data(), g.data(), b2.data(), n, p);
        p.first_step = false;
      }
      std::string why;
      check(same_bits(w.data(), w2.data(), w.size() * 4, &why) && same_bits(b.data(), b2.data(), b.size() * 4, &why),
            std::string(kt.isa) + fmt(" sgd n=%lld mode %lld: ", n, mode) + why);
    }
    for (float wd : {0.0f, 0.01f}) {
      auto w = w0, w2 = w0;
      std::vector<float> m(w.size(), 0.0f), m2 = m, v(w.size(), 0.0f), v2 = v;
      for (int t = 1; t <= 3; ++t) {
        const cpucnn::AdamParams p{1e-3f, 0.9f, 0.999f, 1e-8f, wd, 1.0f - std::pow(0.9f, float(t)),
                                   1.0f - std::pow(0.999f, float(t))};
        kt.adam_update(w.data(), g.data(), m.data(), v.data(), n, p);
        ref.adam_update(w2.data(), g.data(), m2.data(), v2.data(), n, p);
      }
      std::string why;
      check(same_bits(w.data(), w2.data(), w.size() * 4, &why) && same_bits(m.data(), m2.data(), m.size() * 4, &why) &&
                same_bits(v.data(), v2.data(), v.size() * 4, &why),
            std::string(kt.isa) + fmt(" adam n=%lld: ", n) + (wd > 0 ? "weight decay: " : "") + why);
    }
  }
}

void list_unchecked(const KernelTable& kt) {
  std::string s;
  if (kt.im2col_pack) s += " im2col_pack";
  if (kt.conv_direct_fwd) s += " conv2d_direct";
  if (kt.conv_lanes_fwd) s += " conv2d_lanes";
  if (kt.conv_batch_fwd) s += " conv2d_batch";
  if (kt.winograd4_input) s += " winograd4";
  if (kt.winograd_input_adjoint) s += " winograd_input_adjoint";
  if (!s.empty())
    std::printf("%s: not checked here (no scalar kernel to compare with; the Python conv tests cover them):%s\n",
                kt.isa, s.c_str());
}

}  // namespace

int main() {
  const std::vector<std::string> compiled = cpucnn::compiled_isas(), avail = cpucnn::available_isas();
  const cpucnn::CpuFeatures& f = cpucnn::cpu_features();
#if defined(__aarch64__)
  std::printf("aarch64 HWCAP: asimd %d, asimddp %d, fphp %d, asimdhp %d\n", f.asimd, f.asimddp, f.fphp, f.asimdhp);
  check(f.asimd == (avail.front() == "neon"), "neon is available exactly when HWCAP has asimd");
#else
  std::printf("%s: avx2 %d, fma %d, avx512f %d\n", f.brand.c_str(), f.avx2, f.fma, f.avx512f);
#endif
  cpucnn::set_isa("scalar");
  const KernelTable& ref = cpucnn::kernels();
  int tested = 0;
  for (const std::string& isa : compiled) {
    if (isa == "scalar") continue;
    bool runs = false;
    for (const auto& a : avail) runs |= a == isa;
    if (!runs) {
      std::printf("SKIPPED %s: this CPU lacks it (available: ", isa.c_str());
      for (const auto& a : avail) std::printf("%s ", a.c_str());
      std::printf(")\n");
      continue;
    }
    cpucnn::set_isa(isa);
    const KernelTable& kt = cpucnn::kernels();
    const int before = cpucnn_test::g_failed;
    test_gemm(kt, ref);
    test_gemv(kt, ref);
    test_im2col(kt, ref);
    test_winograd(kt);
    test_eltwise(kt, ref);
    test_pool(kt, ref);
    test_optim(kt, ref);
    list_unchecked(kt);
    std::printf("%s vs scalar: %s\n", isa.c_str(), cpucnn_test::g_failed == before ? "all match" : "MISMATCHES above");
    ++tested;
  }
  if (tested == 0) std::printf("no vector ISA runs here: only scalar, nothing to compare\n");
  return cpucnn_test::report();
}
