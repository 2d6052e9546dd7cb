#include "model/model_file.hpp"

#include <cctype>
#include <cstdint>
#include <cstring>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "model/safetensors.hpp"

namespace cpucnn {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* const kReserved[] = {"format", "version", "architecture", "seed", "step", "loss", "optimizer"};

}  // namespace

std::string param_key(const Layer& layer, const std::string& param) {
  return std::to_string(layer.index) + "." + lower(layer.type()) + "." + param;
}

void save_model(Sequential& model, const std::string& path, bool include_optimizer, const Metadata& extra) {
  Metadata meta = {{"format", kModelFormat},
                   {"version", std::to_string(kModelFormatVersion)},
                   {"architecture", json::dump(model.architecture())},
                   {"seed", std::to_string(model.seed())},
                   {"step", std::to_string(model.step_count())}};
  std::vector<safetensors::TensorView> tensors;
  std::vector<std::vector<int8_t>> int8_copies;  // I8 parameters as written (held as floats in memory)
  for (size_t i = 0; i < model.size(); ++i) {
    Layer& l = model.layer(i);
    for (const Param& p : l.params()) {
      if (p.dtype == "I8") {
        l.validate_params();  // never write a file that would not load
        const float* v = p.value.data();
        std::vector<int8_t> q(static_cast<size_t>(p.value.numel()));
        for (size_t k = 0; k < q.size(); ++k) q[k] = static_cast<int8_t>(v[k]);
        int8_copies.push_back(std::move(q));
        tensors.push_back({param_key(l, p.name), "I8", p.value.shape(), int8_copies.back().data()});
      } else {
        tensors.push_back({param_key(l, p.name), "F32", p.value.shape(), p.value.data()});
      }
    }
  }
  if (include_optimizer && model.compiled()) {
    Optimizer* opt = model.optimizer();
    json::Value cfg = opt->config();
    cfg.set("steps", opt->steps());
    meta.push_back({"loss", model.loss_name()});
    meta.push_back({"optimizer", json::dump(cfg)});
    // State tensors follow the trainable parameters' order.
    std::vector<std::string> keys;
    for (size_t i = 0; i < model.size(); ++i)
      for (const Param& p : model.layer(i).params())
        if (p.trainable) keys.push_back(param_key(model.layer(i), p.name));
    for (auto& [name, list] : opt->state())
      for (size_t k = 0; k < list->size(); ++k)
        tensors.push_back({"optimizer." + name + "." + keys[k], "F32", (*list)[k].shape(), (*list)[k].data()});
  }
  for (const auto& kv : extra) {
    for (const char* r : kReserved)
      if (kv.first == r) throw ValueError("metadata key '" + kv.first + "' is reserved");
    meta.push_back(kv);
  }
  safetensors::write_file(path, meta, tensors);
}

namespace {

void copy_tensor(const safetensors::File& f, const std::string& key, Tensor& dst, const std::string& path,
                 const std::string& dtype = "F32") {
  const safetensors::TensorInfo* t = f.find(key);
  if (!t) throw ValueError("model file '" + path + "' has no tensor '" + key + "'");
  if (t->dtype != dtype)
    throw ValueError("model file '" + path + "': tensor '" + key + "' has dtype " + t->dtype + ", expected " + dtype);
  if (t->shape != dst.shape())
    throw ValueError("model file '" + path + "': tensor '" + key + "' has shape " + shape_str(t->shape) +
                     ", the architecture needs " + shape_str(dst.shape()));
  if (dtype == "I8") {
    const int8_t* src = reinterpret_cast<const int8_t*>(t->data);
    float* d = dst.data();
    for (int64_t i = 0; i < dst.numel(); ++i) d[i] = static_cast<float>(src[i]);
    return;
  }
  std::memcpy(dst.data(), t->data, t->nbytes);
}

// A decimal uint64 (absent: 0). Parsed by hand: std::stoull throws std::out_of_range for
// "99999999999999999999", which would reach Python as IndexError instead of ValueError.
uint64_t parse_u64(const std::string* s, const char* what, const std::string& path) {
  if (!s) return 0;
  const auto bad = [&](const char* why) {
    return ValueError("model file '" + path + "': metadata '" + what + "' " + why + ", got '" + s->substr(0, 40) + "'");
  };
  if (s->empty() || s->find_first_not_of("0123456789") != std::string::npos) throw bad("is not a non-negative integer");
  uint64_t v = 0;
  for (char c : *s) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) throw bad("is out of the uint64 range");
    v = v * 10 + d;
  }
  return v;
}

}  // namespace

LoadedModel load_model(const std::string& path) {
  safetensors::File f(path, kModelFormat);  // anything but a cpucnn model file is named as such
  const std::string* format = f.meta("format");
  if (!format || *format != kModelFormat)
    throw ValueError("'" + path + "' is not a cpucnn model file (its metadata has no \"format\": \"cpucnn\")");
  const std::string* version = f.meta("version");
  if (!version || *version != std::to_string(kModelFormatVersion))
    throw ValueError("model file '" + path + "' has version '" + (version ? *version : std::string("none")) +
                     "'; this cpucnn reads version " + std::to_string(kModelFormatVersion));
  const std::string* arch_text = f.meta("architecture");
  if (!arch_text) throw ValueError("model file '" + path + "' has no architecture");
  const uint64_t seed = parse_u64(f.meta("seed"), "seed", path);
  const uint64_t step = parse_u64(f.meta("step"), "step", path);
  LoadedModel out;
  // Every parameter's tensor is checked against the architecture before the
  // model allocates anything, so a doctored header cannot make it allocate
  // gigabytes first.
  struct TensorMismatch : ValueError {
    using ValueError::ValueError;
  };
  auto check = [&](const Layer& layer, const Param& p) {
    const std::string key = param_key(layer, p.name);
    const safetensors::TensorInfo* t = f.find(key);
    if (!t) throw TensorMismatch("model file '" + path + "' has no tensor '" + key + "'");
    if (t->dtype != p.dtype)
      throw TensorMismatch("model file '" + path + "': tensor '" + key + "' has dtype " + t->dtype + ", expected " +
                           p.dtype);
    if (t->shape != p.shape)
      throw TensorMismatch("model file '" + path + "': tensor '" + key + "' has shape " + shape_str(t->shape) +
                           ", the architecture needs " + shape_str(p.shape));
  };
  try {
    out.model = std::make_unique<Sequential>(json::parse(*arch_text), seed, check);
  } catch (const TensorMismatch&) {
    throw;
  } catch (const SizeLimitError& e) {  // a valid architecture, too large for the set limit
    throw SizeLimitError("model file '" + path + "': " + e.what());
  } catch (const ValueError& e) {
    throw ValueError("model file '" + path + "' has an invalid architecture: " + e.what());
  }
  Sequential& m = *out.model;
  size_t expected = 0;
  for (size_t i = 0; i < m.size(); ++i)
  {
    for (Param& p : m.layer(i).params()) {
      copy_tensor(f, param_key(m.layer(i), p.name), p.value, path, p.dtype);
      ++expected;
    }
    try {
      m.layer(i).validate_params();
    } catch (const ValueError& e) {
      throw ValueError("model file '" + path + "': " + e.what());
    }
  }
  m.set_step_count(step);
  const std::string* opt_text = f.meta("optimizer");
  if (opt_text) {
    const std::string* loss = f.meta("loss");
    json::Value cfg;
    try {
      cfg = json::parse(*opt_text);
      m.compile(loss ? *loss : "cross_entropy", cfg);
    } catch (const ValueError& e) {
      throw ValueError("model file '" + path + "' has an invalid optimizer: " + e.what());
    }
    Optimizer* opt = m.optimizer();
    const json::Value* steps = cfg.find("steps");
    int64_t st = 0;
    try {
      st = steps ? steps->as_int() : 0;
    } catch (const ValueError& e) {
      throw ValueError("model file '" + path + "' has invalid optimizer steps: " + e.what());
    }
    if (st < 0) throw ValueError("model file '" + path + "': optimizer steps must not be negative");
    opt->set_steps(st);
    std::vector<std::string> keys;
    for (size_t i = 0; i < m.size(); ++i)
      for (const Param& p : m.layer(i).params())
        if (p.trainable) keys.push_back(param_key(m.layer(i), p.name));
    for (auto& [name, list] : opt->state())
      for (size_t k = 0; k < list->size(); ++k) {
        copy_tensor(f, "optimizer." + name + "." + keys[k], (*list)[k], path);
        ++expected;
      }
  }
  if (f.tensors().size() != expected)
    throw ValueError("model file '" + path + "' has " + std::to_string(f.tensors().size()) +
                     " tensors; its architecture accounts for " + std::to_string(expected));
  for (const auto& kv : f.metadata()) out.metadata.push_back(kv);
  return out;
}

}  // namespace cpucnn
