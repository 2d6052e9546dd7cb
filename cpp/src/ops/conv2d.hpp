// The convolution operator. Per layer and ISA it picks: Winograd (F(2x2) or
// F(4x4), 3x3) for eligible 3x3 stride-1 layers (ops/winograd.hpp); direct kernels for
// thin layers (few output channels forward, few input channels for dx, few
// output channels or taps for dw): with 16 output channels a register
// (16 or 32 channels, short reductions) or 16 images a register (16+
// images per thread) where those apply, else along image rows; otherwise
// im2col + packed GEMM, batched in chunks of samples so each GEMM is wide
// enough to run at speed. One OpenMP region per call (over chunks when there
// are enough of them, else inside the GEMM). Weight-gradient partial sums are
// reduced in a fixed order, so a given thread count gives bit-identical
// results.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "core/tensor.hpp"
#include "kernels/im2col.hpp"

namespace cpucnn {

struct Conv2dShape {
  int64_t n = 0, cin = 0, cout = 0, groups = 1;
  ConvGeometry geo{};
};

// y = conv(x, w) + bias (bias may be null); relu applies max(0, .) after.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                    bool relu = false);
// dw, db (db may be null) are overwritten; dx (may be null) is overwritten.
// `scratch` holds per-thread partial sums between calls. relu_x: x is the
// output of a ReLU, whose backward is applied to dx too (dx *= [x > 0]),
// inside the Winograd pass where it can be.
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, Tensor& scratch, bool relu_x = false);

// db[co] = sum of dy's plane co over n images (planes `plane` floats, in
// double). Its loop is an `omp for`: inside a parallel region the team shares
// it (each channel summed by one thread, so the result does not depend on the
// team); outside one it runs serially.
void conv2d_bias_grad(const float* dy, int64_t n, int64_t cout, int64_t plane, float* db);

struct WinogradWeights;

// One layer's weights prepared once for inference (Winograd's transformed
// and packed kernels, where that path applies), made again when the
// parameters' version (ForwardContext::version) or the ISA changes; one entry
// per Winograd variant, so batch sizes that alternate between F(2x2) and
// F(4x4) do not transform again each call. Safe to use from several threads
// at once; the caller holds the model's lock shared, so the weights cannot
// change while an entry is made from them.
class Conv2dWeightCache {
 public:
  // conv2d_forward through the prepared weights where they pay.
  void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
               uint64_t version);

 private:
  std::mutex mutex_;
  std::shared_ptr<const WinogradWeights> winograd_[2];   // F(2x2), F(4x4)
};

// Winograd for eligible 3x3 stride-1 layers (ops/winograd.hpp; which variant:
// set_winograd_tile there):
// kAuto (the default) where it pays, kAlways wherever it applies, kNever
// (im2col + GEMM everywhere). Tests compare the paths; not to be switched
// while convolutions run.
enum class WinogradMode { kAuto, kAlways, kNever };
void set_conv2d_winograd(WinogradMode mode);
WinogradMode conv2d_winograd();

}  // namespace cpucnn
