// im2col / col2im compiled for aarch64 (the bodies are shared: im2col.inc; plain copies and adds
// the compiler vectorises with NEON, as for avx2 with its flags).
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

#include "kernels/im2col/im2col.inc"

void im2col_neon(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol) {
  im2col_impl(x, g, channels, col, ldcol);
}

void col2im_neon(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x) {
  col2im_impl(col, ldcol, g, channels, x);
}

}  // namespace cpucnn
