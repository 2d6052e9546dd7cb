// Every kernel of every ISA, declared once. dispatch/ picks among them.
// Naming: <op>_<isa>. Each ISA's definitions live in kernels/<op>/<isa>.cc,
// compiled with that ISA's flags only.
#pragma once

#include <cstdint>

#include "kernels/params.hpp"

namespace cpucnn {

// GEMM micro-kernel over packed panels:
//   C[i*ldc + j] (+)= sum_p a[p*MR + i] * b[p*NR + j],  0 <= i < MR, 0 <= j < NR.
// `accumulate` false overwrites C.
using GemmUkernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                               bool accumulate);
#define CPUCNN_DECLARE_GEMM(isa) \
  void gemm_ukernel_##isa(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);
CPUCNN_DECLARE_GEMM(scalar)
CPUCNN_DECLARE_GEMM(avx2)
CPUCNN_DECLARE_GEMM(avx512)
#undef CPUCNN_DECLARE_GEMM
constexpr int kGemmMrScalar = 4, kGemmNrScalar = 16;
constexpr int kGemmMrAvx2 = 6, kGemmNrAvx2 = 16;
constexpr int kGemmMrAvx512 = 8, kGemmNrAvx512 = 32;

// Element-wise activations. Forward may run in place (x == y).
using UnaryFn = void (*)(const float* x, float* y, int64_t n);
// Backward from the forward output y: dx = dy * f'(.)
using UnaryBwdFn = void (*)(const float* y, const float* dy, float* dx, int64_t n);
void relu_fwd_scalar(const float* x, float* y, int64_t n);
void relu_bwd_scalar(const float* y, const float* dy, float* dx, int64_t n);
void relu_fwd_avx2(const float* x, float* y, int64_t n);
void relu_bwd_avx2(const float* y, const float* dy, float* dx, int64_t n);
void relu_fwd_avx512(const float* x, float* y, int64_t n);
void relu_bwd_avx512(const float* y, const float* dy, float* dx, int64_t n);

// Max pooling over `planes` planes. Forward stores the argmax (index within
// the input plane) for the backward pass when `argmax` is non-null.
using MaxPoolFwdFn = void (*)(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
using MaxPoolBwdFn = void (*)(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);
void maxpool2d_fwd_scalar(const float* x, float* y, int32_t* argmax, int64_t planes, const Pool2dParams& p);
void maxpool2d_bwd_scalar(const float* dy, const int32_t* argmax, float* dx, int64_t planes, const Pool2dParams& p);

// Optimizer updates over n parameters.
using SgdFn = void (*)(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
using AdamFn = void (*)(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);
void sgd_update_scalar(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
void adam_update_scalar(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);
void sgd_update_avx512(float* w, const float* g, float* buf, int64_t n, const SgdParams& p);
void adam_update_avx512(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p);

}  // namespace cpucnn
