#pragma once

#include "layers/layer.hpp"
#include "ops/conv2d.hpp"

namespace cpucnn {

class Conv2D : public Layer {
 public:
  explicit Conv2D(const json::Value& cfg);
  const char* type() const override { return "Conv2D"; }
  std::string describe() const override;
  Dims build(const Dims& in) override;
  void reset_parameters(Rng& rng) override;
  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override;
  // forward with the ReLU epilogue chosen by the caller (the model's intermediate outputs
  // need a fused convolution's own output, before its ReLU).
  void forward_relu(const float* x, float* y, int64_t n, const ForwardContext& ctx, bool relu);
  void backward(const float* x, const float* y, const float* dy, float* dx, int64_t n) override;
  json::Value config() const override;
  int64_t macs() const override;

  // Set by the model when a ReLU follows: forward applies it in the same pass.
  bool fused_relu = false;
  // Set by the model when a ReLU precedes (its output is this layer's input):
  // backward applies the ReLU's backward to dx too, and the model skips it.
  bool relu_input = false;

 private:
  Conv2dShape shape(int64_t n) const;
  int64_t filters_ = 0, kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0, dh_ = 1, dw_ = 1, groups_ = 1;
  std::string mode_;  // "same", "valid" or "" (explicit padding)
  bool use_bias_ = true;
  Conv2dOp op_;  // its plans, and the weights prepared for inference
};

}  // namespace cpucnn
