// Writes the small model files the runtime tests read, and compares .npy outputs.
//
//   cpucnn_make_test_models DIR
//       DIR/<name>.cnn            a model (see kModels), saved by the core's save_model
//       DIR/<name>_input.f32      raw float32 inputs (kBatch samples), DIR/<name>_expected.f32 the
//                                 core's Sequential::predict outputs for them (raw float32)
//       DIR/lenet_input.npy, DIR/lenet_expected.npy   the same for lenet, as .npy (cpucnn-run)
//       DIR/corpus/               the model files again: the fuzz seed corpus
//   cpucnn_make_test_models --compare A.npy B.npy [TOL]
//       exits 0 when two float32 .npy files hold the same number of values, equal within TOL
//       (default 1e-5, relative to max(1, |b|)), printing the largest difference.

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "model/json.hpp"
#include "model/model_file.hpp"
#include "model/sequential.hpp"
#include "npy.hpp"

namespace {

using cpucnn_test::read_npy;
using cpucnn_test::write_npy;

constexpr int kBatch = 3;

struct Spec {
  const char* name;
  const char* arch;
  bool train;  // compile with Adam, take a step and save the optimizer state too
};

const Spec kModels[] = {
    {"lenet",
     R"({"input_shape":[1,28,28],"layers":[
        {"type":"Conv2D","filters":6,"kernel_size":[5,5],"padding":"same"},{"type":"ReLU"},
        {"type":"MaxPool2D","pool_size":[2,2]},
        {"type":"Conv2D","filters":16,"kernel_size":[5,5]},{"type":"ReLU"},
        {"type":"MaxPool2D","pool_size":[2,2]},{"type":"Flatten"},
        {"type":"Dense","units":120},{"type":"ReLU"},{"type":"Dense","units":84},{"type":"ReLU"},
        {"type":"Dense","units":10}]})",
     true},
    {"all_layers",
     R"({"input_shape":[4,13,11],"layers":[
        {"type":"Conv2D","filters":8,"kernel_size":[3,4],"stride":[2,1],"padding":"same","groups":2},
        {"type":"BatchNorm2D","momentum":0.1,"eps":0.001},{"type":"LeakyReLU","alpha":0.2},
        {"type":"Conv2D","filters":6,"kernel_size":[3,3],"padding":[1,2],"dilation":[2,1],"use_bias":false},
        {"type":"Tanh"},{"type":"AvgPool2D","pool_size":[3,3],"stride":[2,2],"padding":[1,1]},
        {"type":"Sigmoid"},{"type":"Dropout","rate":0.3},
        {"type":"MaxPool2D","pool_size":[2,2],"stride":[1,1],"padding":[1,1]},
        {"type":"Softmax"},{"type":"GlobalAvgPool2D"},
        {"type":"Dense","units":5},{"type":"Softmax"}]})",
     false},
    {"conv_out",  // the output is (C, H, W): the C API flattens it
     R"({"input_shape":[3,6,6],"layers":[{"type":"Conv2D","filters":2,"kernel_size":3},{"type":"ReLU"}]})", false},
    {"flat",  // a flat input (features,)
     R"({"input_shape":[12],"layers":[{"type":"Dense","units":7},{"type":"Tanh"},{"type":"Dense","units":3,"use_bias":false}]})",
     true},
};

void write_raw(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  if (!f) throw std::runtime_error("cannot write " + path);
}

int compare(const std::string& a_path, const std::string& b_path, double tol) {
  const std::vector<float> a = read_npy(a_path), b = read_npy(b_path);
  if (a.size() != b.size()) {
    std::printf("FAIL: %s has %zu values, %s has %zu\n", a_path.c_str(), a.size(), b_path.c_str(), b.size());
    return 1;
  }
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])) / std::max(1.0, std::fabs(double(b[i]))));
  std::printf("%zu values, max difference %.3g (tolerance %.3g)\n", a.size(), worst, tol);
  return worst <= tol ? 0 : 1;
}

void make(const std::string& dir, const Spec& spec, uint64_t seed) {
  cpucnn::Sequential net(cpucnn::json::parse(spec.arch), seed);
  std::mt19937 gen(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Non-trivial BatchNorm statistics, so inference mode is really tested.
  for (size_t i = 0; i < net.size(); ++i)
    for (cpucnn::Param& p : net.layer(i).params()) {
      if (p.name == "running_mean" || p.name == "bias")
        for (int64_t k = 0; k < p.value.numel(); ++k) p.value.data()[k] = 0.3f * normal(gen);
      if (p.name == "running_var" || (p.name == "weight" && std::string(net.layer(i).type()) == "BatchNorm2D"))
        for (int64_t k = 0; k < p.value.numel(); ++k) p.value.data()[k] = 0.5f + std::fabs(normal(gen));
    }
  const int64_t in_size = cpucnn::checked_numel(net.input_shape());
  const int64_t out_size = cpucnn::checked_numel(net.output_shape());
  if (spec.train) {
    net.compile("cross_entropy", cpucnn::json::parse(R"({"type":"Adam","lr":0.001})"));
    std::vector<float> x(static_cast<size_t>(4 * in_size));
    for (float& v : x) v = normal(gen);
    std::vector<int64_t> y = {0, 1, 2, 1};
    net.train_step(x.data(), 4, y.data(), nullptr);
  }
  std::vector<float> x(static_cast<size_t>(kBatch * in_size)), out(static_cast<size_t>(kBatch * out_size));
  for (float& v : x) v = normal(gen);
  net.predict(x.data(), kBatch, out.data(), kBatch);
  const std::string base = dir + "/" + spec.name;
  cpucnn::save_model(net, base + ".cnn", spec.train, {});
  cpucnn::save_model(net, dir + "/corpus/" + spec.name + ".cnn", spec.train, {});
  write_raw(base + "_input.f32", x);
  write_raw(base + "_expected.f32", out);
  if (std::string(spec.name) == "lenet") {
    std::vector<int64_t> shape = {kBatch};
    for (int64_t d : net.input_shape()) shape.push_back(d);
    write_npy(base + "_input.npy", shape, x);
    write_npy(base + "_expected.npy", {kBatch, out_size}, out);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 4 && std::string(argv[1]) == "--compare")
      return compare(argv[2], argv[3], argc > 4 ? std::atof(argv[4]) : 1e-5);
    if (argc != 2) {
      std::fprintf(stderr, "usage: cpucnn_make_test_models DIR | --compare A.npy B.npy [TOL]\n");
      return 2;
    }
    const std::string dir = argv[1];
    mkdir(dir.c_str(), 0755);
    mkdir((dir + "/corpus").c_str(), 0755);
    uint64_t seed = 7;
    for (const Spec& s : kModels) make(dir, s, seed++);
    std::printf("wrote %zu models to %s\n", sizeof(kModels) / sizeof(kModels[0]), dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpucnn_make_test_models: %s\n", e.what());
    return 1;
  }
}
