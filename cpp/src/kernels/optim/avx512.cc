#include <immintrin.h>

#include <math.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

void sgd_update_avx512(float* w, const float* g, float* buf, int64_t n, const SgdParams& p) {
  const __m512 vlr = _mm512_set1_ps(p.lr), vmom = _mm512_set1_ps(p.momentum),
               vwd = _mm512_set1_ps(p.weight_decay);
  const bool use_mom = p.momentum != 0.0f;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF)
                                    : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 vw = _mm512_maskz_loadu_ps(m, w + i);
    __m512 vg = _mm512_fmadd_ps(vwd, vw, _mm512_maskz_loadu_ps(m, g + i));
    if (use_mom) {
      const __m512 vb = p.first_step ? vg : _mm512_fmadd_ps(vmom, _mm512_maskz_loadu_ps(m, buf + i), vg);
      _mm512_mask_storeu_ps(buf + i, m, vb);
      vg = p.nesterov ? _mm512_fmadd_ps(vmom, vb, vg) : vb;
    }
    _mm512_mask_storeu_ps(w + i, m, _mm512_fnmadd_ps(vlr, vg, vw));
  }
}

void adam_update_avx512(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p) {
  const __m512 vb1 = _mm512_set1_ps(p.beta1), vb1c = _mm512_set1_ps(1.0f - p.beta1);
  const __m512 vb2 = _mm512_set1_ps(p.beta2), vb2c = _mm512_set1_ps(1.0f - p.beta2);
  const __m512 vwd = _mm512_set1_ps(p.weight_decay), veps = _mm512_set1_ps(p.eps);
  const __m512 vstep = _mm512_set1_ps(p.lr / p.bias_correction1);
  const __m512 vbc2 = _mm512_set1_ps(sqrtf(p.bias_correction2));  // C's, not std::sqrt: kernels/minmax.hpp
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xFFFF)
                                    : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 vw = _mm512_maskz_loadu_ps(k, w + i);
    const __m512 vg = _mm512_fmadd_ps(vwd, vw, _mm512_maskz_loadu_ps(k, g + i));
    const __m512 vm = _mm512_fmadd_ps(vb1, _mm512_maskz_loadu_ps(k, m + i), _mm512_mul_ps(vb1c, vg));
    const __m512 vv = _mm512_fmadd_ps(vb2, _mm512_maskz_loadu_ps(k, v + i), _mm512_mul_ps(vb2c, _mm512_mul_ps(vg, vg)));
    _mm512_mask_storeu_ps(m + i, k, vm);
    _mm512_mask_storeu_ps(v + i, k, vv);
    const __m512 vden = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), vbc2), veps);
    _mm512_mask_storeu_ps(w + i, k, _mm512_fnmadd_ps(vstep, _mm512_div_ps(vm, vden), vw));
  }
}

}  // namespace cpucnn
