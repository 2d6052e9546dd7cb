// Losses over a batch of model outputs, averaged as PyTorch does.
#pragma once

#include <cstdint>

namespace cpucnn {

// Softmax cross-entropy from logits (n x c) and integer labels (already
// checked to be in [0, c)). Returns the mean loss; writes dlogits (the
// gradient of the mean) when non-null; adds top-1 hits to *correct.
double cross_entropy(const float* logits, const int64_t* labels, int64_t n, int64_t c, float* dlogits,
                     int64_t* correct);

// Mean squared error over all n*m elements (PyTorch's MSELoss). Accuracy
// compares the argmax of output and target rows.
double mse(const float* out, const float* target, int64_t n, int64_t m, float* dout, int64_t* correct);

// Samples whose label is among the k largest outputs.
int64_t topk_hits(const float* out, const int64_t* labels, int64_t n, int64_t c, int64_t k);

}  // namespace cpucnn
