// Plain parameter structs shared by the kernels of one op across ISAs.
// Kernels are leaves: they take raw pointers and one of these, allocate
// nothing, throw nothing and start no threads.
#pragma once

#include <cstdint>

namespace cpucnn {

// A 2-D pooling window over one (H, W) plane.
struct Pool2dParams {
  int64_t h, w;        // input plane
  int64_t ho, wo;      // output plane
  int64_t kh, kw;      // window
  int64_t sh, sw;      // stride
  int64_t ph, pw;      // zero/-inf padding at the top/left
};

struct SgdParams {
  float lr, momentum, weight_decay;
  bool nesterov;
  bool first_step;     // momentum buffer starts as the gradient (PyTorch)
};

struct AdamParams {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;  // 1 - beta^t
};

struct RmspropParams {
  float lr, alpha, eps, weight_decay, momentum;
  bool centered;
};

}  // namespace cpucnn
