#include <cmath>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/factory.hpp"

namespace cpucnn {

namespace {

constexpr int64_t kGrain = 1 << 15;

// Element-wise activations: ReLU, LeakyReLU(alpha), Sigmoid, Tanh. Any
// input shape; the output has the same shape.
class Activation : public Layer {
 public:
  enum Kind { kRelu, kLeaky, kSigmoid, kTanh };

  explicit Activation(const json::Value& cfg) {
    const std::string& t = cfg.at("type").as_string();
    kind_ = t == "ReLU" ? kRelu : t == "LeakyReLU" ? kLeaky : t == "Sigmoid" ? kSigmoid : kTanh;
    type_ = t == "ReLU" ? "ReLU" : t == "LeakyReLU" ? "LeakyReLU" : t == "Sigmoid" ? "Sigmoid" : "Tanh";
    if (kind_ == kLeaky) {
      alpha_ = static_cast<float>(cfg_num(cfg, "alpha", 0.01));
      if (!std::isfinite(alpha_)) fail("alpha must be finite");
    }
  }
  const char* type() const override { return type_; }
  std::string describe() const override {
    return kind_ == kLeaky ? "LeakyReLU(" + std::to_string(alpha_) + ")" : std::string(type_);
  }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = out_shape = in;
    return out_shape;
  }

  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const KernelTable& kt = kernels();
    const float a = alpha_;
    const Kind kind = kind_;
    parallel_for(n * in_numel(), kGrain, [&](int64_t b, int64_t e) {
      switch (kind) {
        case kRelu:
          kt.relu_fwd(x + b, y + b, e - b);
          break;
        case kLeaky:
          for (int64_t i = b; i < e; ++i) y[i] = x[i] > 0.0f ? x[i] : a * x[i];
          break;
        case kSigmoid:
          for (int64_t i = b; i < e; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
          break;
        case kTanh:
          for (int64_t i = b; i < e; ++i) y[i] = std::tanh(x[i]);
          break;
      }
    });
  }

  void backward(const float* x, const float* y, const float* dy, float* dx, int64_t n) override {
    if (!dx) return;
    const KernelTable& kt = kernels();
    const float a = alpha_;
    const Kind kind = kind_;
    parallel_for(n * in_numel(), kGrain, [&](int64_t b, int64_t e) {
      switch (kind) {
        case kRelu:
          kt.relu_bwd(y + b, dy + b, dx + b, e - b);
          break;
        case kLeaky:
          for (int64_t i = b; i < e; ++i) dx[i] = x[i] > 0.0f ? dy[i] : a * dy[i];
          break;
        case kSigmoid:
          for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
          break;
        case kTanh:
          for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
          break;
      }
    });
  }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", type_);
    if (kind_ == kLeaky) c.set("alpha", static_cast<double>(alpha_));
    return c;
  }

 private:
  Kind kind_;
  const char* type_;
  float alpha_ = 0.01f;
};

}  // namespace

std::unique_ptr<Layer> make_activation(const json::Value& cfg) { return std::make_unique<Activation>(cfg); }

}  // namespace cpucnn
