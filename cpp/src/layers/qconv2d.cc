// QConv2D: an int8 convolution (groups 1). Weights: int8 per output channel
// (weight, weight_scale); input: 7-bit codes; output: codes (requantised,
// bias and ReLU fused) or floats (dequantisation fused). Inference only.
#include <algorithm>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class QConv2D : public Layer {
 public:
  explicit QConv2D(const json::Value& cfg) {
    filters_ = cfg_int(cfg, "filters", 0);
    cfg_pair(cfg, "kernel_size", 0, &kh_, &kw_);
    cfg_pair(cfg, "stride", 1, &sh_, &sw_);
    cfg_pair(cfg, "dilation", 1, &dh_, &dw_);
    use_bias_ = cfg_bool(cfg, "use_bias", true);
    const json::Value* pad = cfg.find("padding");
    if (pad && pad->is_string()) {
      mode_ = pad->as_string();
      if (mode_ != "same" && mode_ != "valid")
        fail("padding must be an integer, a pair, \"same\" or \"valid\", got \"" + mode_ + "\"");
    } else {
      cfg_pair(cfg, "padding", 0, &ph_, &pw_);
    }
    for (int64_t v : {filters_, kh_, kw_, sh_, sw_, dh_, dw_, ph_, pw_})
      if (v > kMaxSetting) fail("settings must be at most 2^24, got " + std::to_string(v));
    if (filters_ <= 0) fail("filters must be positive, got " + std::to_string(filters_));
    if (kh_ <= 0 || kw_ <= 0) fail("kernel_size must be positive");
    if (sh_ <= 0 || sw_ <= 0) fail("stride must be positive");
    if (dh_ <= 0 || dw_ <= 0) fail("dilation must be positive");
    if (ph_ < 0 || pw_ < 0) fail("padding must not be negative");
    act_ = qcfg_act(cfg, "QConv2D");
  }
  const char* type() const override { return "QConv2D"; }
  std::string describe() const override {
    return "QConv2D(" + std::to_string(filters_) + ", " + std::to_string(kh_) + "x" + std::to_string(kw_) + ")";
  }

  Dims build(const Dims& in) override {
    if (in.size() != 3) fail("expects input (channels, height, width), got " + shape_str(in));
    const int64_t c = in[0], h = in[1], w = in[2];
    if (c <= 0 || h <= 0 || w <= 0) fail("input " + shape_str(in) + " has an empty dimension");
    const int64_t ekh = dh_ * (kh_ - 1) + 1, ekw = dw_ * (kw_ - 1) + 1;
    int64_t ho, wo;
    if (mode_ == "same") {
      ho = (h + sh_ - 1) / sh_;
      wo = (w + sw_ - 1) / sw_;
      ph_ = std::max<int64_t>(0, (ho - 1) * sh_ + ekh - h) / 2;
      pw_ = std::max<int64_t>(0, (wo - 1) * sw_ + ekw - w) / 2;
    } else {
      if (ekh > h + 2 * ph_ || ekw > w + 2 * pw_)
        fail("kernel " + std::to_string(ekh) + "x" + std::to_string(ekw) + " is larger than the padded input of " +
             shape_str(in));
      ho = (h + 2 * ph_ - ekh) / sh_ + 1;
      wo = (w + 2 * pw_ - ekw) / sw_ + 1;
    }
    in_shape = in;
    out_shape = {filters_, ho, wo};
    const int64_t k = checked_numel({c, kh_, kw_}, "QConv2D taps");
    if (k > kQMaxK)
      fail("int8 convolutions take at most " + std::to_string(kQMaxK) + " taps x input channels, got " +
           std::to_string(k) + " for input " + shape_str(in));
    checked_numel({filters_, c, kh_, kw_}, "QConv2D weight");
    checked_numel(out_shape, "QConv2D output");
    params_.clear();
    add_param("weight", {filters_, c, kh_, kw_}, false).dtype = "I8";
    add_param("weight_scale", {filters_}, false);
    if (use_bias_) add_param("bias", {filters_}, false);
    geo_ = QConvGeo{c, h, w, kh_, kw_, sh_, sw_, ph_, pw_, dh_, dw_, ho, wo};
    return out_shape;
  }

  void reset_parameters(Rng&) override {
    params_[1].value.fill(1.0f);  // a valid (if useless) model before weights are set
  }

  void validate_params() const override { q_validate(*this, params_[0], params_[1]); }

  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    const KernelTable& kt = kernels();
    auto pw = cache_.get(ctx.version, &kt, [&] {
      return qpack_conv_layer(label(), params_[0].value.data(), params_[1].value.data(),
                              use_bias_ ? params_[2].value.data() : nullptr, filters_, geo_, act_);
    });
    qconv2d_forward(*pw, geo_, static_cast<uint8_t>(act_.in_zp), reinterpret_cast<const uint8_t*>(x), n,
                    act_.out_u8 ? reinterpret_cast<uint8_t*>(y) : nullptr, act_.out_u8 ? nullptr : y);
  }

  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "QConv2D");
    c.set("filters", filters_);
    auto pair = [](int64_t a, int64_t b) {
      json::Value v = json::Value::array();
      v.push_back(a);
      v.push_back(b);
      return v;
    };
    c.set("kernel_size", pair(kh_, kw_));
    c.set("stride", pair(sh_, sw_));
    if (mode_.empty())
      c.set("padding", pair(ph_, pw_));
    else
      c.set("padding", mode_);
    c.set("dilation", pair(dh_, dw_));
    c.set("use_bias", use_bias_);
    qcfg_write_act(c, act_);
    return c;
  }
  int64_t macs() const override { return filters_ * in_shape[0] * kh_ * kw_ * out_shape[1] * out_shape[2]; }

 private:
  int64_t filters_ = 0, kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0, dh_ = 1, dw_ = 1;
  std::string mode_;
  bool use_bias_ = true;
  QActParams act_;
  QConvGeo geo_{};
  QWeightCache cache_;
};

}  // namespace

std::unique_ptr<Layer> make_qconv2d(const json::Value& cfg) { return std::make_unique<QConv2D>(cfg); }

}  // namespace cpucnn
