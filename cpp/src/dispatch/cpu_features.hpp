// CPU feature detection (CPUID + XGETBV), done once.
#pragma once

#include <string>

namespace cpucnn {

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, amx = false;
  bool avx_vnni = false;  // AVX-VNNI: 256-bit vpdpbusd (VEX)
  std::string brand;
};

const CpuFeatures& cpu_features();

}  // namespace cpucnn
