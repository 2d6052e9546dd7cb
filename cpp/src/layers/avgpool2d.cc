#include <cstring>

#include "core/limits.hpp"
#include "core/parallel.hpp"
#include "layers/factory.hpp"
#include "layers/pool_common.hpp"

namespace cpucnn {

namespace {

// Average pooling; padded positions count as zeros in the divisor
// (PyTorch's default count_include_pad=True).
class AvgPool2D : public Pool2DBase {
 public:
  explicit AvgPool2D(const json::Value& cfg) : Pool2DBase(cfg, "AvgPool2D") {}

  void forward(const float* x, float* y, int64_t n, const ForwardContext&) override {
    const Pool2dParams p = geo_;
    const float scale = 1.0f / static_cast<float>(p.kh * p.kw);
    parallel_for(n * in_shape[0], grain(), [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        const float* xc = x + c * p.h * p.w;
        float* yc = y + c * p.ho * p.wo;
        for (int64_t oh = 0; oh < p.ho; ++oh)
          for (int64_t ow = 0; ow < p.wo; ++ow) {
            float acc = 0.0f;
            for (int64_t i = 0; i < p.kh; ++i) {
              const int64_t ih = oh * p.sh - p.ph + i;
              if (ih < 0 || ih >= p.h) continue;
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t iw = ow * p.sw - p.pw + j;
                if (iw >= 0 && iw < p.w) acc += xc[ih * p.w + iw];
              }
            }
            yc[oh * p.wo + ow] = acc * scale;
          }
      }
    });
  }

  void backward(const float*, const float*, const float* dy, float* dx, int64_t n) override {
    if (!dx) return;
    const Pool2dParams p = geo_;
    const float scale = 1.0f / static_cast<float>(p.kh * p.kw);
    parallel_for(n * in_shape[0], grain(), [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        float* dxc = dx + c * p.h * p.w;
        const float* dyc = dy + c * p.ho * p.wo;
        std::memset(dxc, 0, p.h * p.w * sizeof(float));
        for (int64_t oh = 0; oh < p.ho; ++oh)
          for (int64_t ow = 0; ow < p.wo; ++ow) {
            const float g = dyc[oh * p.wo + ow] * scale;
            for (int64_t i = 0; i < p.kh; ++i) {
              const int64_t ih = oh * p.sh - p.ph + i;
              if (ih < 0 || ih >= p.h) continue;
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t iw = ow * p.sw - p.pw + j;
                if (iw >= 0 && iw < p.w) dxc[ih * p.w + iw] += g;
              }
            }
          }
      }
    });
  }

  int64_t macs() const override { return saturating_mul(checked_numel(out_shape), kh_ * kw_); }

 private:
  int64_t grain() const { return std::max<int64_t>(1, 16384 / (geo_.h * geo_.w)); }
};

}  // namespace

std::unique_ptr<Layer> make_avgpool2d(const json::Value& cfg) { return std::make_unique<AvgPool2D>(cfg); }

}  // namespace cpucnn
