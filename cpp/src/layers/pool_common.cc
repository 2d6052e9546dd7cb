#include "layers/pool_common.hpp"

namespace cpucnn {

Pool2DBase::Pool2DBase(const json::Value& cfg, const char* type_name) : type_(type_name) {
  cfg_pair(cfg, "pool_size", 2, &kh_, &kw_);
  // A missing (or null) stride defaults to the pool size; a given one must
  // be positive (0 used to be read silently as "the pool size").
  const json::Value* stride = cfg.find("stride");
  const bool given = stride && !stride->is_null();
  int64_t sh, sw;
  cfg_pair(cfg, "stride", 0, &sh, &sw);
  sh_ = given ? sh : kh_;
  sw_ = given ? sw : kw_;
  cfg_pair(cfg, "padding", 0, &ph_, &pw_);
  for (int64_t v : {kh_, kw_, sh_, sw_, ph_, pw_})
    if (v > kMaxSetting) fail("settings must be at most 2^24, got " + std::to_string(v));
  if (kh_ <= 0 || kw_ <= 0) fail("pool_size must be positive");
  if (sh_ <= 0 || sw_ <= 0)
    fail("stride must be positive, got " + std::to_string(sh) + "x" + std::to_string(sw));
  if (ph_ < 0 || pw_ < 0) fail("padding must not be negative");
  if (2 * ph_ > kh_ || 2 * pw_ > kw_) fail("padding must be at most half the pool size (as in PyTorch)");
}

std::string Pool2DBase::describe() const {
  return std::string(type()) + "(" + std::to_string(kh_) + "x" + std::to_string(kw_) + ")";
}

Dims Pool2DBase::build(const Dims& in) {
  if (in.size() != 3) fail("expects input (channels, height, width), got " + shape_str(in));
  if (in[0] <= 0 || in[1] <= 0 || in[2] <= 0) fail("input " + shape_str(in) + " has an empty dimension");
  if (kh_ > in[1] + 2 * ph_ || kw_ > in[2] + 2 * pw_)
    fail("pool " + std::to_string(kh_) + "x" + std::to_string(kw_) + " is larger than the padded input " + shape_str(in));
  const int64_t ho = (in[1] + 2 * ph_ - kh_) / sh_ + 1;
  const int64_t wo = (in[2] + 2 * pw_ - kw_) / sw_ + 1;
  in_shape = in;
  out_shape = {in[0], ho, wo};
  geo_ = Pool2dParams{in[1], in[2], ho, wo, kh_, kw_, sh_, sw_, ph_, pw_};
  return out_shape;
}

json::Value Pool2DBase::config() const {
  json::Value c = json::Value::object();
  c.set("type", type());
  auto pair = [](int64_t a, int64_t b) {
    json::Value v = json::Value::array();
    v.push_back(a);
    v.push_back(b);
    return v;
  };
  c.set("pool_size", pair(kh_, kw_));
  c.set("stride", pair(sh_, sw_));
  c.set("padding", pair(ph_, pw_));
  return c;
}

}  // namespace cpucnn
