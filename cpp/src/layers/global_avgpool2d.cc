#include "core/parallel.hpp"
#include "layers/factory.hpp"

namespace cpucnn {

namespace {

// (C, H, W) -> (C,): the mean of each plane.
class GlobalAvgPool2D : public Layer {
 public:
  explicit GlobalAvgPool2D(const json::Value&) {}
  const char* type() const override { return "GlobalAvgPool2D"; }
  Dims build(const Dims& in) override {
    if (in.size() != 3) fail("expects input (channels, height, width), got " + shape_str(in));
    if (in[0] <= 0 || in[1] <= 0 || in[2] <= 0) fail("input " + shape_str(in) + " has an empty dimension");
    in_shape = in;
    out_shape = {in[0]};
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const int64_t hw = in_shape[1] * in_shape[2];
    const float scale = 1.0f / static_cast<float>(hw);
    parallel_for(n * in_shape[0], std::max<int64_t>(1, 16384 / hw), [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        float acc = 0.0f;
        for (int64_t i = 0; i < hw; ++i) acc += x[c * hw + i];
        y[c] = acc * scale;
      }
    });
  }
  void backward(const float*, const float*, const float* dy, float* dx, int64_t n) override {
    if (!dx) return;
    const int64_t hw = in_shape[1] * in_shape[2];
    const float scale = 1.0f / static_cast<float>(hw);
    parallel_for(n * in_shape[0], std::max<int64_t>(1, 16384 / hw), [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        const float g = dy[c] * scale;
        for (int64_t i = 0; i < hw; ++i) dx[c * hw + i] = g;
      }
    });
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "GlobalAvgPool2D");
    return c;
  }
  int64_t macs() const override { return in_shape[0] * in_shape[1] * in_shape[2]; }
};

}  // namespace

std::unique_ptr<Layer> make_global_avgpool2d(const json::Value& cfg) {
  return std::make_unique<GlobalAvgPool2D>(cfg);
}

}  // namespace cpucnn
