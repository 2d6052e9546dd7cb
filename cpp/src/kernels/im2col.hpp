#pragma once

#include <cstdint>

namespace cpucnn {

// The geometry of a 2-D convolution over one image plane.
struct ConvGeometry {
  int64_t h, w, ho, wo;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// im2col unfolds `channels` planes of x (channels x h x w) into rows of col:
// row (c*kh + i)*kw + j holds ho*wo values, rows ldcol apart. col2im is its
// adjoint: it adds the rows of col back into x (x is not cleared). The
// per-ISA versions are in the dispatch table (kernels.hpp).

}  // namespace cpucnn
