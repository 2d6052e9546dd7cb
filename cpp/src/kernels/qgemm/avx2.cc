// int8 GEMM, AVX2: vpmaddubsw (u8 x s8 pairs into int16; exact because
// activations are 7-bit, see kernels/int8.hpp) then vpmaddwd by ones (pairs
// of int16 into int32).
#define QGEMM_NAME qgemm_avx2
#define QDOT(acc, x, w) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones))
#include "kernels/qgemm/ymm.inc"
