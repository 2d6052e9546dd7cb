#pragma once

#include <cstdint>

namespace cpucnn {

// The geometry of a 2-D convolution over one image plane.
struct ConvGeometry {
  int64_t h, w, ho, wo;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// Unfolds `channels` planes of x (channels x h x w) into rows of col:
// row (c*kh + i)*kw + j holds ho*wo values, rows ldcol apart.
void im2col(const float* x, const ConvGeometry& g, int64_t channels, float* col, int64_t ldcol);
// The adjoint: adds the rows of col back into x (x is not cleared).
void col2im(const float* col, int64_t ldcol, const ConvGeometry& g, int64_t channels, float* x);

}  // namespace cpucnn
