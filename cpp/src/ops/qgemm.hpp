// The int8 operators (quantized Conv2D and Dense): weights packed once per
// parameter version, scratch planned before the one parallel region, then
// only kernels (kernels/int8.hpp) run.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/int8.hpp"

namespace cpucnn {

struct KernelTable;

// The quantisation of one layer's input and output (per tensor) and its epilogue.
struct QActParams {
  float in_scale = 1.0f, in_zp = 0.0f;   // input codes: x = (q - in_zp) * in_scale
  float out_scale = 1.0f, out_zp = 0.0f; // output codes (out_u8 only)
  bool relu = false;
  bool out_u8 = true;  // else float output (dequantisation fused)
};

struct QPackedWeights {
  int64_t m = 0, k = 0, k4 = 0;
  std::vector<int8_t> a;        // kernels/int8.hpp layout
  std::vector<int32_t> ibias;   // -in_zp * sum_k w[r][k]
  std::vector<float> mult, add; // the requantisation
  float lo = 0.0f, hi = 127.0f;
  bool relu = false, out_u8 = true;
  bool tap_major = false;  // conv weights packed k = tap * cin + c (the channel-interleaved path)
  std::vector<int16_t> wino_u;  // 3x3 stride-1 convs: the Winograd-transformed weights (ops/qwinograd.hpp)
};

// Checks (ValueError naming `who`: weights integers in [-127, 127], scales finite and positive,
// bias finite) and packs. w: m x k; bias may be null.
std::shared_ptr<const QPackedWeights> qpack_layer(const std::string& who, const float* w, const float* w_scale,
                                                  const float* bias, int64_t m, int64_t k, const QActParams& act);

// A QConv2D's weights (m x cin*kh*kw, PyTorch order): qpack_layer's checks and packing, packed
// tap-major instead where qconv2d_forward takes the channel-interleaved path for g on the
// current kernel table.
std::shared_ptr<const QPackedWeights> qpack_conv_layer(const std::string& who, const float* w, const float* w_scale,
                                                       const float* bias, int64_t m, const QConvGeo& g,
                                                       const QActParams& act);

// The packed weights of a layer, remade when the parameters' version or the
// kernel table changes; safe to call from several inference threads.
class QWeightCache {
 public:
  template <class Make>
  std::shared_ptr<const QPackedWeights> get(uint64_t version, const KernelTable* table, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!packed_ || version != version_ || table != table_) {
      packed_ = make();
      version_ = version;
      table_ = table;
    }
    return packed_;
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<const QPackedWeights> packed_;
  uint64_t version_ = 0;
  const KernelTable* table_ = nullptr;
};

// y (n images of cout x ho x wo, u8 codes or floats per pw) = conv(x: n u8 images).
void qconv2d_forward(const QPackedWeights& pw, const QConvGeo& g, uint8_t in_zp, const uint8_t* x, int64_t n,
                     uint8_t* y8, float* yf);
// y (n x m) = x (n x k u8) W^T, requantised per pw.
void qdense_forward(const QPackedWeights& pw, const uint8_t* x, int64_t n, uint8_t* y8, float* yf);

}  // namespace cpucnn
