// A convolution's shape: images, channels, groups and the geometry of one
// image (kernels/im2col.hpp). What every convolution op plans from.
#pragma once

#include <cstdint>

#include "kernels/im2col.hpp"

namespace cpucnn {

struct Conv2dShape {
  int64_t n = 0, cin = 0, cout = 0, groups = 1;
  ConvGeometry geo{};
};

}  // namespace cpucnn
