// AVX2 optimizer updates, 8 parameters a step, bit-for-bit the scalar
// kernels' results: the same operations in the same order, each rounded
// (IEEE add, mul, div and sqrt are exact-rounded in every lane), and no
// fused multiply-adds, which the scalar build (no -mfma) never forms.
// GCC contracts a _mm256_mul_ps feeding an _mm256_add_ps into an FMA under
// its default -ffp-contract=fast, so every product goes through rounded().
// The tail (n % 8) runs the same arithmetic on masked loads, stored through
// a buffer (masked stores are slow on some CPUs).
#include <immintrin.h>

#include <math.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

// a * b, rounded to float: the empty asm makes the product a value the
// compiler must materialise, so it cannot fuse it into a following add.
inline __m256 mul(__m256 a, __m256 b) {
  __m256 r = _mm256_mul_ps(a, b);
  __asm__("" : "+x"(r));
  return r;
}

inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Loads 8 floats, or the first m < 8 (zeros after) at the tail.
inline __m256 load(const float* p, int64_t m, __m256i mask) {
  return m >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

inline void store(float* p, __m256 v, int64_t m) {
  if (m >= 8) return _mm256_storeu_ps(p, v);
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t q = 0; q < m; ++q) p[q] = t[q];
}

}  // namespace

// g += wd*w; buf = momentum*buf + g (buf = g on the first step);
// step = nesterov ? g + momentum*buf : buf; w -= lr*step (as the scalar kernel).
void sgd_update_avx2(float* w, const float* g, float* buf, int64_t n, const SgdParams& p) {
  const __m256 vlr = _mm256_set1_ps(p.lr), vmom = _mm256_set1_ps(p.momentum), vwd = _mm256_set1_ps(p.weight_decay);
  const bool use_mom = p.momentum != 0.0f;
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t m = n - i;
    const __m256i mask = first_lanes(m);
    const __m256 vw = load(w + i, m, mask);
    __m256 vg = _mm256_add_ps(load(g + i, m, mask), mul(vwd, vw));
    if (use_mom) {
      const __m256 vb = p.first_step ? vg : _mm256_add_ps(mul(vmom, load(buf + i, m, mask)), vg);
      store(buf + i, vb, m);
      vg = p.nesterov ? _mm256_add_ps(vg, mul(vmom, vb)) : vb;
    }
    store(w + i, _mm256_sub_ps(vw, mul(vlr, vg)), m);
  }
}

// PyTorch's Adam (L2 weight decay added to the gradient), as the scalar kernel.
void adam_update_avx2(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p) {
  const __m256 vb1 = _mm256_set1_ps(p.beta1), vb1c = _mm256_set1_ps(1.0f - p.beta1);
  const __m256 vb2 = _mm256_set1_ps(p.beta2), vb2c = _mm256_set1_ps(1.0f - p.beta2);
  const __m256 vwd = _mm256_set1_ps(p.weight_decay), veps = _mm256_set1_ps(p.eps);
  const __m256 vstep = _mm256_set1_ps(p.lr / p.bias_correction1);
  const __m256 vbc2 = _mm256_set1_ps(sqrtf(p.bias_correction2));  // C's, not std::sqrt: kernels/minmax.hpp
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t r = n - i;
    const __m256i mask = first_lanes(r);
    const __m256 vw = load(w + i, r, mask);
    const __m256 vg = _mm256_add_ps(load(g + i, r, mask), mul(vwd, vw));
    const __m256 vm = _mm256_add_ps(mul(vb1, load(m + i, r, mask)), mul(vb1c, vg));
    const __m256 vv = _mm256_add_ps(mul(vb2, load(v + i, r, mask)), mul(mul(vb2c, vg), vg));
    store(m + i, vm, r);
    store(v + i, vv, r);
    const __m256 vden = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), vbc2), veps);
    store(w + i, _mm256_sub_ps(vw, mul(vstep, _mm256_div_ps(vm, vden))), r);
  }
}

}  // namespace cpucnn
