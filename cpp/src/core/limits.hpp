// Sizes computed from untrusted numbers (model files, user settings): overflow-checked arithmetic,
// and the limit on the activations of one sample that every model is built under.
//
// A model file states its own shapes; its parameters must be in the file, but its activations are
// only implied (a 1x1 convolution on a (1, 10^6, 10^6) input has two parameters and 4 TB of
// output). Building a model therefore checks each layer's per-sample sizes against
// max_activation_bytes() before anything is allocated.
#pragma once

#include <cstdint>
#include <string>

#include "core/errors.hpp"

namespace cpucnn {

// A size over a limit the user may raise (a ValueError, so Python sees ValueError).
struct SizeLimitError : ValueError {
  using ValueError::ValueError;
};

// a * b and a + b for non-negative sizes; throws ValueError("<what> overflows ...") when the
// result does not fit in int64.
int64_t checked_mul(int64_t a, int64_t b, const char* what);
int64_t checked_add(int64_t a, int64_t b, const char* what);
// a * b and a + b, or INT64_MAX when it does not fit (statistics such as MACs; scratch sizes,
// where INT64_MAX then fails to allocate).
int64_t saturating_mul(int64_t a, int64_t b);
int64_t saturating_add(int64_t a, int64_t b);

// The most bytes one sample's activations may take in one buffer: a layer's output, or a layer's
// unfolded input (Conv2D's im2col columns). Default 1 GiB; process-wide.
constexpr int64_t kDefaultMaxActivationBytes = int64_t(1) << 30;
int64_t max_activation_bytes();
// Throws ValueError unless bytes > 0. Applies to models built (or loaded) afterwards.
void set_max_activation_bytes(int64_t bytes);

// "512 bytes", "12.0 KiB", "3.5 GiB".
std::string format_bytes(int64_t bytes);

// Throws SizeLimitError("<who>: <what> need 12.0 GiB, over the limit of 1.0 GiB; raise it with
// cpucnn.set_max_activation_bytes() ...") when `floats` float32 values exceed the limit. `what`
// is plural: "activations of one sample (output (64, 50000, 50000))".
void check_sample_floats(const std::string& who, const std::string& what, int64_t floats);

}  // namespace cpucnn
