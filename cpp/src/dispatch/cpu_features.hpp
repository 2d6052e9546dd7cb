// CPU feature detection (x86: CPUID + XGETBV; aarch64: getauxval(AT_HWCAP)), done once.
#pragma once

#include <string>

namespace cpucnn {

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, amx = false;
  bool avx_vnni = false;  // AVX-VNNI: 256-bit vpdpbusd (VEX)
  std::string brand;
  // aarch64 (HWCAP): asimd = NEON (baseline on ARMv8-A), asimddp = the dot-product instructions
  // (SDOT/UDOT), fphp/asimdhp = half-precision scalar / vector arithmetic.
  bool asimd = false, asimddp = false, fphp = false, asimdhp = false;
};

const CpuFeatures& cpu_features();

}  // namespace cpucnn
