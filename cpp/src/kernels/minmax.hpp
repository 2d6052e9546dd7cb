// Integer min and max for the kernel files. Not std::min / std::max: those
// are templates, and a file compiled with -mavx2 or -mavx512f that emits a
// weak copy of one (std::min<long>, say) may provide the copy the linker
// keeps for the whole program, so plain code on an older CPU would run AVX
// instructions. Everything here has internal linkage (anonymous namespace):
// each file gets its own copy, built with its own flags. The ctest
// isa_symbols (cmake/check_isa_symbols.cmake) checks the ISA objects.
#pragma once

#include <stdint.h>

namespace cpucnn {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

}  // namespace
}  // namespace cpucnn
