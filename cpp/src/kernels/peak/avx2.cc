// The AVX2 FMA peak: independent chains of vfmadd on ymm registers, enough
// of them to cover the FMA latency on every pipe. Measures the machine
// (benchmarks print GEMM speed as a fraction of it); never used by a model.
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace cpucnn {

int64_t fma_chains_avx2(int64_t iters, float m, float a, float* sink) {
  constexpr int kChains = 12;  // 12 accumulators + 2 operands fit in 16 ymm
  const __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a);
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], vm, va);
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], vm, va);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  *sink = _mm256_cvtss_f32(s);
  return iters * 2 * kChains * 8 * 2;
}

}  // namespace cpucnn
