#include "layers/factory.hpp"

#include "core/errors.hpp"
#include "layers/conv2d.hpp"

namespace cpucnn {

std::unique_ptr<Layer> make_conv2d(const json::Value& cfg) { return std::make_unique<Conv2D>(cfg); }

std::unique_ptr<Layer> make_layer(const json::Value& cfg) {
  if (!cfg.is_object() || !cfg.has("type") || !cfg.at("type").is_string())
    throw ValueError("a layer config must be an object with a \"type\"");
  const std::string& t = cfg.at("type").as_string();
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
  throw ValueError("unknown layer type '" + t + "'");
}

}  // namespace cpucnn
