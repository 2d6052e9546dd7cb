// Settings and shape inference shared by MaxPool2D and AvgPool2D.
#pragma once

#include "kernels/params.hpp"
#include "layers/layer.hpp"

namespace cpucnn {

class Pool2DBase : public Layer {
 public:
  Pool2DBase(const json::Value& cfg, const char* type_name);
  const char* type() const override { return type_; }
  std::string describe() const override;
  Dims build(const Dims& in) override;
  json::Value config() const override;

 protected:
  const char* type_;
  int64_t kh_ = 0, kw_ = 0, sh_ = 0, sw_ = 0, ph_ = 0, pw_ = 0;
  Pool2dParams geo_{};
};

}  // namespace cpucnn
