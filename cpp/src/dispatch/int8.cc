// The int8 entries of the kernel table. The float ISA picks the family; the
// VNNI variants replace the AVX2 GEMM where CPUID (and XGETBV) report them.
// Every variant computes the same integers (kernels/int8.hpp), so which one
// runs changes speed, never results.
#include <string>

#include "core/errors.hpp"
#include "dispatch/cpu_features.hpp"
#include "dispatch/dispatch.hpp"

namespace cpucnn {

namespace {

void set_impl(KernelTable& t, const char* op, const std::string& isa) {
  for (auto& kv : t.impl)
    if (kv.first == op) {
      kv.second = isa;
      return;
    }
  t.impl.push_back({op, isa});
}

}  // namespace

void fill_int8(KernelTable& t) {
  const CpuFeatures& f = cpu_features();
  const std::string isa = t.isa;
  t.qgemm = qgemm_scalar;
  t.qgemm_nr = kQgemmNrScalar;
  t.qgemv = qgemv_scalar;
  t.quantize_u7 = quantize_u7_scalar;
  t.dequantize_u8 = dequantize_u8_scalar;
  t.qmaxpool2d = qmaxpool2d_scalar;
  t.qwino_input = qwino_input_scalar;
  t.qwino_gemm = qwino_gemm_scalar;
  std::string q = "scalar";
#if defined(__x86_64__) || defined(__i386__)  // the x86 kernels exist only in x86 builds
  if (isa == "avx2" || isa == "avx512") {
    t.qgemm = qgemm_avx2;
    t.qgemm_nr = kQgemmNrAvx2;
    t.qgemv = qgemv_avx2;
    t.quantize_u7 = quantize_u7_avx2;
    t.dequantize_u8 = dequantize_u8_avx2;
    t.qmaxpool2d = qmaxpool2d_avx2;
    t.qwino_input = qwino_input_avx2;
    t.qwino_gemm = qwino_gemm_avx2;
    q = "avx2";
    if (f.avx_vnni) {
      t.qgemm = qgemm_avxvnni;
      q = "avxvnni";
    }
  }
  if (isa == "avx512" && f.avx512_vnni) {
    t.qgemm = qgemm_avx512vnni;
    t.qgemm_nr = kQgemmNrAvx512;
    q = "avx512vnni";
  }
#elif defined(__aarch64__)
  if (isa == "neon") {  // SDOT where HWCAP has asimddp, else SMULL/SMLAL; max pooling stays scalar
    t.qgemm = f.asimddp ? qgemm_neondot : qgemm_neon;
    t.qgemm_nr = kQgemmNrNeon;
    if (f.asimddp) t.qgemv = qgemv_neondot;
    t.quantize_u7 = quantize_u7_neon;
    t.dequantize_u8 = dequantize_u8_neon;
    q = f.asimddp ? "neondot" : "neon";
  }
#else
  (void)f;
#endif
  const bool vec = q != "scalar";
  const bool arm = q == "neon" || q == "neondot";
  set_impl(t, "qgemm", q);
  set_impl(t, "qgemv", arm ? (q == "neondot" ? "neondot" : "scalar") : vec ? "avx2" : "scalar");
  set_impl(t, "quantize", arm ? "neon" : vec ? "avx2" : "scalar");
  set_impl(t, "qwinograd", vec && !arm ? "avx2" : "scalar");
  set_impl(t, "qmaxpool2d", vec && !arm ? "avx2 (2x2 stride 2; scalar otherwise)" : "scalar");
}

std::vector<std::string> int8_isas() {
  const CpuFeatures& f = cpu_features();
  std::vector<std::string> out;
  const auto isas = available_isas();
  const bool avx512 = isas.front() == "avx512";
  const bool avx2 = avx512 || isas.front() == "avx2";
  if (avx512 && f.avx512_vnni) out.push_back("avx512vnni");
  if (avx2 && f.avx_vnni) out.push_back("avxvnni");
  if (avx2) out.push_back("avx2");
#if defined(__aarch64__)
  if (isas.front() == "neon") {
    if (f.asimddp) out.push_back("neondot");
    out.push_back("neon");
  }
#endif
  out.push_back("scalar");
  return out;
}

QGemmFn qgemm_variant(const std::string& name, int* nr) {
  bool ok = false;
  for (const auto& s : int8_isas()) ok |= s == name;
  if (name != "scalar" && name != "avx2" && name != "avxvnni" && name != "avx512vnni" && name != "neondot" &&
      name != "neon")
    throw ValueError("unknown int8 GEMM '" + name + "': expected avx512vnni, avxvnni, avx2, neondot, neon or scalar");
  if (!ok) throw ValueError("int8 GEMM '" + name + "' is not supported by this CPU");
#if defined(__x86_64__) || defined(__i386__)
  if (name == "avx512vnni") {
    *nr = kQgemmNrAvx512;
    return qgemm_avx512vnni;
  }
  if (name == "avxvnni") {
    *nr = kQgemmNrAvx2;
    return qgemm_avxvnni;
  }
  if (name == "avx2") {
    *nr = kQgemmNrAvx2;
    return qgemm_avx2;
  }
#endif
#if defined(__aarch64__)
  if (name == "neondot" || name == "neon") {
    *nr = kQgemmNrNeon;
    return name == "neondot" ? qgemm_neondot : qgemm_neon;
  }
#endif
  *nr = kQgemmNrScalar;
  return qgemm_scalar;
}

}  // namespace cpucnn
