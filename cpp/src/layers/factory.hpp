// Constructors of the layers, one per file in layers/.
#pragma once

#include <memory>

#include "layers/layer.hpp"

namespace cpucnn {

std::unique_ptr<Layer> make_conv2d(const json::Value& cfg);
std::unique_ptr<Layer> make_dense(const json::Value& cfg);
std::unique_ptr<Layer> make_maxpool2d(const json::Value& cfg);
std::unique_ptr<Layer> make_avgpool2d(const json::Value& cfg);
std::unique_ptr<Layer> make_global_avgpool2d(const json::Value& cfg);
std::unique_ptr<Layer> make_flatten(const json::Value& cfg);
std::unique_ptr<Layer> make_activation(const json::Value& cfg);  // ReLU, LeakyReLU, Sigmoid, Tanh
std::unique_ptr<Layer> make_softmax(const json::Value& cfg);
std::unique_ptr<Layer> make_dropout(const json::Value& cfg);
std::unique_ptr<Layer> make_batchnorm2d(const json::Value& cfg);

}  // namespace cpucnn
