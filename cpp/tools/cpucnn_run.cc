// cpucnn-run: runs a cpucnn model file on a .npy batch of images, with no Python.
//
//   cpucnn-run MODEL INPUT.npy [--output OUT.npy] [--top K] [--threads N] [--bench N]
//
// INPUT.npy holds float32 (little-endian, C order) of shape (N, C, H, W) or (C, H, W) (for a model
// with a flat input also (N, F) or (F,)). Prints the top-K classes of every image (K = 1 unless
// --output or --bench is given), writes the raw outputs (N, outputs) as float32 with --output, and
// with --bench N times N predictions of the whole input and prints latency percentiles.
// It uses only the public C API (cpucnn.h). Exit status: 0 ok, 1 error, 2 bad usage.

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpucnn/cpucnn.h"

namespace {

const char kUsage[] =
    "usage: cpucnn-run MODEL INPUT.npy [--output OUT.npy] [--top K] [--threads N] [--bench N]\n"
    "\n"
    "Runs a cpucnn model (.cnn) on the float32 images of INPUT.npy, shape (N, C, H, W) or (C, H, W).\n"
    "  --output OUT.npy  write the outputs, float32 of shape (N, outputs)\n"
    "  --top K           print the K best classes of each image (default 1 unless --output/--bench)\n"
    "  --threads N       threads per prediction (default: OMP_NUM_THREADS, else all cores)\n"
    "  --bench N         run the whole batch N times and print latency percentiles (p50, p90, p99)\n"
    "  --version         print the library version\n"
    "Environment: CPUCNN_ISA=scalar|avx2|avx512 (x86-64) or scalar|neon (aarch64) forces a kernel\n"
    "path; --version and --bench say which one runs.\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// .npy (format versions 1.0, 2.0 and 3.0; float32 little-endian, C order)

struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// The value text of `key` in the header's Python dict literal, or "" if absent.
std::string header_value(const std::string& header, const std::string& key) {
  const std::string pat1 = "'" + key + "'", pat2 = "\"" + key + "\"";
  size_t at = header.find(pat1);
  if (at == std::string::npos) at = header.find(pat2);
  if (at == std::string::npos) return "";
  size_t p = header.find(':', at + pat1.size());
  if (p == std::string::npos) return "";
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  if (p >= header.size()) return "";
  size_t end;
  if (header[p] == '(') {
    end = header.find(')', p);
    return end == std::string::npos ? "" : header.substr(p, end - p + 1);
  }
  if (header[p] == '\'' || header[p] == '"') {
    end = header.find(header[p], p + 1);
    return end == std::string::npos ? "" : header.substr(p + 1, end - p - 1);
  }
  end = header.find_first_of(",}", p);
  std::string v = header.substr(p, end == std::string::npos ? std::string::npos : end - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& path) {
  // "(2, 1, 28, 28)", "(784,)", "()"
  std::vector<int64_t> shape;
  size_t p = 1;
  while (p < text.size()) {
    while (p < text.size() && (text[p] == ' ' || text[p] == ',')) ++p;
    if (p >= text.size() || text[p] == ')') break;
    size_t used = 0;
    long long v;
    try {
      v = std::stoll(text.substr(p), &used);
    } catch (const std::exception&) {
      throw std::runtime_error("'" + path + "': cannot read the shape " + text + " in its .npy header");
    }
    if (v < 0) throw std::runtime_error("'" + path + "': negative dimension in shape " + text);
    shape.push_back(v);
    p += used;
  }
  return shape;
}

Array read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::runtime_error("'" + path + "' is not a .npy file (save it with numpy.save)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw std::runtime_error("'" + path + "': truncated .npy header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = header_len << 8 | static_cast<unsigned char>(bytes[8 + i]);
    start = 12;
  } else {
    throw std::runtime_error("'" + path + "': unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - start) throw std::runtime_error("'" + path + "': truncated .npy header");
  const std::string header = bytes.substr(start, header_len);
  const std::string descr = header_value(header, "descr");
  if (descr != "<f4" && descr != "=f4" && descr != "f4") {
    std::string hint = descr == ">f4" ? "big-endian float32; save x.astype('<f4')" : "save x.astype(numpy.float32)";
    throw std::runtime_error("'" + path + "' holds dtype '" + descr + "'; cpucnn-run needs float32 ('<f4'): " + hint);
  }
  const std::string fortran = header_value(header, "fortran_order");
  if (fortran != "False") {
    throw std::runtime_error("'" + path + "' is in Fortran order; save numpy.ascontiguousarray(x)");
  }
  const std::string shape_text = header_value(header, "shape");
  if (shape_text.empty() || shape_text[0] != '(') throw std::runtime_error("'" + path + "': no shape in its .npy header");
  Array a;
  a.shape = parse_shape(shape_text, path);
  uint64_t count = 1;
  for (int64_t d : a.shape) {
    if (d != 0 && count > (uint64_t(1) << 40) / static_cast<uint64_t>(d))
      throw std::runtime_error("'" + path + "': shape " + shape_str(a.shape) + " is too large");
    count *= static_cast<uint64_t>(d);
  }
  const size_t data_at = start + header_len;
  const uint64_t have = bytes.size() - data_at;
  if (have != count * 4)
    throw std::runtime_error("'" + path + "': shape " + shape_str(a.shape) + " needs " + std::to_string(count * 4) +
                             " bytes of data, the file has " + std::to_string(have) +
                             (have < count * 4 ? " (truncated)" : ""));
  a.data.resize(count);
  if (count) std::memcpy(a.data.data(), bytes.data() + data_at, count * 4);
  return a;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_str(shape) + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * 4));
  f.close();
  if (!f) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
}

// ---------------------------------------------------------------------------------------------

struct Options {
  std::string model, input, output;
  int top = -1, threads = 0, bench = 0;
};

int parse_count(const char* flag, const char* value, int min) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  if (errno || !end || *end || end == value || v < min || v > 1000000000)
    throw UsageError(std::string(flag) + " needs an integer >= " + std::to_string(min) + ", got '" + value + "'");
  return static_cast<int>(v);
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--output" || a == "-o") {
      o.output = value();
    } else if (a == "--top") {
      o.top = parse_count("--top", value(), 1);
    } else if (a == "--threads") {
      o.threads = parse_count("--threads", value(), 1);
    } else if (a == "--bench") {
      o.bench = parse_count("--bench", value(), 1);
    } else if (a.size() > 1 && a[0] == '-') {
      throw UsageError("unknown option " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) throw UsageError("expected MODEL and INPUT.npy");
  o.model = positional[0];
  o.input = positional[1];
  if (o.top < 0) o.top = (o.output.empty() && o.bench == 0) ? 1 : 0;
  return o;
}

// The number of samples in `x` for a model with input (c, h, w); throws when the shape does not fit.
int64_t batch_of(const Array& x, int c, int h, int w, const std::string& path) {
  const std::vector<int64_t>& s = x.shape;
  const std::vector<int64_t> want = {c, h, w};
  const std::string expect = "(N, " + std::to_string(c) + ", " + std::to_string(h) + ", " + std::to_string(w) +
                             ") or " + shape_str(want);
  if (s.size() == 4 && std::equal(want.begin(), want.end(), s.begin() + 1)) return s[0];
  if (s.size() == 3 && s == want) return 1;
  if (h == 1 && w == 1) {  // a model over flat inputs
    if (s.size() == 2 && s[1] == c) return s[0];
    if (s.size() == 1 && s[0] == c) return 1;
  }
  throw std::runtime_error("'" + path + "' has shape " + shape_str(s) + "; the model expects " + expect);
}

double percentile(const std::vector<double>& sorted, double q) {
  const size_t n = sorted.size();
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
  rank = std::min(std::max<size_t>(rank, 1), n);
  return sorted[rank - 1];
}

void print_top(const std::vector<float>& out, int64_t n, int k_out, int top) {
  const int k = std::min(top, k_out);
  std::vector<int> idx(static_cast<size_t>(k_out));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = out.data() + i * k_out;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    std::printf("%lld:", static_cast<long long>(i));
    for (int j = 0; j < k; ++j) std::printf("%s %d (%.6g)", j ? "," : "", idx[j], static_cast<double>(row[idx[j]]));
    std::printf("\n");
  }
}

int run(const Options& o) {
  if (o.threads > 0) cpucnn_set_num_threads(o.threads);
  cpucnn_model* model = cpucnn_load(o.model.c_str());
  if (!model) throw std::runtime_error(cpucnn_last_error());
  struct Free {
    cpucnn_model* m;
    ~Free() { cpucnn_free(m); }
  } guard{model};
  int c = 0, h = 0, w = 0;
  cpucnn_input_shape(model, &c, &h, &w);
  const int k_out = cpucnn_output_size(model);

  const Array x = read_npy(o.input);
  const int64_t n = batch_of(x, c, h, w, o.input);
  if (n > INT32_MAX) throw std::runtime_error("'" + o.input + "' holds too many images for one batch");
  const int batch = static_cast<int>(n);
  std::vector<float> out(static_cast<size_t>(n) * static_cast<size_t>(k_out));
  if (cpucnn_predict(model, x.data.data(), batch, out.data()) != 0) throw std::runtime_error(cpucnn_last_error());

  if (o.top > 0) print_top(out, n, k_out, o.top);
  if (!o.output.empty()) write_npy(o.output, {n, k_out}, out.data());

  if (o.bench > 0) {
    using clock = std::chrono::steady_clock;
    const int warmup = std::min(10, std::max(1, o.bench / 10));
    for (int r = 0; r < warmup; ++r) cpucnn_predict(model, x.data.data(), batch, out.data());
    std::vector<double> ms(static_cast<size_t>(o.bench));
    for (int r = 0; r < o.bench; ++r) {
      const auto t0 = clock::now();
      if (cpucnn_predict(model, x.data.data(), batch, out.data()) != 0) throw std::runtime_error(cpucnn_last_error());
      ms[static_cast<size_t>(r)] = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    }
    const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
    std::sort(ms.begin(), ms.end());
    const double p50 = percentile(ms, 0.50);
    std::printf("bench: %d runs, batch %d: p50 %.4f ms, p90 %.4f ms, p99 %.4f ms (min %.4f, mean %.4f); %.1f images/s at p50; kernels %s\n",
                o.bench, batch, p50, percentile(ms, 0.90), percentile(ms, 0.99), ms.front(), mean,
                p50 > 0 ? 1000.0 * batch / p50 : 0.0, cpucnn_isa() ? cpucnn_isa() : "?");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!std::strcmp(argv[i], "--version")) {
      const char* isa = cpucnn_isa();
      std::printf("cpucnn-run %s (kernels: %s)\n", cpucnn_version(), isa ? isa : cpucnn_last_error());
      return 0;
    }
  }
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "cpucnn-run: %s\n\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpucnn-run: %s\n", e.what());
    return 1;
  }
}
