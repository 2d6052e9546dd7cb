#include <cstring>

#include "layers/factory.hpp"

namespace cpucnn {

namespace {

// (C, H, W) -> (C*H*W,), the NCHW order PyTorch's flatten gives.
class Flatten : public Layer {
 public:
  explicit Flatten(const json::Value&) {}
  const char* type() const override { return "Flatten"; }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = in;
    out_shape = {checked_numel(in, "Flatten input")};
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    if (x != y) std::memcpy(y, x, n * in_numel() * sizeof(float));
  }
  void backward(const float*, const float*, const float* dy, float* dx, int64_t n) override {
    if (dx && dx != dy) std::memcpy(dx, dy, n * in_numel() * sizeof(float));
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Flatten");
    return c;
  }
};

}  // namespace

std::unique_ptr<Layer> make_flatten(const json::Value& cfg) { return std::make_unique<Flatten>(cfg); }

}  // namespace cpucnn
