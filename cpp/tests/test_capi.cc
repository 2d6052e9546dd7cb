// Tests of the C API (cpucnn.h) against the C++ core it wraps: every layer type gives the core's
// predictions, sizes and shapes are right, every failure is an error return with a message (never
// a crash), errors are per thread, and predict is safe from several threads on one model.
// A plain program: prints each failure, then "N passed, N failed"; exits non-zero on failure.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpucnn/cpucnn.h"
#include "cpucnn/cpucnn.hpp"
#include "core/parallel.hpp"  // with cpucnn.hpp in one TU: the header's names stay clear of the core's
#include "dispatch/dispatch.hpp"
#include "model/json.hpp"
#include "model/model_file.hpp"
#include "model/safetensors.hpp"
#include "model/sequential.hpp"
#include "check.hpp"

namespace {

using cpucnn_test::check;
std::string g_dir;

bool contains(const char* s, const std::string& part) { return s && std::string(s).find(part) != std::string::npos; }

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

struct Case {
  const char* name;
  const char* arch;
};

const Case kCases[] = {
    {"conv_same_relu_pool_dense",
     R"({"input_shape":[1,28,28],"layers":[{"type":"Conv2D","filters":6,"kernel_size":5,"padding":"same"},
        {"type":"ReLU"},{"type":"MaxPool2D","pool_size":2},{"type":"Conv2D","filters":16,"kernel_size":5},
        {"type":"ReLU"},{"type":"MaxPool2D","pool_size":2},{"type":"Flatten"},{"type":"Dense","units":120},
        {"type":"ReLU"},{"type":"Dense","units":10}]})"},
    {"conv_strided_grouped_dilated",
     R"({"input_shape":[4,15,12],"layers":[{"type":"Conv2D","filters":8,"kernel_size":[3,2],"stride":[2,3],
        "padding":"same","groups":4,"dilation":[1,2]},{"type":"Conv2D","filters":3,"kernel_size":3,"padding":[2,0],
        "use_bias":false},{"type":"Flatten"},{"type":"Dense","units":4,"use_bias":false}]})"},
    {"batchnorm_activations",
     R"({"input_shape":[3,8,8],"layers":[{"type":"BatchNorm2D"},{"type":"LeakyReLU","alpha":0.1},
        {"type":"Sigmoid"},{"type":"Tanh"},{"type":"Dropout","rate":0.5},{"type":"Softmax"}]})"},
    {"pools_global",
     R"({"input_shape":[2,9,9],"layers":[{"type":"AvgPool2D","pool_size":3,"stride":2,"padding":1},
        {"type":"MaxPool2D","pool_size":[2,3],"stride":1,"padding":[1,1]},{"type":"GlobalAvgPool2D"},
        {"type":"Dense","units":6},{"type":"Softmax"}]})"},
    {"flat_input",
     R"({"input_shape":[10],"layers":[{"type":"Dense","units":7},{"type":"ReLU"},{"type":"Dense","units":2}]})"},
};

// Saves `arch` to g_dir/<name>.cnn with random weights; returns the core model for reference.
std::unique_ptr<cpucnn::Sequential> save_case(const Case& c, bool with_optimizer) {
  auto net = std::make_unique<cpucnn::Sequential>(cpucnn::json::parse(c.arch), 42);
  for (size_t i = 0; i < net->size(); ++i)
    for (cpucnn::Param& p : net->layer(i).params()) {
      std::vector<float> v = randn(static_cast<size_t>(p.value.numel()), static_cast<uint32_t>(i * 31 + p.name.size()));
      if (p.name == "running_var" || p.name == "weight")
        for (float& x : v) x = (p.name == "running_var") ? 0.5f + std::fabs(x) : 0.5f * x;
      std::copy(v.begin(), v.end(), p.value.data());
    }
  if (with_optimizer && net->output_shape().size() == 1)
    net->compile("cross_entropy", cpucnn::json::parse(R"({"type":"SGD","lr":0.1,"momentum":0.9})"));
  cpucnn::save_model(*net, g_dir + "/" + c.name + ".cnn", with_optimizer, {{"note", "test"}});
  return net;
}

void test_version() {
  check(std::string(cpucnn_version()) == CPUCNN_VERSION_STRING, "cpucnn_version() is the build's version");
  check(CPUCNN_API_VERSION == 3, "API version 3 (cpucnn_isa)");
  {
    const char* isa = cpucnn_isa();
    check(isa != nullptr && std::string(isa) == cpucnn::kernels().isa, "cpucnn_isa() names the table in use");
  }
  check(std::string(cpucnn_last_error()).empty(), "no error before any failure");
}

void test_matches_core() {
  for (const Case& c : kCases) {
    for (bool opt : {false, true}) {
      std::string what = c.name;
      if (opt) what += " (saved with the optimizer state, when its output is flat)";
      auto net = save_case(c, opt);
      cpucnn_model* m = cpucnn_load((g_dir + "/" + c.name + ".cnn").c_str());
      check(m != nullptr, what + ": loads: " + cpucnn_last_error());
      if (!m) continue;
      const int64_t in_size = cpucnn::checked_numel(net->input_shape());
      const int64_t out_size = cpucnn::checked_numel(net->output_shape());
      check(cpucnn_input_size(m) == in_size, what + ": input size");
      check(cpucnn_output_size(m) == out_size, what + ": output size");
      int ch = -1, h = -1, w = -1;
      check(cpucnn_input_shape(m, &ch, &h, &w) == 0, what + ": input shape returns 0");
      const cpucnn::Dims& s = net->input_shape();
      check(ch == s[0] && h == (s.size() > 1 ? s[1] : 1) && w == (s.size() > 2 ? s[2] : 1),
            what + ": input shape " + std::to_string(ch) + "x" + std::to_string(h) + "x" + std::to_string(w));
      check(cpucnn_input_shape(m, nullptr, nullptr, nullptr) == 0, what + ": input shape accepts NULLs");
      for (int batch : {1, 5, 300}) {
        const std::vector<float> x = randn(static_cast<size_t>(batch * in_size), static_cast<uint32_t>(batch));
        std::vector<float> want(static_cast<size_t>(batch * out_size)), got(want.size(), NAN);
        net->predict(x.data(), batch, want.data(), 64);
        const int rc = cpucnn_predict(m, x.data(), batch, got.data());
        const double d = max_diff(want, got);
        check(rc == 0 && d <= 1e-5, what + ": batch " + std::to_string(batch) + " rc " + std::to_string(rc) +
                                        ", max diff " + std::to_string(d) + " " + cpucnn_last_error());
      }
      float dummy = 0.0f;
      check(cpucnn_predict(m, &dummy, 0, &dummy) == 0, what + ": batch 0 is a no-op");
      cpucnn_free(m);
    }
  }
}

void test_errors() {
  check(cpucnn_load(nullptr) == nullptr && contains(cpucnn_last_error(), "NULL"), "load(NULL)");
  check(cpucnn_load((g_dir + "/missing.cnn").c_str()) == nullptr && contains(cpucnn_last_error(), "no such file"),
        std::string("missing file: ") + cpucnn_last_error());
  check(cpucnn_load(g_dir.c_str()) == nullptr && std::strlen(cpucnn_last_error()) > 0, "a directory");
  write_file(g_dir + "/empty.cnn", "");
  check(cpucnn_load((g_dir + "/empty.cnn").c_str()) == nullptr && std::strlen(cpucnn_last_error()) > 0,
        "empty file");
  write_file(g_dir + "/text.cnn", "hello, this is not a model file at all");
  check(cpucnn_load((g_dir + "/text.cnn").c_str()) == nullptr, "text file");

  // A safetensors file that is not a cpucnn model.
  const std::string header = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string st(8, '\0');
  for (int i = 0; i < 8; ++i) st[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write_file(g_dir + "/other.st", st + header + std::string(4, '\0'));
  check(cpucnn_load((g_dir + "/other.st").c_str()) == nullptr && contains(cpucnn_last_error(), "not a cpucnn model"),
        std::string("safetensors without cpucnn format: ") + cpucnn_last_error());

  // Every truncation of a real model, and random byte flips: error returns, never a crash.
  save_case(kCases[4], true);
  const std::string good = read_file(g_dir + "/flat_input.cnn");
  const std::string bad = g_dir + "/bad.cnn";
  int truncated_ok = 0, total = 0;
  for (size_t len = 0; len < good.size(); len += std::max<size_t>(1, good.size() / 200)) {
    write_file(bad, good.substr(0, len));
    cpucnn_model* m = cpucnn_load(bad.c_str());
    truncated_ok += m == nullptr && std::strlen(cpucnn_last_error()) > 0;
    ++total;
    cpucnn_free(m);
  }
  check(truncated_ok == total, "every truncation fails cleanly (" + std::to_string(truncated_ok) + "/" +
                                   std::to_string(total) + ")");
  std::mt19937 gen(5);
  int loaded = 0;
  for (int t = 0; t < 300; ++t) {
    std::string s = good;
    const int flips = 1 + static_cast<int>(gen() % 4);
    for (int k = 0; k < flips; ++k) s[gen() % s.size()] ^= static_cast<char>(1 + gen() % 255);
    write_file(bad, s);
    cpucnn_model* m = cpucnn_load(bad.c_str());
    if (m) {  // a flip in the weights is still a valid model: it must run
      ++loaded;
      std::vector<float> x(static_cast<size_t>(cpucnn_input_size(m)), 1.0f);
      std::vector<float> y(static_cast<size_t>(cpucnn_output_size(m)));
      check(cpucnn_predict(m, x.data(), 1, y.data()) == 0, "a model with flipped weight bytes runs");
    }
    cpucnn_free(m);
  }
  std::printf("byte flips: %d of 300 still loaded (flips inside the weights)\n", loaded);

  cpucnn_model* m = cpucnn_load((g_dir + "/flat_input.cnn").c_str());
  check(m != nullptr, "flat_input loads");
  float x[10] = {0}, y[2];
  check(cpucnn_predict(nullptr, x, 1, y) == -1 && contains(cpucnn_last_error(), "NULL"), "predict(NULL model)");
  check(cpucnn_predict(m, x, -1, y) == -1 && contains(cpucnn_last_error(), "negative"), "predict(batch -1)");
  check(cpucnn_predict(m, nullptr, 1, y) == -1, "predict(NULL input)");
  check(cpucnn_predict(m, x, 1, nullptr) == -1, "predict(NULL output)");
  check(cpucnn_input_size(nullptr) == -1 && cpucnn_output_size(nullptr) == -1, "sizes of NULL are -1");
  int c = 0;
  check(cpucnn_input_shape(nullptr, &c, nullptr, nullptr) == -1, "input_shape(NULL)");
  cpucnn_free(nullptr);
  cpucnn_free(m);

  // The C++ header throws cpucnn::rt::Error with the message.
  try {
    cpucnn::rt::Model bad_model(g_dir + "/missing.cnn");
    check(false, "cpucnn::rt::Model on a missing file throws");
  } catch (const cpucnn::rt::Error& e) {
    check(contains(e.what(), "no such file"), std::string("cpucnn::rt::Error message: ") + e.what());
  }
}

// Files that are not cpucnn model files say so, with their path.
void test_not_model_files() {
  std::mt19937 gen(11);
  std::string random(4096, '\0');
  for (char& c : random) c = static_cast<char>(gen() & 0xFF);
  const std::string onnx = std::string("\x08\x08\x12\x07pytorch\x1a\x05" "2.1.0:\x9c\x02\n\x0c", 22) + random;
  const struct {
    const char* name;
    std::string bytes;
    const char* why;
  } cases[] = {
      {"empty.cnn", "", "the file is empty"},
      {"random.cnn", random, "does not start with a safetensors header"},
      {"zip.pt", std::string("PK\x03\x04\x14\0\0\0\x08\0", 10) + "archive/data.pkl" + std::string(200, '\0'),
       "zip archive"},
      {"model.onnx", onnx, "does not start with a safetensors header"},
      {"text.cnn", "hello, this is not a model file at all\n", "text file"},
  };
  for (const auto& c : cases) {
    const std::string path = g_dir + "/" + c.name;
    write_file(path, c.bytes);
    cpucnn_model* m = cpucnn_load(path.c_str());
    const std::string err = cpucnn_last_error();
    check(m == nullptr && contains(err.c_str(), "cpucnn_load: '" + path + "' is not a cpucnn model file (") &&
              contains(err.c_str(), c.why),
          std::string(c.name) + ": " + err);
    cpucnn_free(m);
  }
  // A plain safetensors file (no metadata), as any other program writes it.
  const std::vector<float> w = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::string plain = g_dir + "/plain.safetensors";
  cpucnn::safetensors::write_file(plain, {}, {{"weight", "F32", {2, 2}, w.data()}});
  check(cpucnn_load(plain.c_str()) == nullptr &&
            contains(cpucnn_last_error(), "'" + plain + "' is not a cpucnn model file (it is a safetensors file"),
        std::string("plain safetensors file: ") + cpucnn_last_error());
}

// A model file states its activation sizes: one over the limit is refused before anything is
// allocated, naming the layer; the limit can be raised.
void test_activation_limit() {
  check(cpucnn_max_activation_bytes() == (1LL << 30), "the default limit is 1 GiB");
  check(cpucnn_set_max_activation_bytes(0) == -1 && contains(cpucnn_last_error(), "positive"), "a limit of 0");
  check(cpucnn_set_max_activation_bytes(-5) == -1 && cpucnn_max_activation_bytes() == (1LL << 30),
        "a negative limit changes nothing");

  // 65536 1x1 filters on a 128x128 input: 512 KiB of weights, 4 GiB of output per sample.
  const char* arch = R"({"input_shape":[1,128,128],"layers":[{"type":"Conv2D","filters":65536,"kernel_size":1}]})";
  check(cpucnn_set_max_activation_bytes(8LL << 30) == 0 && cpucnn_max_activation_bytes() == (8LL << 30),
        "raise the limit to 8 GiB");
  const std::string path = g_dir + "/huge_activations.cnn";
  {
    cpucnn::Sequential net(cpucnn::json::parse(arch), 1);
    cpucnn::save_model(net, path, false, {});
  }
  cpucnn_model* m = cpucnn_load(path.c_str());
  check(m != nullptr && cpucnn_output_size(m) == (1 << 30),
        std::string("under an 8 GiB limit it loads (nothing runs, so nothing large is allocated): ") +
            cpucnn_last_error());
  cpucnn_free(m);
  check(cpucnn_set_max_activation_bytes(1LL << 30) == 0, "back to 1 GiB");
  m = cpucnn_load(path.c_str());
  const std::string err = cpucnn_last_error();
  check(m == nullptr && contains(err.c_str(), "model file '" + path + "': layer 0 Conv2D(65536, 1x1): activations of one "
                                               "sample (output (65536, 128, 128)) need 4.0 GiB, over the limit of "
                                               "1.0 GiB; raise it with") &&
            contains(err.c_str(), "cpucnn_set_max_activation_bytes"),
        "over the limit: " + err);
  cpucnn_free(m);

  // A small limit catches an ordinary model at its first large layer.
  save_case(kCases[0], false);
  check(cpucnn_set_max_activation_bytes(4096) == 0, "a 4 KiB limit");
  m = cpucnn_load((g_dir + "/" + kCases[0].name + ".cnn").c_str());
  check(m == nullptr && contains(cpucnn_last_error(), "layer 0 Conv2D(6, 5x5): the unfolded input (im2col columns) "
                                                      "of one sample need 76.6 KiB, over the limit of 4.0 KiB"),
        std::string("4 KiB limit: ") + cpucnn_last_error());
  cpucnn_free(m);
  check(cpucnn_set_max_activation_bytes(1LL << 30) == 0, "back to 1 GiB");
  m = cpucnn_load((g_dir + "/" + kCases[0].name + ".cnn").c_str());
  check(m != nullptr, std::string("loads again under the default: ") + cpucnn_last_error());
  cpucnn_free(m);
}

void test_thread_local_errors() {
  cpucnn_load((g_dir + "/missing.cnn").c_str());
  const std::string here = cpucnn_last_error();
  std::string there = "unset";
  std::thread t([&] { there = cpucnn_last_error(); });
  t.join();
  check(!here.empty() && there.empty(), "errors are per thread ('" + there + "')");
}

void test_concurrent_predict() {
  save_case(kCases[0], false);
  cpucnn::rt::Model model(g_dir + std::string("/") + kCases[0].name + ".cnn");
  const int in = model.input_size(), out = model.output_size();
  constexpr int kThreads = 4, kRuns = 15, kBatch = 3;
  std::vector<std::vector<float>> xs, want;
  for (int t = 0; t < kThreads; ++t) {
    xs.push_back(randn(static_cast<size_t>(kBatch * in), 100 + t));
    want.push_back(model.predict(xs.back(), kBatch));
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t)
    pool.emplace_back([&, t] {
      std::vector<float> y(static_cast<size_t>(kBatch * out));
      for (int r = 0; r < kRuns; ++r) {
        if (cpucnn_predict(model.get(), xs[t].data(), kBatch, y.data()) != 0 || max_diff(y, want[t]) > 1e-6) ++bad;
      }
    });
  for (auto& th : pool) th.join();
  check(bad == 0, "concurrent predictions on one model match the serial ones (" + std::to_string(bad.load()) + " bad)");

  // The thread count changes speed, not results (beyond reduction order). The header's
  // cpucnn::rt::set_num_threads (the C API) sets what the core's cpucnn::get_num_threads reads.
  cpucnn::rt::set_num_threads(1);
  check(cpucnn::get_num_threads() == 1, "cpucnn::rt::set_num_threads(1): the core runs 1 thread");
  const std::vector<float> one = model.predict(xs[0], kBatch);
  cpucnn_set_num_threads(0);
  const std::vector<float> all = model.predict(xs[0], kBatch);
  check(max_diff(one, all) <= 1e-5, "1 thread and all threads agree");
  check(model.argmax(all, 0) >= 0 && model.argmax(all, 0) < out, "argmax in range");
}

}  // namespace

int main() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/cpucnn_test_capi_XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    std::printf("cannot create a temporary directory\n");
    return 1;
  }
  g_dir = buf.data();

  test_version();
  test_matches_core();
  test_errors();
  test_not_model_files();
  test_activation_limit();
  test_thread_local_errors();
  test_concurrent_predict();

  std::string rm = "rm -rf '" + g_dir + "'";
  if (std::system(rm.c_str()) != 0) std::printf("note: could not remove %s\n", g_dir.c_str());
  return cpucnn_test::report();
}
