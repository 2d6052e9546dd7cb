#include <vector>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/factory.hpp"
#include "layers/pool_common.hpp"

namespace cpucnn {

namespace {

class MaxPool2D : public Pool2DBase {
 public:
  explicit MaxPool2D(const json::Value& cfg) : Pool2DBase(cfg, "MaxPool2D") {}

  Dims build(const Dims& in) override {
    Dims out = Pool2DBase::build(in);
    // Training keeps each output's argmax as an int32 index into its input plane.
    const int64_t plane = checked_numel({in[1], in[2]}, "MaxPool2D input plane");
    if (plane >= (int64_t(1) << 31))
      fail("input planes of " + std::to_string(in[1]) + "x" + std::to_string(in[2]) + " = " + std::to_string(plane) +
           " elements are too large: its argmax indices are int32 (planes below 2^31 elements), got input " +
           shape_str(in));
    return out;
  }

  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    const int64_t planes = n * in_shape[0];
    const int64_t in_plane = geo_.h * geo_.w, out_plane = geo_.ho * geo_.wo;
    int32_t* arg = nullptr;
    if (ctx.training) {
      argmax_.resize(static_cast<size_t>(planes * out_plane));
      arg = argmax_.data();
    }
    const auto fwd = kernels().maxpool2d_fwd;
    parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane)), [&](int64_t b, int64_t e) {
      fwd(x + b * in_plane, y + b * out_plane, arg ? arg + b * out_plane : nullptr, e - b, geo_);
    });
  }

  void backward(const float*, const float*, const float* dy, float* dx, int64_t n) override {
    if (!dx) return;
    const int64_t planes = n * in_shape[0];
    const int64_t in_plane = geo_.h * geo_.w, out_plane = geo_.ho * geo_.wo;
    const auto bwd = kernels().maxpool2d_bwd;
    const int32_t* arg = argmax_.data();
    parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane)), [&](int64_t b, int64_t e) {
      bwd(dy + b * out_plane, arg + b * out_plane, dx + b * in_plane, e - b, geo_);
    });
  }

 private:
  std::vector<int32_t> argmax_;  // from the last training forward
};

}  // namespace

std::unique_ptr<Layer> make_maxpool2d(const json::Value& cfg) { return std::make_unique<MaxPool2D>(cfg); }

}  // namespace cpucnn
