// The scratch sizes of the kernels that take scratch (floats per thread),
// asked by the ops layer, which allocates. Compiled without ISA flags: the
// ops layer may call these on any CPU, and the ISA files define nothing but
// their kernels (ctest isa_symbols). Each size follows the layout the
// kernel documents where it carves up its scratch.
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/winograd.hpp"

namespace cpucnn {

// conv_batch/avx512.cc: the input group [ci][row][column][16 images]
// (padded), the output (or dy) group, and the weight gradient's lane sums.
int64_t conv2d_batch_scratch(int64_t cin, int64_t cout, const ConvGeometry& g) {
  const PaddedPlane pd = padded_plane(g);
  return (cin * pd.hp * pd.wp + cout * g.ho * g.wo + cout * cin * g.kh * g.kw) * 16;
}

// conv_lanes/avx512.cc: the padded image, then the pixel-major output (or
// dy) rows, 16 floats of slack.
int64_t conv2d_lanes_scratch(int64_t cin, int64_t cout, const ConvGeometry& g) {
  const PaddedPlane pd = padded_plane(g);
  return cin * pd.hp * pd.wp + g.ho * g.wo * cout + 16;
}

// winograd/winograd.inc (the avx2 input transform): one unit's 4 input rows
// per channel, zero-padded, rows of 2 tw + 2 rounded up to 16 floats. The
// other input kernels read the planes directly and ignore it.
int64_t winograd_input_scratch(int64_t channels, const WinogradGeometry& g) {
  const int64_t rw = (2 * g.tw + 2 + 15) / 16 * 16;
  return channels * 4 * rw;
}

}  // namespace cpucnn
