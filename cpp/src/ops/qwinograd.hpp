// The int8 Winograd F(2x2, 3x3) operator for quantized 3x3 stride-1 convolutions
// (kernels/qwinograd.hpp): exact, so it gives the direct path's outputs bit for bit;
// qconv2d_forward (ops/qgemm.cc) runs it where it applies and pays.
#pragma once

#include <cstdint>

#include "ops/qgemm.hpp"

namespace cpucnn {

// Where the Winograd path runs: kAuto where it pays (the default), kAlways wherever it applies,
// kNever (the direct paths; tests compare the two).
enum class QWinogradMode { kAuto, kAlways, kNever };
void set_qconv2d_winograd(QWinogradMode mode);
QWinogradMode qconv2d_winograd();
// How many quantized convolutions have run on the Winograd path (process-wide; tests).
uint64_t qwinograd_runs();

// 3x3, stride 1, dilation 1, and every intermediate within int32 (qwino_fits(cin)).
bool qwinograd_applicable(const QConvGeo& g);
// Whether a call on n images takes the Winograd path (the mode; in kAuto, where it pays).
bool qwinograd_chosen(const QPackedWeights& pw, const QConvGeo& g, int64_t n);
// The transformed weights (p.wino_u) of m x cin 3x3 kernels w (PyTorch order, checked integers).
void qwinograd_pack(const float* w, int64_t m, const QConvGeo& g, QPackedWeights& p);
void qconv2d_forward_winograd(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                              uint8_t* y8, float* yf);

}  // namespace cpucnn
