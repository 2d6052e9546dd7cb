#include <algorithm>
#include <cmath>

#include "core/parallel.hpp"
#include "layers/factory.hpp"

namespace cpucnn {

namespace {

// Softmax over the channel axis (PyTorch's Softmax(dim=1)): over the
// features of a flat input, over C at each pixel of a (C, H, W) input.
class Softmax : public Layer {
 public:
  explicit Softmax(const json::Value&) {}
  const char* type() const override { return "Softmax"; }
  Dims build(const Dims& in) override {
    if (in.empty() || in[0] <= 0) fail("expects a non-empty input shape, got " + shape_str(in));
    in_shape = out_shape = in;
    return out_shape;
  }
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const int64_t c = in_shape[0], inner = in_numel() / c;
    parallel_for(n * inner, 4096 / std::max<int64_t>(1, c) + 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t s = r / inner, q = r % inner;
        const float* xs = x + s * c * inner + q;
        float* ys = y + s * c * inner + q;
        float mx = xs[0];
        for (int64_t k = 1; k < c; ++k) mx = std::max(mx, xs[k * inner]);
        float sum = 0.0f;
        for (int64_t k = 0; k < c; ++k) {
          ys[k * inner] = std::exp(xs[k * inner] - mx);
          sum += ys[k * inner];
        }
        const float inv = 1.0f / sum;
        for (int64_t k = 0; k < c; ++k) ys[k * inner] *= inv;
      }
    });
  }
  void backward(const float*, const float* y, const float* dy, float* dx, int64_t n) override {
    if (!dx) return;
    const int64_t c = in_shape[0], inner = in_numel() / c;
    parallel_for(n * inner, 4096 / std::max<int64_t>(1, c) + 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t off = (r / inner) * c * inner + r % inner;
        float dot = 0.0f;
        for (int64_t k = 0; k < c; ++k) dot += dy[off + k * inner] * y[off + k * inner];
        for (int64_t k = 0; k < c; ++k) dx[off + k * inner] = y[off + k * inner] * (dy[off + k * inner] - dot);
      }
    });
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Softmax");
    return c;
  }
};

}  // namespace

std::unique_ptr<Layer> make_softmax(const json::Value& cfg) { return std::make_unique<Softmax>(cfg); }

}  // namespace cpucnn
