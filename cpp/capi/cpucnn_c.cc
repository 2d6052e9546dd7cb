// The C API (cpp/include/cpucnn/cpucnn.h) over the C++ core: a loaded Sequential plus its sizes.
// Every entry point catches every exception and turns it into a thread-local message; nothing
// here throws across the C boundary or aborts.
#include "cpucnn/cpucnn.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "model/model_file.hpp"
#include "model/sequential.hpp"

struct cpucnn_model {
  std::unique_ptr<cpucnn::Sequential> net;
  int in_size = 0, out_size = 0;
  int c = 0, h = 1, w = 1;
  int64_t chunk = 1;  // samples per forward pass, to bound the activation buffers
};

namespace {

thread_local std::string g_last_error;

void set_error(const char* what, const std::string& msg) { g_last_error = std::string(what) + ": " + msg; }

// Runs f; on any exception records "<what>: <message>" and returns `fail`.
template <class F, class R>
R guarded(const char* what, R fail, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    set_error(what, "out of memory");
  } catch (const std::exception& e) {
    set_error(what, e.what());
  } catch (...) {
    set_error(what, "unknown error");
  }
  return fail;
}

int to_int(int64_t v, const char* what) {
  if (v <= 0 || v > INT_MAX) throw cpucnn::ValueError(std::string(what) + " " + std::to_string(v) + " does not fit the C API (int)");
  return static_cast<int>(v);
}

// Activation floats one forward pass may use per chunk (two ping-pong buffers of this size).
constexpr int64_t kChunkFloats = int64_t(1) << 24;  // 64 MiB per buffer
constexpr int64_t kMaxChunk = 256;

}  // namespace

extern "C" {

cpucnn_model* cpucnn_load(const char* path) {
  return guarded("cpucnn_load", static_cast<cpucnn_model*>(nullptr), [&]() -> cpucnn_model* {
    if (!path) throw cpucnn::ValueError("path is NULL");
    cpucnn::LoadedModel loaded = cpucnn::load_model(path);
    auto m = std::make_unique<cpucnn_model>();
    const cpucnn::Sequential& net = *loaded.model;
    const cpucnn::Dims& in = net.input_shape();
    m->in_size = to_int(cpucnn::checked_numel(in), "input size");
    m->out_size = to_int(cpucnn::checked_numel(net.output_shape()), "output size");
    m->c = to_int(in[0], "input channels");
    if (in.size() > 1) m->h = to_int(in[1], "input height");
    if (in.size() > 2) m->w = to_int(in[2], "input width");
    int64_t widest = m->in_size;
    for (size_t i = 0; i < net.size(); ++i) widest = std::max(widest, cpucnn::checked_numel(net.layer(i).out_shape));
    m->chunk = std::clamp<int64_t>(kChunkFloats / widest, 1, kMaxChunk);
    m->net = std::move(loaded.model);
    return m.release();
  });
}

const char* cpucnn_last_error(void) { return g_last_error.c_str(); }

int cpucnn_input_size(const cpucnn_model* model) { return model ? model->in_size : -1; }

int cpucnn_output_size(const cpucnn_model* model) { return model ? model->out_size : -1; }

int cpucnn_input_shape(const cpucnn_model* model, int* c, int* h, int* w) {
  if (!model) {
    set_error("cpucnn_input_shape", "model is NULL");
    return -1;
  }
  if (c) *c = model->c;
  if (h) *h = model->h;
  if (w) *w = model->w;
  return 0;
}

int cpucnn_predict(cpucnn_model* model, const float* input, int batch, float* output) {
  return guarded("cpucnn_predict", -1, [&]() -> int {
    if (!model) throw cpucnn::ValueError("model is NULL");
    if (batch < 0) throw cpucnn::ValueError("batch must not be negative, got " + std::to_string(batch));
    if (batch == 0) return 0;
    if (!input || !output) throw cpucnn::ValueError("input and output must not be NULL");
    const cpucnn::Sequential& net = *model->net;  // const: predict is safe from several threads
    net.predict(input, batch, output, model->chunk);
    return 0;
  });
}

void cpucnn_set_num_threads(int n) {
  guarded("cpucnn_set_num_threads", 0, [&] {
    cpucnn::set_num_threads(n);
    return 0;
  });
}

int cpucnn_set_max_activation_bytes(long long bytes) {
  return guarded("cpucnn_set_max_activation_bytes", -1, [&] {
    cpucnn::set_max_activation_bytes(static_cast<int64_t>(bytes));
    return 0;
  });
}

long long cpucnn_max_activation_bytes(void) { return static_cast<long long>(cpucnn::max_activation_bytes()); }

void cpucnn_free(cpucnn_model* model) { delete model; }

const char* cpucnn_version(void) { return CPUCNN_VERSION_STRING; }

const char* cpucnn_isa(void) {
  return guarded("cpucnn_isa", static_cast<const char*>(nullptr), [] { return cpucnn::kernels().isa; });
}

}  // extern "C"
