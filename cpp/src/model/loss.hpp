// Losses over a batch of model outputs, averaged as PyTorch does.
#pragma once

#include <cstdint>

namespace cpucnn {

// Softmax cross-entropy from logits (n x c) and integer labels (already
// checked to be in [0, c)). Returns the mean loss; writes dlogits (the
// gradient of the mean) when non-null; adds top-1 hits to *correct.
double cross_entropy(const float* logits, const int64_t* labels, int64_t n, int64_t c, float* dlogits,
                     int64_t* correct);

// The general form. Targets: labels (n, in [0, c)) or, when labels is null,
// probabilities (n x c, any non-negative rows, as torch's probability
// targets). label_smoothing e (in [0, 1]) mixes the target with the uniform
// distribution: q = (1 - e) * target + e / c, loss_i = -sum_j q_ij log p_ij
// (torch.nn.CrossEntropyLoss's definition). weights (n, or null for all 1):
// the result is sum_i w_i loss_i / n (Keras's sample-weighted mean). Top-1
// hits compare against the label or the probabilities' argmax.
double cross_entropy(const float* logits, const int64_t* labels, const float* probs, const float* weights,
                     float label_smoothing, int64_t n, int64_t c, float* dlogits, int64_t* correct);

// Mean squared error over all n*m elements (PyTorch's MSELoss). Accuracy
// compares the argmax of output and target rows.
double mse(const float* out, const float* target, int64_t n, int64_t m, float* dout, int64_t* correct);
// ... with sample weights (n, or null): sum_i w_i sum_j d_ij^2 / (n m).
double mse(const float* out, const float* target, const float* weights, int64_t n, int64_t m, float* dout,
           int64_t* correct);

// Samples whose label is among the k largest outputs.
int64_t topk_hits(const float* out, const int64_t* labels, int64_t n, int64_t c, int64_t k);

}  // namespace cpucnn
