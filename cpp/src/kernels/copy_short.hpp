// Copies of short runs (rows of small images, a few output columns): a libc
// memcpy call costs more than the 10-64 bytes it would move, so these are
// fixed-size moves, the last overlapping the one before. Internal linkage:
// included by ISA files, so no weak copy built with AVX flags can be the one
// the program calls (cmake/check_isa_symbols.cmake).
#pragma once

#include <cstdint>
#include <cstring>

namespace cpucnn {
namespace {

// dst[0, n) = src[0, n) (bytes; the ranges do not overlap).
inline void copy_short(void* dst_, const void* src_, int64_t n) {
  auto* dst = static_cast<unsigned char*>(dst_);
  const auto* src = static_cast<const unsigned char*>(src_);
  if (n >= 16) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) std::memcpy(dst + j, src + j, 16);
    if (j < n) std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
  }
}

}  // namespace
}  // namespace cpucnn
