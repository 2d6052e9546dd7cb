#include "model/loss.hpp"

#include <algorithm>
#include <cmath>

namespace cpucnn {

namespace {
int64_t argmax(const float* row, int64_t c) {
  int64_t best = 0;
  for (int64_t j = 1; j < c; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}
}  // namespace

double cross_entropy(const float* logits, const int64_t* labels, int64_t n, int64_t c, float* dlogits,
                     int64_t* correct) {
  double total = 0.0;
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits + i * c;
    const float mx = z[argmax(z, c)];
    double sum = 0.0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
    const double lse = std::log(sum) + mx;
    total += lse - z[labels[i]];
    if (correct && argmax(z, c) == labels[i]) ++*correct;
    if (dlogits) {
      float* d = dlogits + i * c;
      for (int64_t j = 0; j < c; ++j) d[j] = static_cast<float>(std::exp(z[j] - lse)) * inv_n;
      d[labels[i]] -= inv_n;
    }
  }
  return total / static_cast<double>(n);
}

double cross_entropy(const float* logits, const int64_t* labels, const float* probs, const float* weights,
                     float label_smoothing, int64_t n, int64_t c, float* dlogits, int64_t* correct) {
  if (labels && !probs && !weights && label_smoothing == 0.0f)
    return cross_entropy(logits, labels, n, c, dlogits, correct);
  double total = 0.0;
  const double inv_n = 1.0 / static_cast<double>(n);
  const double e = label_smoothing, uniform = e / static_cast<double>(c);
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits + i * c;
    const float* t = probs ? probs + i * c : nullptr;
    const int64_t top = argmax(z, c);
    const float mx = z[top];
    double sum = 0.0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
    const double lse = std::log(sum) + mx;
    // q_j = (1 - e) * target_j + e / c; loss = sum_j q_j (lse - z_j); dloss/dz_j = p_j sum(q) - q_j.
    double qsum = 0.0, li = 0.0;
    for (int64_t j = 0; j < c; ++j) {
      const double target = t ? static_cast<double>(t[j]) : (j == labels[i] ? 1.0 : 0.0);
      const double q = (1.0 - e) * target + uniform;
      qsum += q;
      li += q * (lse - z[j]);
    }
    const double w = weights ? static_cast<double>(weights[i]) : 1.0;
    total += w * li;
    if (correct && top == (t ? argmax(t, c) : labels[i])) ++*correct;
    if (dlogits) {
      float* d = dlogits + i * c;
      const double scale = w * inv_n;
      for (int64_t j = 0; j < c; ++j) {
        const double target = t ? static_cast<double>(t[j]) : (j == labels[i] ? 1.0 : 0.0);
        const double q = (1.0 - e) * target + uniform;
        d[j] = static_cast<float>((std::exp(z[j] - lse) * qsum - q) * scale);
      }
    }
  }
  return total * inv_n;
}

double mse(const float* out, const float* target, int64_t n, int64_t m, float* dout, int64_t* correct) {
  return mse(out, target, nullptr, n, m, dout, correct);
}

double mse(const float* out, const float* target, const float* weights, int64_t n, int64_t m, float* dout,
           int64_t* correct) {
  double total = 0.0;
  const float scale = 2.0f / static_cast<float>(n * m);
  for (int64_t i = 0; i < n * m; ++i) {
    const float d = out[i] - target[i];
    const float w = weights ? weights[i / m] : 1.0f;
    total += static_cast<double>(w) * d * d;
    if (dout) dout[i] = (weights ? scale * w : scale) * d;
  }
  if (correct)
    for (int64_t i = 0; i < n; ++i)
      if (argmax(out + i * m, m) == argmax(target + i * m, m)) ++*correct;
  return total / static_cast<double>(n * m);
}

int64_t topk_hits(const float* out, const int64_t* labels, int64_t n, int64_t c, int64_t k) {
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = out + i * c;
    const float v = z[labels[i]];
    int64_t above = 0;  // outputs strictly larger than the label's
    for (int64_t j = 0; j < c; ++j) above += z[j] > v;
    if (above < k) ++hits;
  }
  return hits;
}

}  // namespace cpucnn
