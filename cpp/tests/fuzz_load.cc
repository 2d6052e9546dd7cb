// Fuzz target over the model loader: any bytes, written to a file, go through cpucnn_load (the
// public entry point: mmap, safetensors header, metadata, architecture, tensors). The loader must
// either return NULL with a message or a model that runs; anything else (a crash, a sanitizer
// report, an exception escaping) is a bug.
//
// Built two ways: with clang's libFuzzer (-DCPUCNN_FUZZ=ON, target fuzz_load; see run_fuzz.sh) and,
// for compilers without it, with fuzz_driver.cc (target fuzz_load_driver: a seed corpus plus
// random mutations, bounded).
//
// CPUCNN_ISA forces a kernel path. One this CPU lacks would make every input fail the same way and
// the run test nothing, so the target then prints "SKIPPED: CPU lacks <isa>" and exits with 77
// (ctest's SKIP_RETURN_CODE); a name cpucnn does not know is a usage error (exit 2).
#include <unistd.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpucnn/cpucnn.h"

namespace {

std::string scratch_path() {
  const char* dir = std::getenv("CPUCNN_FUZZ_DIR");
  std::string d = dir && *dir ? dir : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  return d + "/cpucnn_fuzz_" + std::to_string(getpid()) + ".cnn";
}

// Whether this CPU runs `isa`, by the rule of dispatch.cc's available_isas() but from the
// compiler's own CPU detection (which checks the OS saves the AVX / AVX-512 registers too), so
// the two are checked against each other: a path dispatch wrongly refuses fails the run.
bool cpu_runs(const char* isa) {
  if (std::strcmp(isa, "scalar") == 0) return true;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool fma = __builtin_cpu_supports("fma");
  if (std::strcmp(isa, "avx2") == 0) return __builtin_cpu_supports("avx2") && fma;
  if (std::strcmp(isa, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && fma;
#endif
#if defined(__aarch64__) && defined(__linux__)
  if (std::strcmp(isa, "neon") == 0) return (getauxval(AT_HWCAP) & (1ul << 1)) != 0;  // HWCAP_ASIMD
#endif
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* isa = std::getenv("CPUCNN_ISA");
  if (!isa || !*isa) return 0;  // the best path this CPU has
  if (std::strcmp(isa, "scalar") != 0 && std::strcmp(isa, "avx2") != 0 && std::strcmp(isa, "avx512") != 0 &&
      std::strcmp(isa, "neon") != 0) {
    std::fprintf(stderr, "fuzz_load: CPUCNN_ISA=%s is not an ISA cpucnn has (avx512, avx2, neon, scalar)\n", isa);
    std::exit(2);
  }
  if (!cpu_runs(isa)) {
    std::printf("SKIPPED: CPU lacks %s (CPUCNN_ISA=%s): every input would fail on the ISA, testing nothing\n",
                isa, isa);
    std::fflush(stdout);
    std::exit(77);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = scratch_path();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (size && std::fwrite(data, 1, size, f) != size) {
    std::fclose(f);
    return 0;
  }
  std::fclose(f);
  cpucnn_model* m = cpucnn_load(path.c_str());
  if (!m) {
    if (cpucnn_last_error()[0] == '\0') {
      std::fprintf(stderr, "cpucnn_load failed without a message\n");
      std::abort();
    }
    return 0;
  }
  // A model that loads must run (bounded: skip absurdly large ones), on one thread and on two:
  // ops pick different paths (batch-parallel, row slabs) by thread count.
  const int in = cpucnn_input_size(m), out = cpucnn_output_size(m);
  if (in <= 0 || out <= 0) {
    std::fprintf(stderr, "loaded model reports sizes %d -> %d\n", in, out);
    std::abort();
  }
  if (in <= (1 << 20) && out <= (1 << 20)) {
    std::vector<float> x(static_cast<size_t>(in), 0.5f), y(static_cast<size_t>(out));
    for (int threads : {1, 2}) {
      cpucnn_set_num_threads(threads);
      if (cpucnn_predict(m, x.data(), 1, y.data()) != 0) {
        const std::string msg = cpucnn_last_error();
        std::fprintf(stderr, "a loaded model failed to predict: %s\n", msg.c_str());
        std::abort();
      }
    }
  }
  cpucnn_free(m);
  return 0;
}
