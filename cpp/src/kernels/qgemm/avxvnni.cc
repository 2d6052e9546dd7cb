// int8 GEMM, AVX-VNNI (256-bit vpdpbusd: u8 x s8 quads straight into int32,
// no int16 step). Compiled with -mavxvnni; run only where CPUID says so.
#define QGEMM_NAME qgemm_avxvnni
#define QDOT(acc, x, w) acc = _mm256_dpbusd_avx_epi32(acc, x, w)
#include "kernels/qgemm/ymm.inc"
