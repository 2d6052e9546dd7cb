// Winograd F(2x2, 3x3) convolution: the layout shared by its transform
// kernels (kernels/winograd/) and its driver (ops/winograd.cc). F(4x4, 3x3)
// (kernels/winograd4/) uses the same layout with 4x4 tiles from 6x6 patches:
// units of 4 output rows, xi = 6 p + q over 36 planes.
//
// Each 2x2 block of outputs is one tile, computed from a 4x4 input patch:
//   Y = A^T [ (G g G^T) . (B^T d B) ] A          (. is element-wise)
// with 16 products per tile instead of 36 multiply-adds. Summing over input
// channels turns the 16 element-wise products into 16 independent GEMMs.
//
// A "unit" is one row of tiles of one image: unit u is image u / th, output
// rows 2 (u % th) and 2 (u % th) + 1. A block of units [u0, u1) numbers its
// tiles (u - u0) * tw + j, j < tw: the columns of the transformed arrays.
// Transformed arrays are [xi][channel][column], xi = 4 p + q indexing the
// 4x4 transform domain, `ld` floats between channel rows and
// winograd_plane(channels, ld) between xi planes.
#pragma once

#include <cstdint>

namespace cpucnn {

struct WinogradGeometry {
  int64_t h, w;    // input plane
  int64_t ho, wo;  // output plane
  int64_t ph, pw;  // output (o, o') reads input (o - ph + i, o' - pw + j), zero outside
  int64_t th, tw;  // tiles per column and per row: ceil(ho / 2), ceil(wo / 2)
};

// Floats between the 16 xi planes: one cache line more than the planes
// need, so the 16 streams a transform reads or writes do not all map to the
// same L1 sets (plane sizes are often multiples of 4 KiB). Internal linkage
// (see kernels/minmax.hpp).
namespace {
inline int64_t winograd_plane(int64_t channels, int64_t ld) { return channels * ld + 16; }
}  // namespace

}  // namespace cpucnn
