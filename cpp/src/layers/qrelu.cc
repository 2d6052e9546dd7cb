// QReLU: ReLU on 7-bit codes, q = max(q, zero_point). "fused": the int8 layer
// before it already applied it (requantisation clamps at the zero point), so
// it is a view and runs nothing.
#include "core/parallel.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class QReLU : public Layer {
 public:
  explicit QReLU(const json::Value& cfg)
      : zp_(qcfg_zero_point(cfg, "zero_point", "QReLU")), fused_(cfg_bool(cfg, "fused", false)) {}
  const char* type() const override { return "QReLU"; }
  bool is_view() const override { return fused_; }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = out_shape = in;
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);
    uint8_t* yq = reinterpret_cast<uint8_t*>(y);
    const uint8_t lo = static_cast<uint8_t>(fused_ ? 0.0f : zp_);
    parallel_for(n * in_numel(), 1 << 16, [&](int64_t b, int64_t e) { qrelu_u8(xq + b, yq + b, e - b, lo); });
  }
  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "QReLU");
    c.set("zero_point", static_cast<int64_t>(zp_));
    c.set("fused", fused_);
    return c;
  }

 private:
  float zp_;
  bool fused_;
};

}  // namespace

std::unique_ptr<Layer> make_qrelu(const json::Value& cfg) { return std::make_unique<QReLU>(cfg); }

}  // namespace cpucnn
