// The convolution operator. A plan (ops/conv2d_plan.hpp) picks, per shape,
// thread count and ISA: Winograd (F(2x2) or F(4x4), 3x3) for eligible 3x3
// stride-1 layers (ops/winograd.hpp); direct kernels for thin layers (few
// output channels forward, few input channels for dx, few output channels or
// taps for dw): with 16 output channels a register or 16 images a register
// where those apply, else along image rows; otherwise im2col + packed GEMM,
// batched in chunks of samples so each GEMM is wide enough to run at speed.
// Each call reserves the plan's scratch before its one parallel region and
// allocates nothing else. Weight-gradient partial sums are reduced in a
// fixed order, so a given thread count gives bit-identical results.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "ops/conv2d_plan.hpp"
#include "ops/conv2d_shape.hpp"

namespace cpucnn {

struct WinogradWeights;
struct ConvPackedWeights;

// One layer's convolution: its plans, made once per (shape, threads,
// kernel table, Winograd settings) and kept for the shapes it sees (a few:
// the training batch, a last partial batch, inference batches), and its
// weights prepared for inference (Winograd's transformed and packed
// kernels; the GEMM, oc and lanes paths' packed weights), made again when the
// parameters' version (ForwardContext::version), the path or the variant
// changes. Safe to use from several threads at once; the
// caller holds the model's lock shared, so the weights cannot change while
// an entry is made from them.
class Conv2dOp {
 public:
  // y = conv(x, w) + bias (bias may be null); relu applies max(0, .) after.
  void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu);
  // The same through weights prepared for this version of the parameters, where that pays.
  void infer(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
             uint64_t version);
  // dw, db (db may be null) are overwritten; dx (may be null) is
  // overwritten. dw null: dx alone (a frozen layer; db must be null too).
  // relu_x: x is the output of a ReLU, whose backward is applied to dx too
  // (dx *= [x > 0]), inside the Winograd pass where it can be.
  void backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db, bool relu_x);

 private:
  std::shared_ptr<const Conv2dPlan> plan(const Conv2dShape& s);

  static constexpr int kPlans = 4;
  std::mutex mutex_;
  std::shared_ptr<const Conv2dPlan> plans_[kPlans];
  int next_ = 0;
  std::shared_ptr<const WinogradWeights> winograd_[2];  // F(2x2), F(4x4)
  std::shared_ptr<const ConvPackedWeights> packed_;
};

// How many times inference has packed a GEMM-, oc- or lanes-path layer's weights in
// this process (tests check it happens once per version, not once per call).
uint64_t conv2d_packed_count();

// One-shot calls (kernel tests and tools): plan, then run.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                    bool relu = false);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, bool relu_x = false);

// db[co] = sum of dy's plane co over n images (planes `plane` floats, in
// double). Its loop is an `omp for`: inside a parallel region the team shares
// it (each channel summed by one thread, so the result does not depend on the
// team); outside one it runs serially.
void conv2d_bias_grad(const float* dy, int64_t n, int64_t cout, int64_t plane, float* db);

// Winograd for eligible 3x3 stride-1 layers (ops/winograd.hpp; which variant:
// set_winograd_tile there):
// kAuto (the default) where it pays, kAlways wherever it applies, kNever
// (im2col + GEMM everywhere). Tests compare the paths; not to be switched
// while convolutions run.
enum class WinogradMode { kAuto, kAlways, kNever };
void set_conv2d_winograd(WinogradMode mode);
WinogradMode conv2d_winograd();

}  // namespace cpucnn
