#include "dispatch/dispatch.hpp"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "core/errors.hpp"
#include "dispatch/cpu_features.hpp"

namespace cpucnn {

namespace {

KernelTable make_scalar() {
  KernelTable t;
  t.isa = "scalar";
  t.gemm_mr = kGemmMrScalar;
  t.gemm_nr = kGemmNrScalar;
  t.gemm_tile = gemm_tile_scalar;
  t.gemm_pack_a = gemm_pack_a_scalar;
  t.gemm_pack_b = gemm_pack_b_scalar;
  t.gemv_rows = gemv_rows_scalar;
  t.im2col = im2col_scalar;
  t.col2im = col2im_scalar;
  t.relu_fwd = relu_fwd_scalar;
  t.relu_bwd = relu_bwd_scalar;
  t.sum = sum_scalar;
  t.maxpool2d_fwd = maxpool2d_fwd_scalar;
  t.maxpool2d_bwd = maxpool2d_bwd_scalar;
  t.sgd_update = sgd_update_scalar;
  t.adam_update = adam_update_scalar;
  t.rmsprop_update = rmsprop_update_scalar;  // every ISA (no SIMD version yet)
  t.impl = {{"gemm", "scalar"}, {"im2col", "scalar"}, {"relu", "scalar"}, {"maxpool2d", "scalar"}, {"sgd", "scalar"}, {"adam", "scalar"}, {"rmsprop", "scalar"}};
  fill_int8(t);
  return t;
}

[[maybe_unused]] void mark(KernelTable& t, const char* op, const char* isa) {
  for (auto& kv : t.impl)
    if (kv.first == op) kv.second = isa;
}

#if defined(__x86_64__)
KernelTable make_avx2() {
  KernelTable t = make_scalar();
  t.isa = "avx2";
  t.gemm_mr = kGemmMrAvx2;
  t.gemm_nr = kGemmNrAvx2;
  t.gemm_tile = gemm_tile_avx2;
  t.gemm_pack_a = gemm_pack_a_avx2;
  t.gemm_pack_b = gemm_pack_b_avx2;
  t.gemv_rows = gemv_rows_avx2;
  t.im2col = im2col_avx2;
  t.col2im = col2im_avx2;
  // im2col_pack_avx2 (implicit im2col) is built and correct but not wired:
  // measured on Zen 3 it is slower on the layers that reach im2col + GEMM by
  // default here (thin ones: lenet5's convs, 1- and 3-channel inputs;
  // -10..-30%) and faster only on wide ones that Winograd takes (+5..25%).
  t.conv_direct_fwd = conv2d_direct_fwd_avx2;
  t.conv_direct_bwd_w = conv2d_direct_bwd_w_avx2;
  t.conv_lanes_fwd = conv2d_lanes_fwd_avx2;
  t.conv_lanes_bwd_w = conv2d_lanes_bwd_w_avx2;
  t.conv_batch_fwd = conv2d_batch_fwd_avx2;
  t.conv_batch_bwd_w = conv2d_batch_bwd_w_avx2;
  // Where they beat im2col + GEMM on AVX2 (16 ymm registers; measured on
  // Zen 3 against the GEMM path, 1 thread, lenet5 / convnet_s / vgg_s first
  // layers and thin shapes at batch 8-256): the row kernel forward up to 8
  // output channels (1.2-1.45x; 0.7-0.9x at 12-16), the batch kernel up to
  // 12 (1.5-2.7x); dx only on the batch kernel and only for layers of <= 8
  // output channels (lenet5 conv1 1.2-1.4x; the row kernel's dx 0.4-0.6x,
  // lenet5 conv2's and 3-channel inputs' 0.6-0.87x); the direct dw only for
  // < 8 output channels (1.4-1.6x; few taps alone 0.75-1.0x).
  // Thin layers' forward with the output channels in the lanes (8 a
  // register, any count; kernels/conv_oc/), ahead of the kernels below for
  // <= 32 outputs and <= 256 taps x inputs. Measured on a loaded Zen 3 (1
  // thread, interleaved, per conv + ReLU): lenet5 conv2 1.7-2.4x (batch
  // 256) and 1.7x (batch 1) over the lanes kernel, lenet5 conv1 1.1-1.3x
  // over the batch kernel; the 1- and 3-channel first layers of convnet_s
  // and vgg_s 0.9-1.05x of im2col + GEMM at batch 256 (both bound by
  // writing their 22 and 34 MB of output) and 1.1x at batch 1.
  t.conv_oc_fwd = conv2d_oc_fwd_avx2;
  t.oc_fwd_max_cout = 32;
  t.oc_fwd_max_taps = 256;
  t.thin.direct_fwd_max_cout = 8;
  t.thin.batch_fwd_max_cout = 12;
  t.thin.dx_on_rows = false;
  t.thin.dx_max_layer_cout = 8;
  t.thin.dw_few_taps = false;
  t.winograd_input = winograd_input_avx2;
  t.winograd_output = winograd_output_avx2;
  t.winograd_grad_output = winograd_grad_output_avx2;
  t.winograd_weights = winograd_weights_avx2;
  t.winograd4_input = winograd4_input_avx2;
  t.winograd4_output = winograd4_output_avx2;
  t.winograd4_grad_output = winograd4_grad_output_avx2;
  t.winograd4_weights = winograd4_weights_avx2;
  t.winograd4_input_adjoint = winograd4_input_adjoint_avx2;
  t.winograd4_lanes = 8;
  t.relu_fwd = relu_fwd_avx2;
  t.relu_bwd = relu_bwd_avx2;
  t.sum = sum_avx2;
  t.maxpool2d_fwd = maxpool2d_fwd_avx2;
  t.maxpool2d_bwd = maxpool2d_bwd_avx2;
  t.sgd_update = sgd_update_avx2;
  t.adam_update = adam_update_avx2;
  mark(t, "gemm", "avx2");
  mark(t, "im2col", "avx2");
  t.impl.push_back({"conv2d_direct", "avx2 (forward: <= 8 output channels; dw: < 8 output channels)"});
  t.impl.push_back({"conv2d_lanes",
                    "avx2 (16 or 32 output channels, <= 256 taps x input channels, an image per thread; "
                    "forward from 64 taps x input channels, dw for 3- or 5-wide kernels)"});
  t.impl.push_back({"conv2d_batch",
                    "avx2 (16 images in two registers, 16 images or more per thread: forward with <= 12 output "
                    "channels; dx as a full convolution for layers of <= 16 input and <= 8 output channels; dw of "
                    "3- and 5-wide kernels where the direct dw would run)"});
  t.impl.push_back({"conv2d_oc", "avx2 (forward: <= 32 output channels, <= 256 taps x input channels)"});
  t.impl.push_back({"conv2d_winograd",
                    "avx2 (3x3 stride-1 convs with >= 8 channels in and out; F(4x4) on maps of >= 8x8 outputs "
                    "with >= 8 of its tiles per thread, F(2x2) below)"});
  mark(t, "relu", "avx2");
  mark(t, "maxpool2d", "avx2 (2x2 stride 2; scalar otherwise)");
  mark(t, "sgd", "avx2");
  mark(t, "adam", "avx2");
  fill_int8(t);
  return t;
}

KernelTable make_avx512() {
  KernelTable t = make_scalar();
  t.isa = "avx512";
  t.gemm_mr = kGemmMrAvx512;
  t.gemm_nr = kGemmNrAvx512;
  t.gemm_tile = gemm_tile_avx512;
  t.gemm_pack_a = gemm_pack_a_avx512;
  t.gemm_pack_b = gemm_pack_b_avx512;
  t.gemv_rows = gemv_rows_avx512;
  t.im2col = im2col_avx512;
  t.col2im = col2im_avx512;
  t.im2col_pack = im2col_pack_avx512;
  t.conv_direct_fwd = conv2d_direct_fwd_avx512;
  t.conv_direct_bwd_w = conv2d_direct_bwd_w_avx512;
  t.conv_lanes_fwd = conv2d_lanes_fwd_avx512;
  t.conv_lanes_bwd_w = conv2d_lanes_bwd_w_avx512;
  t.conv_batch_fwd = conv2d_batch_fwd_avx512;
  t.conv_batch_bwd_w = conv2d_batch_bwd_w_avx512;
  t.winograd_input = winograd_input_avx512;
  t.winograd_output = winograd_output_avx512;
  t.winograd_grad_output = winograd_grad_output_avx512;
  t.winograd_weights = winograd_weights_avx512;
  t.winograd_input_adjoint = winograd_input_adjoint_avx512;
  t.winograd4_input = winograd4_input_avx512;
  t.winograd4_output = winograd4_output_avx512;
  t.winograd4_grad_output = winograd4_grad_output_avx512;
  t.winograd4_weights = winograd4_weights_avx512;
  t.relu_fwd = relu_fwd_avx512;
  t.relu_bwd = relu_bwd_avx512;
  t.sum = sum_avx512;
  t.maxpool2d_fwd = maxpool2d_fwd_avx512;
  t.maxpool2d_bwd = maxpool2d_bwd_avx512;
  t.sgd_update = sgd_update_avx512;
  t.adam_update = adam_update_avx512;
  mark(t, "gemm", "avx512");
  mark(t, "im2col", "avx512");
  t.impl.push_back({"conv2d_direct",
                    "avx512 (forward: <= 16 output channels; dx: <= 16 input channels; "
                    "dw: < 8 output channels or < 16 taps x input channels)"});
  t.impl.push_back({"conv2d_lanes",
                    "avx512 (16 or 32 output channels, <= 256 taps x input channels, an image per thread; "
                    "forward from 64 taps x input channels, dw for 3- or 5-wide kernels)"});
  t.impl.push_back({"conv2d_batch",
                    "avx512 (16 images a register, 16 images or more per thread: forward and dx as a full "
                    "convolution with <= 16 output channels; dw of 3- and 5-wide kernels where the direct dw "
                    "would run)"});
  t.impl.push_back({"conv2d_winograd",
                    "avx512 (3x3 stride-1 convs with >= 8 channels in and out; F(4x4) on maps of >= 8x8 outputs "
                    "with >= 16 of its tiles per thread, F(2x2) below)"});
  mark(t, "relu", "avx512");
  mark(t, "maxpool2d", "avx512 (2x2 stride 2; scalar otherwise)");
  mark(t, "sgd", "avx512");
  mark(t, "adam", "avx512");
  fill_int8(t);
  return t;
}

#endif  // __x86_64__

#if defined(__aarch64__)
// NEON (ASIMD, baseline on every ARMv8-A CPU). Ops with no NEON kernel keep the scalar one and
// say so in impl (the thin-layer direct/lanes/batch convolutions, Winograd F(4x4), RMSprop).
KernelTable make_neon() {
  KernelTable t = make_scalar();
  t.isa = "neon";
  t.gemm_mr = kGemmMrNeon;
  t.gemm_nr = kGemmNrNeon;
  t.gemm_tile = gemm_tile_neon;
  t.gemm_pack_a = gemm_pack_a_neon;
  t.gemm_pack_b = gemm_pack_b_neon;
  t.gemv_rows = gemv_rows_neon;
  t.im2col = im2col_neon;
  t.col2im = col2im_neon;
  t.winograd_input = winograd_input_neon;
  t.winograd_output = winograd_output_neon;
  t.winograd_grad_output = winograd_grad_output_neon;
  t.winograd_weights = winograd_weights_neon;
  t.relu_fwd = relu_fwd_neon;
  t.relu_bwd = relu_bwd_neon;
  t.sum = sum_neon;
  t.maxpool2d_fwd = maxpool2d_fwd_neon;
  t.maxpool2d_bwd = maxpool2d_bwd_neon;
  t.sgd_update = sgd_update_neon;
  t.adam_update = adam_update_neon;
  mark(t, "gemm", "neon (8x12 FMA tile)");
  mark(t, "im2col", "neon (compiler-vectorised shared loops)");
  t.impl.push_back({"conv2d_winograd", "neon (F(2x2, 3x3) only, compiler-vectorised transforms; 3x3 stride-1 "
                                       "convs with >= 8 channels in and out)"});
  mark(t, "relu", "neon");
  mark(t, "maxpool2d", "neon (2x2 stride 2; scalar otherwise)");
  mark(t, "sgd", "neon");
  mark(t, "adam", "neon");
  fill_int8(t);  // the NEON int8 kernels (SDOT where HWCAP has asimddp), dispatch/int8.cc
  return t;
}
#endif  // __aarch64__

const KernelTable& table_for(const std::string& name) {
  static const KernelTable scalar = make_scalar();
#if defined(__x86_64__)
  static const KernelTable avx2 = make_avx2();
  static const KernelTable avx512 = make_avx512();
  if (name == "avx512") return avx512;
  if (name == "avx2") return avx2;
#elif defined(__aarch64__)
  static const KernelTable neon = make_neon();
  if (name == "neon") return neon;
#endif
  return scalar;
}

std::atomic<const KernelTable*> g_table{nullptr};
std::once_flag g_init;

void init_table() {
  const char* forced = std::getenv("CPUCNN_ISA");
  const std::string want = forced && *forced ? forced : available_isas().front();
  set_isa(want);
}

}  // namespace

std::vector<std::string> compiled_isas() {
#if defined(__x86_64__)
  return {"avx512", "avx2", "scalar"};
#elif defined(__aarch64__)
  return {"neon", "scalar"};
#else
  return {"scalar"};
#endif
}

std::vector<std::string> available_isas() {
  const CpuFeatures& f = cpu_features();
  std::vector<std::string> out;
#if defined(__x86_64__)
  if (f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.fma) out.push_back("avx512");
  if (f.avx2 && f.fma) out.push_back("avx2");
#elif defined(__aarch64__)
  if (f.asimd) out.push_back("neon");
#else
  (void)f;
#endif
  out.push_back("scalar");
  return out;
}

void set_isa(const std::string& name) {
  bool known = false;
  for (const auto& s : compiled_isas()) known |= s == name;
  if (!known) {
    std::string list;
    for (const auto& s : compiled_isas()) list += (list.empty() ? "" : ", ") + s;
    throw ValueError("unknown ISA '" + name + "' (CPUCNN_ISA): expected one of " + list);
  }
  bool runnable = false;
  for (const auto& s : available_isas()) runnable |= s == name;
  if (!runnable) throw ValueError("ISA '" + name + "' is not supported by this CPU");
  g_table.store(&table_for(name));
}

const KernelTable& kernels() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (t) return *t;
  // A bad CPUCNN_ISA throws here, and again on every later call: there is
  // no silent fallback. Models and ops call this before any parallel region.
  std::call_once(g_init, init_table);
  return *g_table.load(std::memory_order_acquire);
}

}  // namespace cpucnn
