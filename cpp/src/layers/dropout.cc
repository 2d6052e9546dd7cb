#include <cmath>
#include <cstring>

#include "core/parallel.hpp"
#include "layers/factory.hpp"

namespace cpucnn {

namespace {

// Inverted dropout: in training each element is zeroed with probability
// `rate` and the rest scaled by 1/(1-rate); identity in inference. The mask
// is a hash of (seed, step, layer, element), so it does not depend on the
// thread count and backward recomputes it instead of storing it.
class Dropout : public Layer {
 public:
  explicit Dropout(const json::Value& cfg) {
    rate_ = static_cast<float>(cfg_num(cfg, "rate", 0.5));
    if (!(rate_ >= 0.0f && rate_ < 1.0f)) fail("rate must be in [0, 1), got " + std::to_string(rate_));
  }
  const char* type() const override { return "Dropout"; }
  std::string describe() const override { return "Dropout(" + std::to_string(rate_) + ")"; }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = out_shape = in;
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    const int64_t total = n * in_numel();
    if (!ctx.training || rate_ == 0.0f) {
      if (x != y) std::memcpy(y, x, total * sizeof(float));
      return;
    }
    key_ = splitmix64(ctx.seed ^ splitmix64(ctx.step * 0x100000001B3ull + static_cast<uint64_t>(index + 1)));
    const float keep = 1.0f / (1.0f - rate_), rate = rate_;
    const uint64_t key = key_;
    parallel_for(total, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = hash_uniform(key, static_cast<uint64_t>(i)) < rate ? 0.0f : x[i] * keep;
    });
  }
  void backward(const float*, const float*, const float* dy, float* dx, int64_t n) override {
    if (!dx) return;
    const int64_t total = n * in_numel();
    if (rate_ == 0.0f) {
      if (dx != dy) std::memcpy(dx, dy, total * sizeof(float));
      return;
    }
    const float keep = 1.0f / (1.0f - rate_), rate = rate_;
    const uint64_t key = key_;
    parallel_for(total, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dx[i] = hash_uniform(key, static_cast<uint64_t>(i)) < rate ? 0.0f : dy[i] * keep;
    });
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Dropout");
    c.set("rate", static_cast<double>(rate_));
    return c;
  }

 private:
  float rate_ = 0.5f;
  uint64_t key_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_dropout(const json::Value& cfg) { return std::make_unique<Dropout>(cfg); }

}  // namespace cpucnn
