#include <cmath>
#include <vector>

#include "core/parallel.hpp"
#include "layers/factory.hpp"
#include "model/collective.hpp"

namespace cpucnn {

namespace {

// BatchNorm over the channels of (C, H, W) inputs, as torch.nn.BatchNorm2d:
// batch statistics (biased variance) in training, updating the running
// statistics with `momentum` (unbiased variance); running statistics in
// inference. Parameters weight (gamma) and bias (beta); buffers
// running_mean and running_var.
//
// With a Collective (sync_batchnorm in data-parallel training) the batch
// statistics are those of the global batch: see forward_synced/backward_synced.
class BatchNorm2D : public Layer, public SyncsStatistics {
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

  void set_collective(Collective* c) override { collective_ = c; }

  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    if (ctx.training && collective_) return forward_synced(x, y, n);
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
    if (collective_) return backward_synced(x, dy, dx, n);
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
  // Training forward over the global batch: the per-channel sums (and the
  // sample count) summed over every process, then the sums of squares about
  // the global mean (two passes, as the local path), each reduced between
  // parallel regions. Every process ends with the same statistics, so the
  // running statistics stay identical everywhere.
  void forward_synced(const float* x, float* y, int64_t n) {
    const int64_t c = in_shape[0], hw = in_shape[1] * in_shape[2];
    std::vector<double> red(static_cast<size_t>(c) + 1, 0.0);
    parallel_for(c, 1, [&](int64_t b, int64_t e) {
      for (int64_t ch = b; ch < e; ++ch) {
        double s = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) s += p[q];
        }
        red[ch] = s;
      }
    });
    red[c] = static_cast<double>(n * hw);
    collective_->allreduce_sum(red.data(), c + 1);
    const double count = red[c];
    if (count < 2.0) fail("training needs more than one value per channel over all processes, got " +
                          std::to_string(static_cast<int64_t>(count)));
    local_share_ = static_cast<double>(n * hw) / count;
    std::vector<double> mean(red.begin(), red.begin() + c), ss(static_cast<size_t>(c), 0.0);
    for (double& m : mean) m /= count;
    parallel_for(c, 1, [&](int64_t b, int64_t e) {
      for (int64_t ch = b; ch < e; ++ch) {
        const double m = mean[ch];
        double acc = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) acc += (p[q] - m) * (p[q] - m);
        }
        ss[ch] = acc;
      }
    });
    collective_->allreduce_sum(ss.data(), c);
    const float* gamma = params_[0].value.data();
    const float* beta = params_[1].value.data();
    float* rmean = params_[2].value.data();
    float* rvar = params_[3].value.data();
    for (int64_t ch = 0; ch < c; ++ch) {
      mean_[ch] = static_cast<float>(mean[ch]);
      invstd_[ch] = static_cast<float>(1.0 / std::sqrt(ss[ch] / count + eps_));
      rmean[ch] = (1.0f - momentum_) * rmean[ch] + momentum_ * mean_[ch];
      rvar[ch] = (1.0f - momentum_) * rvar[ch] + momentum_ * static_cast<float>(ss[ch] / (count - 1.0));
    }
    parallel_for(c, 1, [&](int64_t b, int64_t e) {
      for (int64_t ch = b; ch < e; ++ch) {
        const float scale = gamma[ch] * invstd_[ch], shift = beta[ch] - mean_[ch] * scale;
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          float* o = y + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) o[q] = p[q] * scale + shift;
        }
      }
    });
  }

  // Backward over the global batch. This process's dy is the gradient of its
  // own mean loss; the step's gradient is the average of the processes'
  // weighted by their shares s_r = n_r / N. The global sums of dy and dy*xhat
  // are therefore sum_r s_r * (local sums), and in this process's scale the
  // means become (global sum) / (local count). gamma's and beta's gradients
  // stay local: the gradient allreduce averages them with the same weights.
  void backward_synced(const float* x, const float* dy, float* dx, int64_t n) {
    const int64_t c = in_shape[0], hw = in_shape[1] * in_shape[2];
    float* dgamma = params_[0].grad.data();
    float* dbeta = params_[1].grad.data();
    std::vector<double> red(static_cast<size_t>(2 * c), 0.0);
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
        if (!frozen_) {
          dgamma[ch] = static_cast<float>(sdyx);
          dbeta[ch] = static_cast<float>(sdy);
        }
        red[ch] = sdy * local_share_;
        red[c + ch] = sdyx * local_share_;
      }
    });
    collective_->allreduce_sum(red.data(), 2 * c);
    if (!dx || n == 0) return;
    const double count = static_cast<double>(n * hw);
    const float* gamma = params_[0].value.data();
    parallel_for(c, 1, [&](int64_t b, int64_t e) {
      for (int64_t ch = b; ch < e; ++ch) {
        const float mean = mean_[ch], invstd = invstd_[ch];
        const float k = gamma[ch] * invstd;
        const float mdy = static_cast<float>(red[ch] / count), mdyx = static_cast<float>(red[c + ch] / count);
        for (int64_t i = 0; i < n; ++i) {
          const float* p = x + (i * c + ch) * hw;
          const float* g = dy + (i * c + ch) * hw;
          float* o = dx + (i * c + ch) * hw;
          for (int64_t q = 0; q < hw; ++q) o[q] = k * (g[q] - mdy - (p[q] - mean) * invstd * mdyx);
        }
      }
    });
  }

  float momentum_ = 0.1f, eps_ = 1e-5f;
  std::vector<float> mean_, invstd_;  // batch statistics of the last training forward
  Collective* collective_ = nullptr;  // not owned; see SyncsStatistics
  double local_share_ = 1.0;          // this process's share of the last synced forward's batch
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm2d(const json::Value& cfg) { return std::make_unique<BatchNorm2D>(cfg); }

}  // namespace cpucnn
