// The AVX-512 FMA peak: independent chains of vfmadd on zmm registers (see
// peak/avx2.cc).
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

int64_t fma_chains_avx512(int64_t iters, float m, float a, float* sink) {
  constexpr int kChains = 24;  // covers 4-cycle latency on two 512-bit pipes with room to spare
  const __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a);
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], vm, va);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  *sink = lanes[0] + lanes[15];
  return iters * kChains * 16 * 2;
}

}  // namespace cpucnn
