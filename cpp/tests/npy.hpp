// Float32 .npy files for the plain C++ test programs (train_check,
// make_test_models): written with a v1.0 header, read back as a flat payload.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace cpucnn_test {

inline void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& v) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// The float32 payload of a .npy file we (or cpucnn-run) wrote: v1.0 header, '<f4'.
inline std::vector<float> read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(path + ": not a .npy file");
  const size_t hl = static_cast<unsigned char>(b[8]) | static_cast<size_t>(static_cast<unsigned char>(b[9])) << 8;
  if (b.substr(10, hl).find("'<f4'") == std::string::npos) throw std::runtime_error(path + ": not float32");
  const size_t at = 10 + hl;
  if (at > b.size() || (b.size() - at) % 4) throw std::runtime_error(path + ": bad size");
  std::vector<float> v((b.size() - at) / 4);
  std::memcpy(v.data(), b.data() + at, v.size() * 4);
  return v;
}

}  // namespace cpucnn_test
