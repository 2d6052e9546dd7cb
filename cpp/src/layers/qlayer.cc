#include "layers/qlayer.hpp"

#include <cmath>

#include "core/errors.hpp"

namespace cpucnn {

float qcfg_scale(const json::Value& cfg, const char* key, const std::string& type) {
  const double v = cfg_num(cfg, key, -1.0);
  if (!(std::isfinite(v) && v > 0.0 && v < 3.0e38))
    throw ValueError(type + ": " + key + " must be a finite positive number, got " + std::to_string(v));
  return static_cast<float>(v);
}

float qcfg_zero_point(const json::Value& cfg, const char* key, const std::string& type) {
  const int64_t v = cfg_int(cfg, key, 0);
  if (v < 0 || v > kQActMax)
    throw ValueError(type + ": " + key + " must be an integer in [0, 127] (7-bit codes), got " + std::to_string(v));
  return static_cast<float>(v);
}

QActParams qcfg_act(const json::Value& cfg, const std::string& type) {
  QActParams a;
  a.in_scale = qcfg_scale(cfg, "in_scale", type);
  a.in_zp = qcfg_zero_point(cfg, "in_zero_point", type);
  a.relu = cfg_bool(cfg, "relu", false);
  const json::Value* out = cfg.find("output");
  const std::string o = out && out->is_string() ? out->as_string() : "int8";
  if (o != "int8" && o != "float") throw ValueError(type + ": output must be \"int8\" or \"float\", got \"" + o + "\"");
  a.out_u8 = o == "int8";
  if (a.out_u8) {
    a.out_scale = qcfg_scale(cfg, "out_scale", type);
    a.out_zp = qcfg_zero_point(cfg, "out_zero_point", type);
  }
  return a;
}

void qcfg_write_act(json::Value& c, const QActParams& a) {
  c.set("in_scale", static_cast<double>(a.in_scale));
  c.set("in_zero_point", static_cast<int64_t>(a.in_zp));
  c.set("relu", a.relu);
  c.set("output", a.out_u8 ? "int8" : "float");
  if (a.out_u8) {
    c.set("out_scale", static_cast<double>(a.out_scale));
    c.set("out_zero_point", static_cast<int64_t>(a.out_zp));
  }
}

void q_inference_only(const Layer& l) {
  throw ValueError(l.label() + ": int8 layers are inference-only (a quantized model cannot be trained; train the "
                               "float model and quantize it again)");
}

void q_validate(const Layer& l, const Param& w, const Param& scale) {
  const float* v = w.value.data();
  for (int64_t i = 0; i < w.value.numel(); ++i)
    if (!(v[i] >= -127.0f && v[i] <= 127.0f) || v[i] != std::nearbyint(v[i]))
      throw ValueError(l.label() + ": int8 weight must hold integers in [-127, 127], got " + std::to_string(v[i]) +
                       " at flat index " + std::to_string(i) + " of weight " + shape_str(w.shape));
  const float* s = scale.value.data();
  for (int64_t i = 0; i < scale.value.numel(); ++i)
    if (!(std::isfinite(s[i]) && s[i] > 0.0f))
      throw ValueError(l.label() + ": weight_scale must be finite and positive, got " + std::to_string(s[i]) +
                       " for output " + std::to_string(i) + " of " + shape_str(scale.shape));
}

}  // namespace cpucnn
