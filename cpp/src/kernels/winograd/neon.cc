// Winograd F(2x2, 3x3) transforms compiled for aarch64 (bodies: winograd.inc, strips of tiles
// the compiler vectorises with NEON, as avx2.cc with its flags).
#include "kernels/kernels.hpp"
#include "kernels/winograd.hpp"

namespace cpucnn {

#include "kernels/winograd/weights.inc"
#include "kernels/winograd/winograd.inc"

void winograd_input_neon(const float* x, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                          int64_t u0, int64_t u1, float* v, int64_t ldv, float* scratch) {
  winograd_input_impl(x, channels, image_stride, g, u0, u1, v, ldv, scratch);
}

void winograd_output_neon(const float* m, int64_t ldm, int64_t channels, const float* bias, bool relu,
                           const WinogradGeometry& g, int64_t u0, int64_t u1, float* y, int64_t image_stride) {
  winograd_output_impl(m, ldm, channels, bias, relu, g, u0, u1, y, image_stride);
}

void winograd_grad_output_neon(const float* dy, int64_t channels, int64_t image_stride, const WinogradGeometry& g,
                                int64_t u0, int64_t u1, float* dm, int64_t ldm) {
  winograd_grad_output_impl(dy, channels, image_stride, g, u0, u1, dm, ldm);
}

void winograd_weights_neon(const float* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool flip,
                           float* u) {
  winograd_weights_impl(src, rows, cols, rs, cs, flip, u);
}

}  // namespace cpucnn
