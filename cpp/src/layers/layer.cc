#include "layers/layer.hpp"

#include "core/errors.hpp"

namespace cpucnn {

std::string Layer::label() const {
  return (index >= 0 ? "layer " + std::to_string(index) + " " : std::string()) + describe();
}

void Layer::fail(const std::string& msg) const { throw ValueError(label() + ": " + msg); }

Param& Layer::add_param(const std::string& name, const Dims& shape, bool trainable) {
  Param p;
  p.name = name;
  p.shape = shape;
  p.trainable = trainable;
  params_.push_back(std::move(p));
  return params_.back();
}

void Layer::allocate() {
  for (Param& p : params_) {
    p.value.resize(p.shape);
    p.value.zero();
    if (p.trainable) {
      p.grad.resize(p.shape);
      p.grad.zero();
    }
  }
}

Param* Layer::find_param(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

void Layer::set_frozen(bool f) {
  frozen_ = f;
  for (Param& p : params_) p.frozen = f && p.trainable;
}

bool Layer::learns() const {
  for (const Param& p : params_)
    if (p.trainable && !p.frozen) return true;
  return false;
}

int64_t cfg_int(const json::Value& cfg, const char* key, int64_t fallback) {
  const json::Value* v = cfg.find(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_number()) throw ValueError(std::string("setting '") + key + "' must be an integer");
  return v->as_int();
}

double cfg_num(const json::Value& cfg, const char* key, double fallback) {
  const json::Value* v = cfg.find(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_number()) throw ValueError(std::string("setting '") + key + "' must be a number");
  return v->as_number();
}

bool cfg_bool(const json::Value& cfg, const char* key, bool fallback) {
  const json::Value* v = cfg.find(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_bool()) throw ValueError(std::string("setting '") + key + "' must be true or false");
  return v->as_bool();
}

void cfg_pair(const json::Value& cfg, const char* key, int64_t fallback, int64_t* a, int64_t* b) {
  const json::Value* v = cfg.find(key);
  if (!v || v->is_null()) {
    *a = *b = fallback;
  } else if (v->is_number()) {
    *a = *b = v->as_int();
  } else if (v->is_array() && v->size() == 2) {
    *a = v->as_array()[0].as_int();
    *b = v->as_array()[1].as_int();
  } else {
    throw ValueError(std::string("setting '") + key + "' must be an integer or a pair of integers");
  }
}

}  // namespace cpucnn
