// A few training steps through the C++ core, for comparing kernel paths and architectures
// (the aarch64 build under qemu against the x86-64 scalar path: .ci/aarch64.sh).
//
//   cpucnn_train_check OUT.npy [--reference REF.npy TOL]
//       builds a small CNN (3x3 convs of 8 channels, so Winograd runs where the table has it,
//       ReLU, 2x2 max pooling, Dense), takes kSteps Adam steps and kSteps SGD-with-momentum steps
//       on fixed data (an integer hash, the same on every platform; weights from the core's
//       seeded initialiser), on one thread, and writes every parameter, then the predictions of
//       the trained model, as float32 .npy. With --reference, also compares them: every value
//       within TOL * max(|ref|, 1e-2 * max |ref|) (relative, with a floor for values near zero).
//   cpucnn_train_check --compare A.npy B.npy TOL
//       the same comparison of two files.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "model/json.hpp"
#include "model/sequential.hpp"
#include "npy.hpp"

namespace {

using cpucnn_test::read_npy;
using cpucnn_test::write_npy;

constexpr int kSteps = 4, kBatch = 8;

const char* kArch = R"({"input_shape":[3,12,12],"layers":[
  {"type":"Conv2D","filters":8,"kernel_size":[3,3],"padding":"same"},{"type":"ReLU"},
  {"type":"Conv2D","filters":8,"kernel_size":[3,3],"padding":"same"},{"type":"ReLU"},
  {"type":"MaxPool2D","pool_size":[2,2]},{"type":"Flatten"},
  {"type":"Dense","units":16},{"type":"ReLU"},{"type":"Dense","units":5}]})";

// Values in [-1, 1) from an integer hash of (stream, index): no library RNG, so bitwise the same
// data on every platform.
float data(uint32_t stream, uint32_t i) {
  uint32_t h = stream * 0x9E3779B9u ^ (i + 0x7F4A7C15u);
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return static_cast<float>(h >> 8) / 8388608.0f - 1.0f;
}

int compare(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  if (a.size() != b.size()) {
    std::printf("FAIL: %s: %zu values against %zu in the reference\n", what.c_str(), a.size(), b.size());
    return 1;
  }
  double top = 0.0;
  for (float x : b) top = std::max(top, std::fabs(double(x)));
  double worst = 0.0, worst_abs = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    const double rel = d / std::max(std::fabs(double(b[i])), 1e-2 * top);
    if (!(rel <= worst) && !(d == 0.0)) {
      worst = std::isnan(rel) ? INFINITY : rel;
      at = i;
    }
    worst_abs = std::max(worst_abs, d);
  }
  std::printf("%s: %zu values, max relative difference %.3g (at %zu), max absolute %.3g, tolerance %.3g\n",
              what.c_str(), a.size(), worst, at, worst_abs, tol);
  return worst <= tol ? 0 : 1;
}

std::vector<float> train() {
  cpucnn::set_num_threads(1);  // the architectures are compared, not thread schedules
  std::vector<float> out;
  const char* optimizers[] = {R"({"type":"Adam","lr":0.001})", R"({"type":"SGD","lr":0.05,"momentum":0.9})"};
  for (int o = 0; o < 2; ++o) {
    cpucnn::Sequential net(cpucnn::json::parse(kArch), 7);
    net.compile("cross_entropy", cpucnn::json::parse(optimizers[o]));
    const int64_t in = 3 * 12 * 12;
    std::vector<float> x(static_cast<size_t>(kBatch * in));
    std::vector<int64_t> y(kBatch);
    for (int s = 0; s < kSteps; ++s) {
      for (size_t i = 0; i < x.size(); ++i) x[i] = data(static_cast<uint32_t>(s), static_cast<uint32_t>(i));
      for (int i = 0; i < kBatch; ++i) y[static_cast<size_t>(i)] = (i * 3 + s) % 5;
      net.train_step(x.data(), kBatch, y.data(), nullptr);
    }
    for (size_t l = 0; l < net.size(); ++l)
      for (const cpucnn::Param& p : net.layer(l).params())
        out.insert(out.end(), p.value.data(), p.value.data() + p.value.numel());
    std::vector<float> pred(static_cast<size_t>(kBatch * 5));
    for (size_t i = 0; i < x.size(); ++i) x[i] = data(99, static_cast<uint32_t>(i));
    net.predict(x.data(), kBatch, pred.data(), kBatch);
    out.insert(out.end(), pred.begin(), pred.end());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 5 && std::string(argv[1]) == "--compare")
      return compare(read_npy(argv[2]), read_npy(argv[3]), std::atof(argv[4]), argv[2]);
    if (argc == 2 || (argc == 5 && std::string(argv[2]) == "--reference")) {
      const std::vector<float> got = train();
      write_npy(argv[1], {static_cast<int64_t>(got.size())}, got);
      std::printf("kernels %s: %d Adam and %d SGD steps, %zu values written to %s\n", cpucnn::kernels().isa, kSteps, kSteps,
                  got.size(), argv[1]);
      if (argc == 5) return compare(got, read_npy(argv[3]), std::atof(argv[4]), argv[1]);
      return 0;
    }
    std::fprintf(stderr, "usage: cpucnn_train_check OUT.npy [--reference REF.npy TOL] | --compare A.npy B.npy TOL\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpucnn_train_check: %s\n", e.what());
    return 1;
  }
}
