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

double mse(const float* out, const float* target, int64_t n, int64_t m, float* dout, int64_t* correct) {
  double total = 0.0;
  const float scale = 2.0f / static_cast<float>(n * m);
  for (int64_t i = 0; i < n * m; ++i) {
    const float d = out[i] - target[i];
    total += static_cast<double>(d) * d;
    if (dout) dout[i] = scale * d;
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
