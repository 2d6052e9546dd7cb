// The requantisation of one int32 sum (kernels/int8.hpp's QGemmOut), in plain C++: the
// reference every int8 kernel family shares (qgemm/scalar.cc, qwinograd/scalar.cc).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/int8.hpp"

namespace cpucnn {

namespace {

// max_ps / min_ps semantics (the second operand when either is NaN), so the
// scalar reference and the vector kernels agree on every input.
inline float qvmax(float a, float b) { return a > b ? a : b; }
inline float qvmin(float a, float b) { return a < b ? a : b; }

// Output element `at` of row r = requantise(acc): fma(float(acc + ibias[r]), mult[r], add[r]),
// then clamped and rounded to a code (u8 output) or ReLU'd (float output).
inline void qrequant_store(int32_t acc, int64_t r, int64_t at, const QGemmOut& o) {
  const float v = std::fma(static_cast<float>(acc + o.ibias[r]), o.mult[r], o.add[r]);
  if (o.y8)
    o.y8[at] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(qvmin(qvmax(v, o.lo), o.hi))));
  else
    o.yf[at] = o.relu ? qvmax(v, 0.0f) : v;
}

}  // namespace

}  // namespace cpucnn
