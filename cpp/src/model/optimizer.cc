#include "model/optimizer.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

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
    read_clip(cfg, "SGD");
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
      if (params_[i]->frozen) continue;
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
    c.set("lr", shortest(lr));
    c.set("momentum", shortest(momentum_));
    c.set("nesterov", nesterov_);
    c.set("weight_decay", shortest(weight_decay_));
    write_clip(c);
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
  explicit Adam(const json::Value& cfg, const char* name = "Adam") : name_(name) {
    lr = finite_setting(cfg, "lr", 1e-3, name);
    beta1_ = 0.9f;
    beta2_ = 0.999f;
    if (const json::Value* b = cfg.find("betas"); b && !b->is_null()) {
      if (!b->is_array() || b->size() != 2) throw ValueError(std::string(name) + ": betas must be a pair of numbers");
      beta1_ = static_cast<float>(b->as_array()[0].as_number());
      beta2_ = static_cast<float>(b->as_array()[1].as_number());
    }
    eps_ = finite_setting(cfg, "eps", 1e-8, name);
    weight_decay_ = finite_setting(cfg, "weight_decay", 0.0, name);
    if (lr < 0) throw ValueError(std::string(name) + ": lr must not be negative, got " + std::to_string(lr));
    if (!(beta1_ >= 0 && beta1_ < 1) || !(beta2_ >= 0 && beta2_ < 1))
      throw ValueError(std::string(name) + ": betas must be in [0, 1)");
    if (!(eps_ >= 0)) throw ValueError(std::string(name) + ": eps must not be negative");
    if (weight_decay_ < 0) throw ValueError(std::string(name) + ": weight_decay must not be negative");
    read_clip(cfg, name);
  }
  void attach(const std::vector<Param*>& params) override {
    params_ = params;
    m_ = zeros_like(params);
    v_ = zeros_like(params);
    steps_ = 0;
  }
  void step() override { adam_step(weight_decay_); }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", std::string(name_));
    c.set("lr", shortest(lr));
    json::Value b = json::Value::array();
    b.push_back(shortest(beta1_));
    b.push_back(shortest(beta2_));
    c.set("betas", b);
    c.set("eps", shortest(eps_));
    c.set("weight_decay", shortest(weight_decay_));
    write_clip(c);
    return c;
  }
  std::vector<std::pair<std::string, std::vector<Tensor>*>> state() override {
    return {{"exp_avg", &m_}, {"exp_avg_sq", &v_}};
  }

 protected:
  // Adam's update with L2 decay `l2` added to the gradient.
  void adam_step(float l2) {
    ++steps_;
    const double t = static_cast<double>(steps_);
    AdamParams p{lr, beta1_, beta2_, eps_, l2,
                 static_cast<float>(1.0 - std::pow(static_cast<double>(beta1_), t)),
                 static_cast<float>(1.0 - std::pow(static_cast<double>(beta2_), t))};
    const AdamFn fn = kernels().adam_update;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (params_[i]->frozen) continue;
      float* w = params_[i]->value.data();
      const float* g = params_[i]->grad.data();
      float* m = m_[i].data();
      float* v = v_[i].data();
      for_each_range(params_[i]->value.numel(),
                     [&](int64_t s, int64_t e) { fn(w + s, g + s, m + s, v + s, e - s, p); });
    }
  }
  const char* name_;
  float beta1_, beta2_, eps_, weight_decay_;
  std::vector<Tensor> m_, v_;
};

// torch.optim.AdamW: w *= 1 - lr*wd (decoupled weight decay), then Adam's
// update without weight decay.
class AdamW : public Adam {
 public:
  explicit AdamW(const json::Value& cfg) : Adam(with_default_decay(cfg), "AdamW") {}
  void step() override {
    const float keep = static_cast<float>(1.0 - static_cast<double>(lr) * static_cast<double>(weight_decay_));
    if (weight_decay_ != 0.0f) {
      for (Param* p : params_) {
        if (p->frozen) continue;
        float* w = p->value.data();
        for_each_range(p->value.numel(), [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) w[i] *= keep;
        });
      }
    }
    adam_step(0.0f);
  }

 private:
  static json::Value with_default_decay(const json::Value& cfg) {
    if (cfg.has("weight_decay")) return cfg;
    json::Value c = cfg;
    c.set("weight_decay", 0.01);
    return c;
  }
};

// torch.optim.RMSprop (alpha, eps, weight_decay, momentum, centered).
class RMSprop : public Optimizer {
 public:
  explicit RMSprop(const json::Value& cfg) {
    const char* me = "RMSprop";
    lr = finite_setting(cfg, "lr", 0.01, me);
    alpha_ = finite_setting(cfg, "alpha", 0.99, me);
    eps_ = finite_setting(cfg, "eps", 1e-8, me);
    weight_decay_ = finite_setting(cfg, "weight_decay", 0.0, me);
    momentum_ = finite_setting(cfg, "momentum", 0.0, me);
    centered_ = cfg_bool(cfg, "centered", false);
    if (lr < 0) throw ValueError("RMSprop: lr must not be negative, got " + std::to_string(lr));
    if (!(alpha_ >= 0 && alpha_ <= 1)) throw ValueError("RMSprop: alpha must be in [0, 1]");
    if (!(eps_ >= 0)) throw ValueError("RMSprop: eps must not be negative");
    if (weight_decay_ < 0) throw ValueError("RMSprop: weight_decay must not be negative");
    if (momentum_ < 0) throw ValueError("RMSprop: momentum must not be negative");
    read_clip(cfg, me);
  }
  void attach(const std::vector<Param*>& params) override {
    params_ = params;
    sq_ = zeros_like(params);
    buf_ = momentum_ > 0 ? zeros_like(params) : std::vector<Tensor>(params.size());
    gavg_ = centered_ ? zeros_like(params) : std::vector<Tensor>(params.size());
    steps_ = 0;
  }
  void step() override {
    RmspropParams p{lr, alpha_, eps_, weight_decay_, momentum_, centered_};
    const RmspropFn fn = kernels().rmsprop_update;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (params_[i]->frozen) continue;
      float* w = params_[i]->value.data();
      const float* g = params_[i]->grad.data();
      float* sq = sq_[i].data();
      float* b = momentum_ > 0 ? buf_[i].data() : nullptr;
      float* ga = centered_ ? gavg_[i].data() : nullptr;
      for_each_range(params_[i]->value.numel(), [&](int64_t s, int64_t e) {
        fn(w + s, g + s, sq + s, b ? b + s : nullptr, ga ? ga + s : nullptr, e - s, p);
      });
    }
    ++steps_;
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "RMSprop");
    c.set("lr", shortest(lr));
    c.set("alpha", shortest(alpha_));
    c.set("eps", shortest(eps_));
    c.set("weight_decay", shortest(weight_decay_));
    c.set("momentum", shortest(momentum_));
    c.set("centered", centered_);
    write_clip(c);
    return c;
  }
  std::vector<std::pair<std::string, std::vector<Tensor>*>> state() override {
    std::vector<std::pair<std::string, std::vector<Tensor>*>> out = {{"square_avg", &sq_}};
    if (momentum_ > 0) out.push_back({"momentum_buffer", &buf_});
    if (centered_) out.push_back({"grad_avg", &gavg_});
    return out;
  }

 private:
  float alpha_, eps_, weight_decay_, momentum_;
  bool centered_;
  std::vector<Tensor> sq_, buf_, gavg_;
};

}  // namespace

double shortest(float v) {
  char buf[32];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(v);
}

void Optimizer::read_clip(const json::Value& cfg, const char* opt) {
  clipnorm = finite_setting(cfg, "clipnorm", 0.0, opt);
  clipvalue = finite_setting(cfg, "clipvalue", 0.0, opt);
  if (clipnorm < 0) throw ValueError(std::string(opt) + ": clipnorm must be positive");
  if (clipvalue < 0) throw ValueError(std::string(opt) + ": clipvalue must be positive");
}

void Optimizer::write_clip(json::Value& c) const {
  if (clipnorm > 0) c.set("clipnorm", shortest(clipnorm));
  if (clipvalue > 0) c.set("clipvalue", shortest(clipvalue));
}

void Optimizer::clip_gradients() {
  if (clipnorm > 0) {
    // As clip_grad_norm_: each gradient's 2-norm, the 2-norm of those, and
    // grads *= min(1, max_norm / (total + 1e-6)) in float.
    double total_sq = 0.0;
    for (Param* p : params_) {
      if (p->frozen) continue;
      const float* g = p->grad.data();
      double ss = 0.0;
      for (int64_t i = 0; i < p->grad.numel(); ++i) ss += static_cast<double>(g[i]) * g[i];
      const float norm = static_cast<float>(std::sqrt(ss));
      total_sq += static_cast<double>(norm) * norm;
    }
    const float total = static_cast<float>(std::sqrt(total_sq));
    const float coef = std::min(1.0f, clipnorm / (total + 1e-6f));
    if (coef < 1.0f) {
      for (Param* p : params_) {
        if (p->frozen) continue;
        float* g = p->grad.data();
        for (int64_t i = 0; i < p->grad.numel(); ++i) g[i] *= coef;
      }
    }
  }
  if (clipvalue > 0) {
    for (Param* p : params_) {
      if (p->frozen) continue;
      float* g = p->grad.data();
      for (int64_t i = 0; i < p->grad.numel(); ++i) g[i] = std::min(clipvalue, std::max(-clipvalue, g[i]));
    }
  }
}

std::unique_ptr<Optimizer> make_optimizer(const json::Value& cfg) {
  if (!cfg.is_object() || !cfg.has("type") || !cfg.at("type").is_string())
    throw ValueError("an optimizer config must be an object with a \"type\"");
  const std::string& t = cfg.at("type").as_string();
  if (t == "SGD") return std::make_unique<SGD>(cfg);
  if (t == "Adam") return std::make_unique<Adam>(cfg);
  if (t == "AdamW") return std::make_unique<AdamW>(cfg);
  if (t == "RMSprop") return std::make_unique<RMSprop>(cfg);
  throw ValueError("unknown optimizer '" + t + "' (expected SGD, Adam, AdamW or RMSprop)");
}

}  // namespace cpucnn
