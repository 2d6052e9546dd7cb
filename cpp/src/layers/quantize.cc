// Quantize: floats -> 7-bit codes, q = clamp(rint(x / scale) + zero_point, 0, 127)
// (ONNX QuantizeLinear's rounding). Where a quantized model enters int8.
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class Quantize : public Layer {
 public:
  explicit Quantize(const json::Value& cfg)
      : scale_(qcfg_scale(cfg, "scale", "Quantize")), zp_(qcfg_zero_point(cfg, "zero_point", "Quantize")) {}
  const char* type() const override { return "Quantize"; }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = out_shape = in;
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const auto fn = kernels().quantize_u7;
    uint8_t* q = reinterpret_cast<uint8_t*>(y);
    parallel_for(n * in_numel(), 1 << 15, [&](int64_t b, int64_t e) { fn(x + b, q + b, e - b, scale_, zp_); });
  }
  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Quantize");
    c.set("scale", static_cast<double>(scale_));
    c.set("zero_point", static_cast<int64_t>(zp_));
    return c;
  }

 private:
  float scale_, zp_;
};

}  // namespace

std::unique_ptr<Layer> make_quantize(const json::Value& cfg) { return std::make_unique<Quantize>(cfg); }

}  // namespace cpucnn
