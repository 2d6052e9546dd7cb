#include "model/optimizer.hpp"

#include <cmath>

#include "core/errors.hpp"
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"

namespace cpucnn {

namespace {

float finite_setting(const json::Value& cfg, const char* key, double fallback, const char* opt) {
  const double v = cfg_num(cfg, key, fallback);
  if (!std::isfinite(v)) throw ValueError(std::string(opt) + ": " + key + " must be finite");
  return static_cast<float>(v);
}

std::vector<Tensor> zeros_like(const std::vector<Param*>& params) {
  std::vector<Tensor> out;
  for (Param* p : params) {
    out.emplace_back(p->value.shape());
    out.back().zero();
  }
  return out;
}

// Updates run over each parameter in ranges split across threads; each
// element's update is independent, so the result does not depend on threads.
template <class F>
void for_each_range(int64_t n, F&& f) {
  parallel_for(n, 1 << 16, f);
}

class SGD : public Optimizer {
 public:
  explicit SGD(const json::Value& cfg) {
    lr = finite_setting(cfg, "lr", 0.01, "SGD");
    momentum_ = finite_setting(cfg, "momentum", 0.0, "SGD");
    weight_decay_ = finite_setting(cfg, "weight_decay", 0.0, "SGD");
    nesterov_ = cfg_bool(cfg, "nesterov", false);
    if (lr < 0) throw ValueError("SGD: lr must not be negative, got " + std::to_string(lr));
    if (momentum_ < 0) throw ValueError("SGD: momentum must not be negative");
    if (weight_decay_ < 0) throw ValueError("SGD: weight_decay must not be negative");
    if (nesterov_ && momentum_ <= 0) throw ValueError("SGD: nesterov needs a positive momentum");
  }
  void attach(const std::vector<Param*>& params) override {
    params_ = params;
    buf_ = zeros_like(params);
    steps_ = 0;
  }
  void step() override {
    SgdParams p{lr, momentum_, weight_decay_, nesterov_, steps_ == 0};
    const SgdFn fn = kernels().sgd_update;
    for (size_t i = 0; i < params_.size(); ++i) {
      float* w = params_[i]->value.data();
      const float* g = params_[i]->grad.data();
      float* b = buf_[i].data();
      for_each_range(params_[i]->value.numel(), [&](int64_t s, int64_t e) { fn(w + s, g + s, b + s, e - s, p); });
    }
    ++steps_;
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "SGD");
    c.set("lr", static_cast<double>(lr));
    c.set("momentum", static_cast<double>(momentum_));
    c.set("nesterov", nesterov_);
    c.set("weight_decay", static_cast<double>(weight_decay_));
    return c;
  }
  std::vector<std::pair<std::string, std::vector<Tensor>*>> state() override {
    if (momentum_ == 0.0f) return {};
    return {{"momentum_buffer", &buf_}};
  }

 private:
  float momentum_ = 0, weight_decay_ = 0;
  bool nesterov_ = false;
  std::vector<Tensor> buf_;
};

class Adam : public Optimizer {
 public:
  explicit Adam(const json::Value& cfg) {
    lr = finite_setting(cfg, "lr", 1e-3, "Adam");
    beta1_ = 0.9f;
    beta2_ = 0.999f;
    if (const json::Value* b = cfg.find("betas"); b && !b->is_null()) {
      if (!b->is_array() || b->size() != 2) throw ValueError("Adam: betas must be a pair of numbers");
      beta1_ = static_cast<float>(b->as_array()[0].as_number());
      beta2_ = static_cast<float>(b->as_array()[1].as_number());
    }
    eps_ = finite_setting(cfg, "eps", 1e-8, "Adam");
    weight_decay_ = finite_setting(cfg, "weight_decay", 0.0, "Adam");
    if (lr < 0) throw ValueError("Adam: lr must not be negative, got " + std::to_string(lr));
    if (!(beta1_ >= 0 && beta1_ < 1) || !(beta2_ >= 0 && beta2_ < 1))
      throw ValueError("Adam: betas must be in [0, 1)");
    if (!(eps_ >= 0)) throw ValueError("Adam: eps must not be negative");
    if (weight_decay_ < 0) throw ValueError("Adam: weight_decay must not be negative");
  }
  void attach(const std::vector<Param*>& params) override {
    params_ = params;
    m_ = zeros_like(params);
    v_ = zeros_like(params);
    steps_ = 0;
  }
  void step() override {
    ++steps_;
    const double t = static_cast<double>(steps_);
    AdamParams p{lr, beta1_, beta2_, eps_, weight_decay_,
                 static_cast<float>(1.0 - std::pow(static_cast<double>(beta1_), t)),
                 static_cast<float>(1.0 - std::pow(static_cast<double>(beta2_), t))};
    const AdamFn fn = kernels().adam_update;
    for (size_t i = 0; i < params_.size(); ++i) {
      float* w = params_[i]->value.data();
      const float* g = params_[i]->grad.data();
      float* m = m_[i].data();
      float* v = v_[i].data();
      for_each_range(params_[i]->value.numel(),
                     [&](int64_t s, int64_t e) { fn(w + s, g + s, m + s, v + s, e - s, p); });
    }
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Adam");
    c.set("lr", static_cast<double>(lr));
    json::Value b = json::Value::array();
    b.push_back(static_cast<double>(beta1_));
    b.push_back(static_cast<double>(beta2_));
    c.set("betas", b);
    c.set("eps", static_cast<double>(eps_));
    c.set("weight_decay", static_cast<double>(weight_decay_));
    return c;
  }
  std::vector<std::pair<std::string, std::vector<Tensor>*>> state() override {
    return {{"exp_avg", &m_}, {"exp_avg_sq", &v_}};
  }

 private:
  float beta1_, beta2_, eps_, weight_decay_;
  std::vector<Tensor> m_, v_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const json::Value& cfg) {
  if (!cfg.is_object() || !cfg.has("type") || !cfg.at("type").is_string())
    throw ValueError("an optimizer config must be an object with a \"type\"");
  const std::string& t = cfg.at("type").as_string();
  if (t == "SGD") return std::make_unique<SGD>(cfg);
  if (t == "Adam") return std::make_unique<Adam>(cfg);
  throw ValueError("unknown optimizer '" + t + "' (expected SGD or Adam)");
}

}  // namespace cpucnn
