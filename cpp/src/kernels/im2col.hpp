#pragma once

#include <cstdint>

namespace cpucnn {

// The geometry of a 2-D convolution over one image plane.
struct ConvGeometry {
  int64_t h, w, ho, wo;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// The plane a convolution reads once its padding is made explicit (the
// lane kernels copy the input into such a zero-padded buffer): real row r at
// r + ph, column c at c + pw, with every row and column any tap reaches
// (odd "same" padding puts its extra row and column after the input).
// Stride 1 and dilation 1 along W.
struct PaddedPlane {
  int64_t hp, wp;
};

// Internal linkage (as every function defined in a header the ISA files
// include: see kernels/minmax.hpp).
namespace {
inline PaddedPlane padded_plane(const ConvGeometry& g) {
  const int64_t rows = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1, cols = g.wo + g.kw - 1;
  return {g.h + g.ph > rows ? g.h + g.ph : rows, g.w + g.pw > cols ? g.w + g.pw : cols};
}
}  // namespace

// im2col unfolds `channels` planes of x (channels x h x w) into rows of col:
// row (c*kh + i)*kw + j holds ho*wo values, rows ldcol apart. col2im is its
// adjoint: it adds the rows of col back into x (x is not cleared). The
// per-ISA versions are in the dispatch table (kernels.hpp).

}  // namespace cpucnn
