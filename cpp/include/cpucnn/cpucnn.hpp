// cpucnn.hpp - a header-only C++ view of the C API in cpucnn.h (RAII, exceptions, std::vector).
//
//     cpucnn::rt::Model model("model.cnn");            // throws cpucnn::rt::Error on failure
//     std::vector<float> out = model.predict(images, batch);
//     int label = model.argmax(out, 0);
//     cpucnn::rt::set_num_threads(2);                  // cpucnn_set_num_threads(); <= 0: all cores
//
// It only calls the C API, so it works against the shared or the static library alike and keeps
// the library's ABI plain C. Like the C API, predict() may be called from several threads at once.
//
// Everything here is in namespace cpucnn::rt, which belongs to this header. The library's own C++
// code lives in namespace cpucnn (not part of the API, hidden in the shared library but linked
// into a static application): an inline function of this header with the same name and signature
// as one of the library's, such as cpucnn::set_num_threads(int), would be two definitions of one
// function (an ODR violation; the linker keeps one of them for every caller). Never define
// cpucnn::rt in the library.
#ifndef CPUCNN_CPUCNN_HPP_
#define CPUCNN_CPUCNN_HPP_

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpucnn/cpucnn.h"

namespace cpucnn {
namespace rt {

// Every failure of the C API, with cpucnn_last_error()'s message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Shape {
  int c = 0, h = 0, w = 0;
};

// The library's version (cpucnn_version()).
inline std::string version() { return cpucnn_version(); }
// Threads for later predict() calls, process-wide (cpucnn_set_num_threads()); n <= 0: all cores.
inline void set_num_threads(int n) { cpucnn_set_num_threads(n); }

class Model {
 public:
  explicit Model(const std::string& path) : m_(cpucnn_load(path.c_str())) {
    if (!m_) throw Error(cpucnn_last_error());
  }
  ~Model() { cpucnn_free(m_); }
  Model(Model&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Model& operator=(Model&& o) noexcept {
    if (this != &o) {
      cpucnn_free(m_);
      m_ = std::exchange(o.m_, nullptr);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  int input_size() const { return cpucnn_input_size(m_); }
  int output_size() const { return cpucnn_output_size(m_); }
  Shape input_shape() const {
    Shape s;
    cpucnn_input_shape(m_, &s.c, &s.h, &s.w);
    return s;
  }

  // input: batch * input_size() floats (NCHW); output: batch * output_size() floats.
  void predict(const float* input, int batch, float* output) const {
    if (cpucnn_predict(m_, input, batch, output) != 0) throw Error(cpucnn_last_error());
  }
  std::vector<float> predict(const std::vector<float>& input, int batch) const {
    if (batch < 0 || input.size() != static_cast<size_t>(batch) * static_cast<size_t>(input_size()))
      throw Error("cpucnn::rt::Model::predict: input holds " + std::to_string(input.size()) + " floats, batch " +
                  std::to_string(batch) + " needs " +
                  std::to_string(static_cast<long long>(batch) * input_size()));
    std::vector<float> out(static_cast<size_t>(batch) * static_cast<size_t>(output_size()));
    predict(input.data(), batch, out.data());
    return out;
  }
  // The index of the largest output of sample i in a predict() result.
  int argmax(const std::vector<float>& output, int i) const {
    const size_t k = static_cast<size_t>(output_size());
    const size_t begin = static_cast<size_t>(i) * k;
    if (i < 0 || begin + k > output.size()) throw Error("cpucnn::rt::Model::argmax: sample index out of range");
    size_t best = 0;
    for (size_t j = 1; j < k; ++j)
      if (output[begin + j] > output[begin + best]) best = j;
    return static_cast<int>(best);
  }

  cpucnn_model* get() const { return m_; }

 private:
  cpucnn_model* m_;
};

}  // namespace rt
}  // namespace cpucnn

#endif  // CPUCNN_CPUCNN_HPP_
