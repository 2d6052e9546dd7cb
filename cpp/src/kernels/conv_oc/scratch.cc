#include "kernels/conv_oc/layout.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

int64_t conv2d_oc_scratch(int64_t cin, int64_t cout, const ConvGeometry& g) {
  return oc_scratch_floats(oc_layout(cin, cout, g), cin, g);
}

}  // namespace cpucnn
