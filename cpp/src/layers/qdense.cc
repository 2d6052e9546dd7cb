// QDense: an int8 fully connected layer, y = x W^T + b on 7-bit input codes
// with int8 per-output weights; output codes (requantised, ReLU fused) or
// floats (dequantisation fused). Inference only.
#include "core/errors.hpp"
#include "core/limits.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class QDense : public Layer {
 public:
  explicit QDense(const json::Value& cfg) {
    units_ = cfg_int(cfg, "units", 0);
    use_bias_ = cfg_bool(cfg, "use_bias", true);
    if (units_ <= 0) fail("units must be positive, got " + std::to_string(units_));
    if (units_ > kMaxNumel) fail("units must be at most 2^40, got " + std::to_string(units_));
    act_ = qcfg_act(cfg, "QDense");
  }
  const char* type() const override { return "QDense"; }
  std::string describe() const override { return "QDense(" + std::to_string(units_) + ")"; }

  Dims build(const Dims& in) override {
    if (in.size() != 1) fail("expects a flat input (features,), got " + shape_str(in) + "; add Flatten() before it");
    if (in[0] <= 0) fail("input " + shape_str(in) + " is empty");
    if (in[0] > kQMaxK)
      fail("int8 Dense layers take at most " + std::to_string(kQMaxK) + " features, got input " + shape_str(in));
    in_shape = in;
    out_shape = {units_};
    checked_numel({units_, in[0]}, "QDense weight");
    params_.clear();
    add_param("weight", {units_, in[0]}, false).dtype = "I8";
    add_param("weight_scale", {units_}, false);
    if (use_bias_) add_param("bias", {units_}, false);
    return out_shape;
  }

  void reset_parameters(Rng&) override { params_[1].value.fill(1.0f); }
  void validate_params() const override { q_validate(*this, params_[0], params_[1]); }

  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    const KernelTable& kt = kernels();
    auto pw = cache_.get(ctx.version, &kt, [&] {
      return qpack_layer(label(), params_[0].value.data(), params_[1].value.data(),
                         use_bias_ ? params_[2].value.data() : nullptr, units_, in_shape[0], act_);
    });
    qdense_forward(*pw, reinterpret_cast<const uint8_t*>(x), n, act_.out_u8 ? reinterpret_cast<uint8_t*>(y) : nullptr,
                   act_.out_u8 ? nullptr : y);
  }

  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "QDense");
    c.set("units", units_);
    c.set("use_bias", use_bias_);
    qcfg_write_act(c, act_);
    return c;
  }
  int64_t macs() const override { return units_ * in_shape[0]; }

 private:
  int64_t units_ = 0;
  bool use_bias_ = true;
  QActParams act_;
  QWeightCache cache_;
};

}  // namespace

std::unique_ptr<Layer> make_qdense(const json::Value& cfg) { return std::make_unique<QDense>(cfg); }

}  // namespace cpucnn
