// Fuzz target over the model loader: any bytes, written to a file, go through cpucnn_load (the
// public entry point: mmap, safetensors header, metadata, architecture, tensors). The loader must
// either return NULL with a message or a model that runs; anything else (a crash, a sanitizer
// report, an exception escaping) is a bug.
//
// Built two ways: with clang's libFuzzer (-DCPUCNN_FUZZ=ON, target fuzz_load; see run_fuzz.sh) and,
// for compilers without it, with fuzz_driver.cc (target fuzz_load_driver: a seed corpus plus
// random mutations, bounded).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cpucnn/cpucnn.h"

namespace {

std::string scratch_path() {
  const char* dir = std::getenv("CPUCNN_FUZZ_DIR");
  std::string d = dir && *dir ? dir : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  return d + "/cpucnn_fuzz_" + std::to_string(getpid()) + ".cnn";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

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
        if (msg.find("ISA") != std::string::npos) {  // CPUCNN_ISA names a path this CPU lacks
          std::fprintf(stderr, "fuzz_load: %s\n", msg.c_str());
          std::exit(0);
        }
        std::fprintf(stderr, "a loaded model failed to predict: %s\n", msg.c_str());
        std::abort();
      }
    }
  }
  cpucnn_free(m);
  return 0;
}
