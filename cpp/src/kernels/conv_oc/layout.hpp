// The buffers of the output-channels-in-lanes forward (kernels/conv_oc/):
// shared by its ISA files and the planner (conv2d_oc_scratch). Internal
// linkage, as every function defined in a header the ISA files include.
#pragma once

#include <stdint.h>

#include "kernels/im2col.hpp"
#include "kernels/minmax.hpp"

namespace cpucnn {
namespace {

struct OcLayout {
  int64_t hp, wp;       // the input planes as read (padded or in place)
  bool copy;            // padded copy needed
  int64_t cpad;         // output channels rounded up to 8
  int64_t taps;         // cin * kh * kw
  int64_t tile_rows;    // output rows per tile
};

inline OcLayout oc_layout(int64_t cin, int64_t cout, const ConvGeometry& g) {
  OcLayout l;
  const int64_t rows = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const int64_t cols = (g.wo - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  // Padding before, or after ("same" puts an odd row or column there).
  l.copy = g.ph > 0 || g.pw > 0 || rows > g.h || cols > g.w;
  l.hp = l.copy ? imax(g.h + g.ph, rows) : g.h;
  l.wp = l.copy ? imax(g.w + g.pw, cols) : g.w;
  l.cpad = (cout + 7) / 8 * 8;
  l.taps = cin * g.kh * g.kw;
  // Up to 32K floats (128 KiB, in L2) of tile, at least a row: the whole
  // output of a small map, so its planes are written in long runs.
  l.tile_rows = imax(1, imin(g.ho, 32768 / imax(1, g.wo * l.cpad)));
  return l;
}

// Floats of one thread's scratch: the padded input (when the layer pads),
// the tap offsets (int32, a float's size each) and the tile.
inline int64_t oc_scratch_floats(const OcLayout& l, int64_t cin, const ConvGeometry& g) {
  return (l.copy ? cin * l.hp * l.wp : 0) + (l.taps + 15) / 16 * 16 + l.tile_rows * g.wo * l.cpad + 16;
}

}  // namespace
}  // namespace cpucnn
