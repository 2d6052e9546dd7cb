// Dequantize: 7-bit codes -> floats, x = (q - zero_point) * scale. Where a
// quantized model leaves int8 (before a layer without an int8 kernel).
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class Dequantize : public Layer {
 public:
  explicit Dequantize(const json::Value& cfg)
      : scale_(qcfg_scale(cfg, "scale", "Dequantize")), zp_(qcfg_zero_point(cfg, "zero_point", "Dequantize")) {}
  const char* type() const override { return "Dequantize"; }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = out_shape = in;
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const auto fn = kernels().dequantize_u8;
    const uint8_t* q = reinterpret_cast<const uint8_t*>(x);
    parallel_for(n * in_numel(), 1 << 15, [&](int64_t b, int64_t e) { fn(q + b, y + b, e - b, scale_, zp_); });
  }
  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Dequantize");
    c.set("scale", static_cast<double>(scale_));
    c.set("zero_point", static_cast<int64_t>(zp_));
    return c;
  }

 private:
  float scale_, zp_;
};

}  // namespace

std::unique_ptr<Layer> make_dequantize(const json::Value& cfg) { return std::make_unique<Dequantize>(cfg); }

}  // namespace cpucnn
