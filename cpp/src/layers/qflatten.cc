// QFlatten: (C, H, W) codes -> (C*H*W,) codes; a view, like Flatten.
#include <cstring>

#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class QFlatten : public Layer {
 public:
  explicit QFlatten(const json::Value&) {}
  const char* type() const override { return "QFlatten"; }
  bool is_view() const override { return true; }
  Dims build(const Dims& in) override {
    if (in.empty()) fail("expects a non-empty input shape");
    in_shape = in;
    out_shape = {checked_numel(in, "QFlatten input")};
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    if (x != y) std::memcpy(y, x, static_cast<size_t>(n * in_numel()));
  }
  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "QFlatten");
    return c;
  }
};

}  // namespace

std::unique_ptr<Layer> make_qflatten(const json::Value& cfg) { return std::make_unique<QFlatten>(cfg); }

}  // namespace cpucnn
