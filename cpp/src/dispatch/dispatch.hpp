// The one kernel table. Filled once at start-up from CPUID (+XGETBV, so the
// OS's support for the wider register state is checked) on x86-64, from
// getauxval(AT_HWCAP) on aarch64: best ISA first, scalar always present and
// always last. CPUCNN_ISA=scalar|avx2|avx512 (x86-64) or scalar|neon
// (aarch64) forces a path; forcing one the CPU lacks is an error, never a silent
// fallback. Ops a given ISA does not specialise use the scalar kernel, and
// cpu_info() reports, per op, which one runs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernels/im2col.hpp"
#include "kernels/int8.hpp"
#include "kernels/kernels.hpp"
#include "kernels/qwinograd.hpp"

namespace cpucnn {

struct KernelTable {
  const char* isa = "scalar";
  // GEMM
  int gemm_mr = 0, gemm_nr = 0;
  GemmTileFn gemm_tile = nullptr;
  GemmPackAFn gemm_pack_a = nullptr;
  GemmPackBFn gemm_pack_b = nullptr;
  GemvRowsFn gemv_rows = nullptr;
  // convolution data movement
  Im2colFn im2col = nullptr;
  Col2imFn col2im = nullptr;
  Im2colPackFn im2col_pack = nullptr;  // optional: stride-1 implicit im2col into GEMM panels
  ConvDirectFwdFn conv_direct_fwd = nullptr;  // optional: direct conv for thin layers
  ConvDirectBwdWFn conv_direct_bwd_w = nullptr;  // optional: its weight gradient
  ConvLanesFwdFn conv_lanes_fwd = nullptr;  // optional, both or none: output channels in lanes
  ConvLanesBwdWFn conv_lanes_bwd_w = nullptr;
  ConvBatchFwdFn conv_batch_fwd = nullptr;  // optional, both or none: images in lanes
  ConvBatchBwdWFn conv_batch_bwd_w = nullptr;
  ConvOcFwdFn conv_oc_fwd = nullptr;  // optional: forward with output channels in lanes, any count
  int64_t oc_fwd_max_cout = 0, oc_fwd_max_taps = 0;  // where it runs (conv2d_plan.cc)
  // Where those thin-layer kernels beat im2col + GEMM on this ISA (set from
  // measurements in make_<isa>; ops/conv2d_plan.cc applies them).
  struct ThinConvLimits {
    int64_t direct_fwd_max_cout = 16;  // the row kernel's forward
    int64_t batch_fwd_max_cout = 16;   // the images-in-lanes forward
    bool dx_on_rows = true;            // dx as a forward on the row kernel (else on the batch kernel only)
    int64_t dx_max_layer_cout = int64_t(1) << 62;  // dx direct only for layers with at most this many outputs
    bool dw_few_taps = true;           // direct dw for < 16 taps x input channels too (else only < 8 outputs)
  } thin;
  // optional, all four or none: Winograd F(2x2, 3x3) for 3x3 stride-1 convs
  WinogradInputFn winograd_input = nullptr;
  WinogradOutputFn winograd_output = nullptr;
  WinogradGradOutputFn winograd_grad_output = nullptr;
  WinogradWeightsFn winograd_weights = nullptr;
  WinogradInputAdjointFn winograd_input_adjoint = nullptr;  // optional even then: dx from the dW pass
  // optional, all four or none: Winograd F(4x4, 3x3) (36 products a 4x4 block instead of 64)
  WinogradInputFn winograd4_input = nullptr;
  WinogradMaskedOutputFn winograd4_output = nullptr;
  WinogradGradOutputFn winograd4_grad_output = nullptr;
  WinogradWeightsFn winograd4_weights = nullptr;
  WinogradInputAdjointFn winograd4_input_adjoint = nullptr;  // optional: dx from the dW pass
  int winograd4_lanes = 16;  // tiles an F(4x4) transform register holds ('auto' wants a register's worth per thread)
  // element-wise
  UnaryFn relu_fwd = nullptr;
  UnaryBwdFn relu_bwd = nullptr;
  SumFn sum = nullptr;
  // pooling
  MaxPoolFwdFn maxpool2d_fwd = nullptr;
  MaxPoolBwdFn maxpool2d_bwd = nullptr;
  // optimizers
  SgdFn sgd_update = nullptr;
  AdamFn adam_update = nullptr;
  RmspropFn rmsprop_update = nullptr;
  // int8 inference (kernels/int8.hpp; filled by fill_int8, dispatch/int8.cc)
  QGemmFn qgemm = nullptr;
  int qgemm_nr = 0;
  QGemvFn qgemv = nullptr;
  QuantizeFn quantize_u7 = nullptr;
  DequantizeFn dequantize_u8 = nullptr;
  QMaxPoolFn qmaxpool2d = nullptr;
  QWinoInputFn qwino_input = nullptr;  // int8 Winograd F(2x2, 3x3) (kernels/qwinograd.hpp)
  QWinoGemmFn qwino_gemm = nullptr;
  // which ISA implements each op: {"gemm", "avx512"}, ...
  std::vector<std::pair<std::string, std::string>> impl;
};

// The table in use. Cheap to call (one atomic load).
const KernelTable& kernels();

// ISAs this CPU and OS can run, best first ("avx512", "avx2", "scalar"; "neon", "scalar").
std::vector<std::string> available_isas();
// ISAs compiled into this build, best first.
std::vector<std::string> compiled_isas();
// Switch the table (tests, CPUCNN_ISA). Throws ValueError for an unknown ISA
// or one this CPU cannot run. Not to be called while kernels are running.
void set_isa(const std::string& name);

// Adds the int8 kernels to a table of ISA t.isa (VNNI variants where the CPU has them).
void fill_int8(KernelTable& t);
// The int8 GEMM variants this CPU runs ("avx512vnni", "avxvnni", "avx2"; "neondot", "neon"; "scalar"), and one of
// them by name with its panel width (tests; ValueError for one the CPU lacks).
std::vector<std::string> int8_isas();
QGemmFn qgemm_variant(const std::string& name, int* nr);

}  // namespace cpucnn
