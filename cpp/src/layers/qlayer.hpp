// Settings and helpers shared by the int8 layers (QConv2D, QDense, Quantize,
// Dequantize, QMaxPool2D, QReLU, QFlatten). Activations between int8 layers
// are 7-bit codes (kernels/int8.hpp), one byte each, stored in the model's
// activation buffers (sized for floats, so they always fit).
#pragma once

#include <string>

#include "layers/layer.hpp"
#include "ops/qgemm.hpp"

namespace cpucnn {

// A positive finite scale setting.
float qcfg_scale(const json::Value& cfg, const char* key, const std::string& type);
// A zero point setting: an integer in [0, 127].
float qcfg_zero_point(const json::Value& cfg, const char* key, const std::string& type);
// in_scale, in_zero_point, relu, output ("int8" or "float"), and out_scale, out_zero_point when
// the output is int8.
QActParams qcfg_act(const json::Value& cfg, const std::string& type);
void qcfg_write_act(json::Value& c, const QActParams& a);
[[noreturn]] void q_inference_only(const Layer& l);
// Checks an int8 weight / scale / bias set (validate_params): the file's values.
void q_validate(const Layer& l, const Param& w, const Param& scale);

std::unique_ptr<Layer> make_qconv2d(const json::Value& cfg);
std::unique_ptr<Layer> make_qdense(const json::Value& cfg);
std::unique_ptr<Layer> make_quantize(const json::Value& cfg);
std::unique_ptr<Layer> make_dequantize(const json::Value& cfg);
std::unique_ptr<Layer> make_qmaxpool2d(const json::Value& cfg);
std::unique_ptr<Layer> make_qrelu(const json::Value& cfg);
std::unique_ptr<Layer> make_qflatten(const json::Value& cfg);

}  // namespace cpucnn
