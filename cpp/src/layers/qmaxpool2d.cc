// QMaxPool2D: max pooling on 7-bit codes (max commutes with the monotonic
// quantisation, so the scale and zero point pass through). Inference only.
#include <algorithm>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/pool_common.hpp"
#include "layers/qlayer.hpp"

namespace cpucnn {

namespace {

class QMaxPool2D : public Pool2DBase {
 public:
  explicit QMaxPool2D(const json::Value& cfg) : Pool2DBase(cfg, "QMaxPool2D") {}
  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const int64_t planes = n * in_shape[0];
    const int64_t in_plane = geo_.h * geo_.w, out_plane = geo_.ho * geo_.wo;
    const auto fn = kernels().qmaxpool2d;
    const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);
    uint8_t* yq = reinterpret_cast<uint8_t*>(y);
    parallel_for(planes, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, in_plane)), [&](int64_t b, int64_t e) {
      fn(xq + b * in_plane, yq + b * out_plane, e - b, geo_);
    });
  }
  void backward(const float*, const float*, const float*, float*, int64_t) override { q_inference_only(*this); }
};

}  // namespace

std::unique_ptr<Layer> make_qmaxpool2d(const json::Value& cfg) { return std::make_unique<QMaxPool2D>(cfg); }

}  // namespace cpucnn
