#include "layers/factory.hpp"

#include <map>
#include <set>

#include "core/errors.hpp"
#include "layers/conv2d.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

std::unique_ptr<Layer> make_conv2d(const json::Value& cfg) { return std::make_unique<Conv2D>(cfg); }

namespace {

// The settings each layer type reads (and "trainable", which every layer
// takes and Sequential reads); anything else in a config (a typo, a
// file from a newer version) is an error rather than silently ignored.
void check_settings(const std::string& type, const json::Value& cfg) {
  static const std::map<std::string, std::set<std::string>> known = {
      {"Conv2D", {"filters", "kernel_size", "stride", "padding", "dilation", "groups", "use_bias"}},
      {"Dense", {"units", "use_bias"}},
      {"MaxPool2D", {"pool_size", "stride", "padding"}},
      {"AvgPool2D", {"pool_size", "stride", "padding"}},
      {"GlobalAvgPool2D", {}},
      {"Flatten", {}},
      {"ReLU", {}},
      {"LeakyReLU", {"alpha"}},
      {"Sigmoid", {}},
      {"Tanh", {}},
      {"Softmax", {}},
      {"Dropout", {"rate"}},
      {"BatchNorm2D", {"momentum", "eps"}},
      // int8 inference layers (layers/qlayer.hpp), made by cpucnn.quantize
      {"QConv2D", {"filters", "kernel_size", "stride", "padding", "dilation", "use_bias", "in_scale", "in_zero_point",
                   "out_scale", "out_zero_point", "relu", "output"}},
      {"QDense", {"units", "use_bias", "in_scale", "in_zero_point", "out_scale", "out_zero_point", "relu", "output"}},
      {"Quantize", {"scale", "zero_point"}},
      {"Dequantize", {"scale", "zero_point"}},
      {"QMaxPool2D", {"pool_size", "stride", "padding"}},
      {"QReLU", {"zero_point", "fused"}},
      {"QFlatten", {}},
  };
  auto it = known.find(type);
  if (it == known.end()) throw ValueError("unknown layer type '" + type + "'");
  for (const auto& kv : cfg.as_object())
    if (kv.first != "type" && kv.first != "trainable" && !it->second.count(kv.first))
      throw ValueError(type + ": unknown setting '" + kv.first + "'");
}

}  // namespace

std::unique_ptr<Layer> make_layer(const json::Value& cfg) {
  if (!cfg.is_object() || !cfg.has("type") || !cfg.at("type").is_string())
    throw ValueError("a layer config must be an object with a \"type\"");
  const std::string& t = cfg.at("type").as_string();
  check_settings(t, cfg);
  if (t == "Conv2D") return make_conv2d(cfg);
  if (t == "Dense") return make_dense(cfg);
  if (t == "MaxPool2D") return make_maxpool2d(cfg);
  if (t == "AvgPool2D") return make_avgpool2d(cfg);
  if (t == "GlobalAvgPool2D") return make_global_avgpool2d(cfg);
  if (t == "Flatten") return make_flatten(cfg);
  if (t == "ReLU" || t == "LeakyReLU" || t == "Sigmoid" || t == "Tanh") return make_activation(cfg);
  if (t == "Softmax") return make_softmax(cfg);
  if (t == "Dropout") return make_dropout(cfg);
  if (t == "BatchNorm2D") return make_batchnorm2d(cfg);
  if (t == "QConv2D") return make_qconv2d(cfg);
  if (t == "QDense") return make_qdense(cfg);
  if (t == "Quantize") return make_quantize(cfg);
  if (t == "Dequantize") return make_dequantize(cfg);
  if (t == "QMaxPool2D") return make_qmaxpool2d(cfg);
  if (t == "QReLU") return make_qrelu(cfg);
  if (t == "QFlatten") return make_qflatten(cfg);
  throw ValueError("unknown layer type '" + t + "'");
}

}  // namespace cpucnn
