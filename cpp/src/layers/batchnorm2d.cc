#include <cmath>
#include <vector>

#include "core/parallel.hpp"
#include "layers/factory.hpp"

namespace cpucnn {

namespace {

// BatchNorm over the channels of (C, H, W) inputs, as torch.nn.BatchNorm2d:
// batch statistics (biased variance) in training, updating the running
// statistics with `momentum` (unbiased variance); running statistics in
// inference. Parameters weight (gamma) and bias (beta); buffers
// running_mean and running_var.
class BatchNorm2D : public Layer {
 public:
  explicit BatchNorm2D(const json::Value& cfg) {
    momentum_ = static_cast<float>(cfg_num(cfg, "momentum", 0.1));
    eps_ = static_cast<float>(cfg_num(cfg, "eps", 1e-5));
    if (!(momentum_ >= 0.0f && momentum_ <= 1.0f)) fail("momentum must be in [0, 1]");
    if (!(eps_ > 0.0f) || !std::isfinite(eps_)) fail("eps must be positive");
  }
  const char* type() const override { return "BatchNorm2D"; }
  Dims build(const Dims& in) override {
    if (in.size() != 3) fail("expects input (channels, height, width), got " + shape_str(in));
    if (in[0] <= 0 || in[1] <= 0 || in[2] <= 0) fail("input " + shape_str(in) + " has an empty dimension");
    in_shape = out_shape = in;
    const int64_t c = in[0];
    params_.clear();
    add_param("weight", {c});
    add_param("bias", {c});
    add_param("running_mean", {c}, false);
    add_param("running_var", {c}, false);
    mean_.assign(c, 0.0f);
    invstd_.assign(c, 0.0f);
    return out_shape;
  }
  void reset_parameters(Rng&) override {
    params_[0].value.fill(1.0f);
    params_[1].value.zero();
    params_[2].value.zero();
    params_[3].value.fill(1.0f);
  }

  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    const int64_t c = in_shape[0], hw = in_shape[1] * in_shape[2];
    const float* gamma = params_[0].value.data();
    const float* beta = params_[1].value.data();
    float* rmean = params_[2].value.data();
    float* rvar = params_[3].value.data();
    const bool training = ctx.training;
    if (training && n * hw < 2) fail("training needs more than one value per channel, got batch " + std::to_string(n));
    parallel_for(c, 1, [&](int64_t b, int64_t e) {
      for (int64_t ch = b; ch < e; ++ch) {
        float mean, invstd;
        if (training) {
          double s = 0.0, ss = 0.0;
          for (int64_t i = 0; i < n; ++i) {
            const float* p = x + (i * c + ch) * hw;
            for (int64_t q = 0; q < hw; ++q) s += p[q];
          }
          const double m = s / static_cast<double>(n * hw);
          for (int64_t i = 0; i < n; ++i) {
            const float* p = x + (i * c + ch) * hw;
            for (int64_t q = 0; q < hw; ++q) ss += (p[q] - m) * (p[q] - m);
          }
          const double count = static_cast<double>(n * hw);
          const double var = ss / count;
          mean = static_cast<float>(m);
          invstd = static_cast<float>(1.0 / std::sqrt(var + eps_));
          mean_[ch] = mean;
          invstd_[ch] = invstd;
          rmean[ch] = (1.0f - momentum_) * rmean[ch] + momentum_ * mean;
          rvar[ch] = (1.0f - momentum_) * rvar[ch] + momentum_ * static_cast<float>(ss / (count - 1.0));
        } else {
          mean = rmean[ch];
          invstd = 1.0f / std::sqrt(rvar[ch] + eps_);
        }
        const float scale = gamma[ch] * invstd, shift = beta[ch] - mean * scale;
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          float* o = y + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) o[q] = p[q] * scale + shift;
        }
      }
    });
  }

  void backward(const float* x, const float*, const float* dy, float* dx, int64_t n) override {
    const int64_t c = in_shape[0], hw = in_shape[1] * in_shape[2];
    const float* gamma = params_[0].value.data();
    float* dgamma = params_[0].grad.data();
    float* dbeta = params_[1].grad.data();
    const double count = static_cast<double>(n * hw);
    parallel_for(c, 1, [&](int64_t b, int64_t e) {
      for (int64_t ch = b; ch < e; ++ch) {
        const float mean = mean_[ch], invstd = invstd_[ch];
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          const float* g = dy + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) {
            sdy += g[q];
            sdyx += g[q] * (p[q] - mean) * invstd;
          }
        }
        if (!frozen_) {  // frozen: gamma and beta get no gradient (running statistics still update)
          dgamma[ch] = static_cast<float>(sdyx);
          dbeta[ch] = static_cast<float>(sdy);
        }
        if (!dx) continue;
        const float k = gamma[ch] * invstd;
        const float mdy = static_cast<float>(sdy / count), mdyx = static_cast<float>(sdyx / count);
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          const float* g = dy + (i * c + ch) * hw;
          float* o = dx + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) o[q] = k * (g[q] - mdy - (p[q] - mean) * invstd * mdyx);
        }
      }
    });
  }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "BatchNorm2D");
    c.set("momentum", static_cast<double>(momentum_));
    c.set("eps", static_cast<double>(eps_));
    return c;
  }
  int64_t macs() const override { return in_shape[0] * in_shape[1] * in_shape[2]; }

 private:
  float momentum_ = 0.1f, eps_ = 1e-5f;
  std::vector<float> mean_, invstd_;  // batch statistics of the last training forward
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm2d(const json::Value& cfg) { return std::make_unique<BatchNorm2D>(cfg); }

}  // namespace cpucnn
