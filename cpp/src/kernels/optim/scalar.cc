#include <cmath>

#include "kernels/kernels.hpp"

namespace cpucnn {

// PyTorch's SGD: g += wd*w; buf = momentum*buf + g (buf = g on the first step);
// step = nesterov ? g + momentum*buf : buf; w -= lr*step.
void sgd_update_scalar(float* w, const float* g, float* buf, int64_t n, const SgdParams& p) {
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i] + p.weight_decay * w[i];
    if (p.momentum != 0.0f) {
      const float b = p.first_step ? gi : p.momentum * buf[i] + gi;
      buf[i] = b;
      gi = p.nesterov ? gi + p.momentum * b : b;
    }
    w[i] -= p.lr * gi;
  }
}

// PyTorch's Adam (L2 weight decay added to the gradient, not AdamW).
void adam_update_scalar(float* w, const float* g, float* m, float* v, int64_t n, const AdamParams& p) {
  const float step_size = p.lr / p.bias_correction1;
  const float bc2_sqrt = std::sqrt(p.bias_correction2);
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + p.weight_decay * w[i];
    m[i] = p.beta1 * m[i] + (1.0f - p.beta1) * gi;
    v[i] = p.beta2 * v[i] + (1.0f - p.beta2) * gi * gi;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + p.eps;
    w[i] -= step_size * (m[i] / denom);
  }
}

// PyTorch's RMSprop: g += wd*w; sq = alpha*sq + (1-alpha)*g*g; centered:
// ga += (1-alpha)*(g - ga), avg = sqrt(sq - ga*ga), else avg = sqrt(sq);
// avg += eps; momentum: buf = momentum*buf + g/avg, w -= lr*buf; else
// w -= lr*g/avg. Scalar on every ISA for now.
void rmsprop_update_scalar(float* w, const float* g, float* square_avg, float* buf, float* grad_avg, int64_t n,
                           const RmspropParams& p) {
  const float one_minus = 1.0f - p.alpha;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = p.weight_decay != 0.0f ? g[i] + p.weight_decay * w[i] : g[i];
    const float sq = p.alpha * square_avg[i] + one_minus * gi * gi;
    square_avg[i] = sq;
    float avg;
    if (p.centered) {
      const float ga = grad_avg[i] + one_minus * (gi - grad_avg[i]);
      grad_avg[i] = ga;
      avg = std::sqrt(sq - ga * ga);
    } else {
      avg = std::sqrt(sq);
    }
    avg += p.eps;
    if (p.momentum > 0.0f) {
      const float b = p.momentum * buf[i] + gi / avg;
      buf[i] = b;
      w[i] -= p.lr * b;
    } else {
      w[i] -= p.lr * (gi / avg);
    }
  }
}

}  // namespace cpucnn
