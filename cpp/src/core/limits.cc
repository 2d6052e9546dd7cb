#include "core/limits.hpp"

#include <atomic>
#include <cstdio>
#include <limits>

#include "core/errors.hpp"

namespace cpucnn {

namespace {

std::atomic<int64_t> g_max_activation_bytes{kDefaultMaxActivationBytes};

}  // namespace

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
    throw ValueError(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) +
                     " overflows a 64-bit size");
  }
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) {
    throw ValueError(std::string(what) + ": " + std::to_string(a) + " + " + std::to_string(b) +
                     " overflows a 64-bit size");
  }
  return r;
}

int64_t saturating_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}

int64_t saturating_add(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}

int64_t max_activation_bytes() { return g_max_activation_bytes.load(std::memory_order_relaxed); }

void set_max_activation_bytes(int64_t bytes) {
  if (bytes <= 0) {
    throw ValueError("the activation limit must be a positive number of bytes, got " + std::to_string(bytes));
  }
  g_max_activation_bytes.store(bytes, std::memory_order_relaxed);
}

std::string format_bytes(int64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  return buf;
}

void check_sample_floats(const std::string& who, const std::string& what, int64_t floats) {
  const int64_t limit = max_activation_bytes();
  // floats <= limit / 4 without forming floats * 4, which could overflow.
  if (floats <= limit / static_cast<int64_t>(sizeof(float))) return;
  const int64_t bytes = saturating_mul(floats, static_cast<int64_t>(sizeof(float)));
  throw SizeLimitError(who + ": " + what + " need " + format_bytes(bytes) + ", over the limit of " +
                   format_bytes(limit) +
                   "; raise it with cpucnn.set_max_activation_bytes() (C: cpucnn_set_max_activation_bytes())");
}

}  // namespace cpucnn
