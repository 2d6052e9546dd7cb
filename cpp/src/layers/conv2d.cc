#include "layers/conv2d.hpp"

#include <cmath>

#include "core/limits.hpp"
#include "ops/conv2d.hpp"

namespace cpucnn {

Conv2D::Conv2D(const json::Value& cfg) {
  filters_ = cfg_int(cfg, "filters", 0);
  cfg_pair(cfg, "kernel_size", 0, &kh_, &kw_);
  cfg_pair(cfg, "stride", 1, &sh_, &sw_);
  cfg_pair(cfg, "dilation", 1, &dh_, &dw_);
  groups_ = cfg_int(cfg, "groups", 1);
  use_bias_ = cfg_bool(cfg, "use_bias", true);
  const json::Value* pad = cfg.find("padding");
  if (pad && pad->is_string()) {
    mode_ = pad->as_string();
    if (mode_ != "same" && mode_ != "valid")
      fail("padding must be an integer, a pair, \"same\" or \"valid\", got \"" + mode_ + "\"");
    ph_ = pw_ = 0;
  } else {
    cfg_pair(cfg, "padding", 0, &ph_, &pw_);
  }
  for (int64_t v : {filters_, kh_, kw_, sh_, sw_, dh_, dw_, ph_, pw_, groups_})
    if (v > kMaxSetting) fail("settings must be at most 2^24, got " + std::to_string(v));
  if (filters_ <= 0) fail("filters must be positive, got " + std::to_string(filters_));
  if (kh_ <= 0 || kw_ <= 0) fail("kernel_size must be positive");
  if (sh_ <= 0 || sw_ <= 0) fail("stride must be positive");
  if (dh_ <= 0 || dw_ <= 0) fail("dilation must be positive");
  if (ph_ < 0 || pw_ < 0) fail("padding must not be negative");
  if (groups_ <= 0) fail("groups must be positive");
  if (filters_ % groups_) fail("groups (" + std::to_string(groups_) + ") must divide filters (" +
                               std::to_string(filters_) + ")");
}

std::string Conv2D::describe() const {
  return "Conv2D(" + std::to_string(filters_) + ", " + std::to_string(kh_) + "x" + std::to_string(kw_) + ")";
}

Dims Conv2D::build(const Dims& in) {
  if (in.size() != 3) fail("expects input (channels, height, width), got " + shape_str(in));
  const int64_t c = in[0], h = in[1], w = in[2];
  if (c <= 0 || h <= 0 || w <= 0) fail("input " + shape_str(in) + " has an empty dimension");
  if (c % groups_)
    fail("groups (" + std::to_string(groups_) + ") must divide the input channels, got input " + shape_str(in));
  const int64_t ekh = dh_ * (kh_ - 1) + 1, ekw = dw_ * (kw_ - 1) + 1;
  int64_t ho, wo;
  if (mode_ == "same") {
    // Output size ceil(in / stride); any odd padding goes to the bottom/right.
    ho = (h + sh_ - 1) / sh_;
    wo = (w + sw_ - 1) / sw_;
    const int64_t tot_h = std::max<int64_t>(0, (ho - 1) * sh_ + ekh - h);
    const int64_t tot_w = std::max<int64_t>(0, (wo - 1) * sw_ + ekw - w);
    ph_ = tot_h / 2;
    pw_ = tot_w / 2;
  } else {
    if (ekh > h + 2 * ph_ || ekw > w + 2 * pw_)
      fail("kernel " + std::to_string(ekh) + "x" + std::to_string(ekw) +
           " (with dilation) is larger than the padded input " +
           std::to_string(h + 2 * ph_) + "x" + std::to_string(w + 2 * pw_) + " of input " + shape_str(in));
    ho = (h + 2 * ph_ - ekh) / sh_ + 1;
    wo = (w + 2 * pw_ - ekw) / sw_ + 1;
  }
  in_shape = in;
  out_shape = {filters_, ho, wo};
  checked_numel({filters_, c / groups_, kh_, kw_}, "Conv2D weight");
  checked_numel(out_shape, "Conv2D output");
  // The im2col path unfolds one sample at least: (in channels per group x kh x kw) x (ho x wo).
  const int64_t cols = checked_numel({c / groups_ * kh_ * kw_, ho, wo}, "Conv2D unfolded input");
  check_sample_floats(label(), "the unfolded input (im2col columns) of one sample", cols);
  params_.clear();
  add_param("weight", {filters_, c / groups_, kh_, kw_});
  if (use_bias_) add_param("bias", {filters_});
  return out_shape;
}

void Conv2D::reset_parameters(Rng& rng) {
  const int64_t fan_in = in_shape[0] / groups_ * kh_ * kw_;
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  for (auto& p : params_) {
    float* v = p.value.data();
    for (int64_t i = 0; i < p.value.numel(); ++i) v[i] = rng.uniform(-bound, bound);
  }
}

Conv2dShape Conv2D::shape(int64_t n) const {
  Conv2dShape s;
  s.n = n;
  s.cin = in_shape[0];
  s.cout = filters_;
  s.groups = groups_;
  s.geo = ConvGeometry{in_shape[1], in_shape[2], out_shape[1], out_shape[2], kh_, kw_, sh_, sw_, ph_, pw_, dh_, dw_};
  return s;
}

void Conv2D::forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) {
  forward_relu(x, y, n, ctx, fused_relu);
}

void Conv2D::forward_relu(const float* x, float* y, int64_t n, const ForwardContext& ctx, bool relu) {
  const float* bias = use_bias_ ? params_[1].value.data() : nullptr;
  // Training changes the weights every step: nothing to reuse.
  if (ctx.training)
    op_.forward(shape(n), x, params_[0].value.data(), bias, y, relu);
  else
    op_.infer(shape(n), x, params_[0].value.data(), bias, y, relu, ctx.version);
}

void Conv2D::backward(const float* x, const float*, const float* dy, float* dx, int64_t n) {
  // Frozen: dx alone (the op computes no weight or bias gradient).
  // Sequential runs no backward at all for a frozen layer below every
  // learning one, the usual fine-tuning case.
  op_.backward(shape(n), x, params_[0].value.data(), dy, dx, frozen_ ? nullptr : params_[0].grad.data(),
               use_bias_ && !frozen_ ? params_[1].grad.data() : nullptr, relu_input);
}

json::Value Conv2D::config() const {
  json::Value c = json::Value::object();
  c.set("type", "Conv2D");
  c.set("filters", filters_);
  json::Value ks = json::Value::array();
  ks.push_back(kh_);
  ks.push_back(kw_);
  c.set("kernel_size", ks);
  json::Value st = json::Value::array();
  st.push_back(sh_);
  st.push_back(sw_);
  c.set("stride", st);
  if (!mode_.empty()) {
    c.set("padding", mode_);
  } else {
    json::Value pd = json::Value::array();
    pd.push_back(ph_);
    pd.push_back(pw_);
    c.set("padding", pd);
  }
  json::Value dl = json::Value::array();
  dl.push_back(dh_);
  dl.push_back(dw_);
  c.set("dilation", dl);
  c.set("groups", groups_);
  c.set("use_bias", use_bias_);
  return c;
}

int64_t Conv2D::macs() const {
  // Saturates rather than overflows (a huge layer is reported, not wrapped).
  const int64_t taps = (in_shape[0] / groups_) * kh_ * kw_;  // <= the weight's size: fits
  return saturating_mul(checked_numel(out_shape), taps);
}

}  // namespace cpucnn
