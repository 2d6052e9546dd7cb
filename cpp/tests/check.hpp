// The checks of the plain C++ test programs (test_io, test_capi): each
// failure is printed, and report() prints "N passed, N failed" and gives the
// exit status.
#pragma once

#include <cstdio>
#include <string>

namespace cpucnn_test {

inline int g_passed = 0;
inline int g_failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

inline int report() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace cpucnn_test
