// The .cnn model file: a safetensors file whose __metadata__ holds
// "format": "cpucnn", "version", "architecture" (JSON text) and, when saved
// with the optimizer, "loss", "optimizer" (JSON text with the step count)
// and the model's step counter. Tensors are "<index>.<layer>.<param>" in
// PyTorch layouts; optimizer state is "optimizer.<state>.<index>.<layer>.<param>".
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/sequential.hpp"

namespace cpucnn {

constexpr const char* kModelFormat = "cpucnn";
constexpr int kModelFormatVersion = 1;

using Metadata = std::vector<std::pair<std::string, std::string>>;

// Writes atomically (temp file, fsync, rename); a failed save leaves any
// previous file untouched. `extra` adds caller metadata (keys must not clash).
void save_model(Sequential& model, const std::string& path, bool include_optimizer, const Metadata& extra);

struct LoadedModel {
  std::unique_ptr<Sequential> model;
  Metadata metadata;
};

// Validates everything (format, version, architecture, every tensor's dtype
// and shape) and throws ValueError on any inconsistency, FileNotFound when
// the file is missing. Restores the optimizer state when the file has it.
LoadedModel load_model(const std::string& path);

// The tensor name of a parameter: "0.conv2d.weight".
std::string param_key(const Layer& layer, const std::string& param);

}  // namespace cpucnn
