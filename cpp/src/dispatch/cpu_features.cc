#include "dispatch/cpu_features.hpp"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPUCNN_X86 1
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
// The HWCAP bits (asm/hwcap.h), spelled out so an old libc's headers are enough.
#define CPUCNN_HWCAP_FPHP (1ul << 9)
#define CPUCNN_HWCAP_ASIMDHP (1ul << 10)
#define CPUCNN_HWCAP_ASIMD (1ul << 1)
#define CPUCNN_HWCAP_ASIMDDP (1ul << 20)
#endif

namespace cpucnn {

namespace {

#ifdef CPUCNN_X86
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef CPUCNN_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = c & (1u << 20);
  const bool osxsave = c & (1u << 27);
  const bool avx_hw = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;             // XMM + YMM state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;           // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;     // XTILECFG + XTILEDATA
  f.avx = avx_hw && os_ymm;
  f.fma = f.fma && os_ymm;
  f.f16c = f.f16c && os_ymm;
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = f.avx && (b & (1u << 5));
    f.avx512f = os_zmm && (b & (1u << 16));
    f.avx512dq = os_zmm && (b & (1u << 17));
    f.avx512bw = os_zmm && (b & (1u << 30));
    f.avx512vl = os_zmm && (b & (1u << 31));
    f.avx512_vnni = os_zmm && (c & (1u << 11));
    f.amx = os_amx && (d & (1u << 24));
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    f.avx512_bf16 = os_zmm && (a1 & (1u << 5));
    f.avx_vnni = f.avx2 && (a1 & (1u << 4));
  }
  unsigned brand[12] = {};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
    char s[49] = {};
    std::memcpy(s, brand, 48);
    f.brand = s;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    size_t start = f.brand.find_first_not_of(' ');
    f.brand = start == std::string::npos ? "" : f.brand.substr(start);
  }
#elif defined(__aarch64__)
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  f.asimd = hw & CPUCNN_HWCAP_ASIMD;
  f.asimddp = hw & CPUCNN_HWCAP_ASIMDDP;
  f.fphp = hw & CPUCNN_HWCAP_FPHP;
  f.asimdhp = hw & CPUCNN_HWCAP_ASIMDHP;
  // No brand string on ARM (the MIDR names a core by number; under qemu-user /proc/cpuinfo is the
  // host's): the architecture and its features say what runs.
  f.brand = "aarch64";
#else
  f.asimd = true;  // every ARMv8-A CPU has it
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace cpucnn
