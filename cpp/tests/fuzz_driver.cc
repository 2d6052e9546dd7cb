// A libFuzzer-compatible driver for compilers without -fsanitize=fuzzer: runs every seed file once,
// then random mutations of them (bit flips, byte sets, interesting bytes, truncation, chunk
// insertion/deletion/duplication, digit edits in the JSON header) through LLVMFuzzerTestOneInput.
//
//   fuzz_load_driver [-runs=N] [-max_total_time=S] [-seed=K] CORPUS_DIR_OR_FILE...
//
// Crashes and sanitizer reports end the process like under libFuzzer; the input that crashed is
// then written to ./crash-input (or $CPUCNN_FUZZ_CRASH_FILE) from a signal handler or the
// sanitizer's death callback, so it can be replayed with `fuzz_load_driver -runs=0 FILE`.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#if defined(__SANITIZE_ADDRESS__)
#define CPUCNN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CPUCNN_ASAN 1
#endif
#endif

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

using Bytes = std::vector<uint8_t>;

// The input being run, for the crash handlers (plain globals: read from a signal handler).
const uint8_t* g_current = nullptr;
size_t g_current_size = 0;
char g_crash_file[4096] = "crash-input";

void save_current_input() {
  if (!g_current) return;
  const int fd = open(g_crash_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  size_t done = 0;
  while (done < g_current_size) {
    const ssize_t n = write(fd, g_current + done, g_current_size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  const char msg[] = "fuzz_load_driver: crashing input saved to ";
  (void)!write(2, msg, sizeof(msg) - 1);
  (void)!write(2, g_crash_file, std::strlen(g_crash_file));
  (void)!write(2, "\n", 1);
}

void on_fatal_signal(int sig) {
  save_current_input();
  signal(sig, SIG_DFL);
  raise(sig);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void add_seeds(const std::string& path, std::vector<Bytes>& corpus) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "fuzz_load_driver: no such file or directory: %s\n", path.c_str());
    std::exit(2);
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    std::vector<std::string> names;
    while (dirent* e = d ? readdir(d) : nullptr)
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    if (d) closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      struct stat s2;
      if (stat(n.c_str(), &s2) == 0 && S_ISREG(s2.st_mode)) corpus.push_back(read_bytes(n));
    }
  } else {
    corpus.push_back(read_bytes(path));
  }
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : gen_(seed) {}

  Bytes mutate(const Bytes& in) {
    Bytes b = in;
    const int n = 1 + static_cast<int>(below(8));
    for (int i = 0; i < n; ++i) step(b);
    return b;
  }

 private:
  size_t below(size_t n) { return n ? static_cast<size_t>(gen_() % n) : 0; }

  // The JSON header region of a safetensors file: bytes [8, 8 + length).
  size_t header_end(const Bytes& b) {
    if (b.size() < 8) return b.size();
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = len << 8 | b[static_cast<size_t>(i)];
    return len > b.size() - 8 ? b.size() : static_cast<size_t>(8 + len);
  }

  void step(Bytes& b) {
    static const uint8_t kInteresting[] = {0, 1, 0x7f, 0x80, 0xff, '0', '9', '-', '"', ',', ':', '[', ']', '{', '}', 'e', '.'};
    static const char* kNumbers[] = {"0", "-1", "1", "2", "65536", "2147483647", "4294967296", "9223372036854775807",
                                     "1e300", "-0", "0.5", "100000", "3"};
    switch (below(10)) {
      case 0:
        if (!b.empty()) b[below(b.size())] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:
        if (!b.empty()) b[below(b.size())] = static_cast<uint8_t>(gen_());
        break;
      case 2:
        if (!b.empty()) b[below(b.size())] = kInteresting[below(sizeof(kInteresting))];
        break;
      case 3:
        if (!b.empty()) b.resize(below(b.size()));
        break;
      case 4: {  // delete a range
        if (b.empty()) break;
        const size_t at = below(b.size()), len = 1 + below(std::min<size_t>(16, b.size() - at));
        b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + len));
        break;
      }
      case 5: {  // insert random bytes
        const size_t at = below(b.size() + 1), len = 1 + below(8);
        Bytes ins(len);
        for (auto& c : ins) c = static_cast<uint8_t>(gen_());
        b.insert(b.begin() + static_cast<long>(at), ins.begin(), ins.end());
        break;
      }
      case 6: {  // duplicate a chunk
        if (b.empty()) break;
        const size_t from = below(b.size()), len = 1 + below(std::min<size_t>(32, b.size() - from));
        const Bytes chunk(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + len));
        const size_t at = below(b.size() + 1);
        b.insert(b.begin() + static_cast<long>(at), chunk.begin(), chunk.end());
        break;
      }
      case 7:
      case 8: {  // replace a number in the JSON header, keeping the header length consistent
        const size_t end = header_end(b);
        if (end <= 8) break;
        size_t at = 8 + below(end - 8);
        while (at < end && !(b[at] >= '0' && b[at] <= '9')) ++at;
        if (at >= end) break;
        size_t stop = at;
        while (stop < end && ((b[stop] >= '0' && b[stop] <= '9') || b[stop] == '.' || b[stop] == 'e')) ++stop;
        const std::string num = kNumbers[below(sizeof(kNumbers) / sizeof(kNumbers[0]))];
        b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(stop));
        b.insert(b.begin() + static_cast<long>(at), num.begin(), num.end());
        const uint64_t len = end - 8 - (stop - at) + num.size();
        for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(len >> (8 * i));
        break;
      }
      default: {  // change the declared header length
        if (b.size() < 8) break;
        b[below(8)] = static_cast<uint8_t>(gen_());
        break;
      }
    }
  }

  std::mt19937_64 gen_;
};

}  // namespace

int main(int argc, char** argv) {
  long runs = 10000, seed = 1;
  double max_time = 0;
  std::vector<Bytes> corpus;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("-runs=", 0) == 0) {
      runs = std::atol(a.c_str() + 6);
    } else if (a.rfind("-seed=", 0) == 0) {
      seed = std::atol(a.c_str() + 6);
    } else if (a.rfind("-max_total_time=", 0) == 0) {
      max_time = std::atof(a.c_str() + 16);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "fuzz_load_driver: ignoring option %s\n", a.c_str());
    } else {
      inputs.push_back(a);
    }
  }
#ifndef CPUCNN_ASAN
  // Without ASan, cap the address space so a file asking for absurd allocations gets bad_alloc
  // (an error return) instead of the out-of-memory killer; libFuzzer's -rss_limit_mb plays this
  // part in the sanitizer build.
  struct rlimit lim = {size_t(4) << 30, size_t(4) << 30};
  setrlimit(RLIMIT_AS, &lim);
#endif
  LLVMFuzzerInitialize(&argc, &argv);
  for (const auto& p : inputs) add_seeds(p, corpus);
  if (corpus.empty()) corpus.push_back(Bytes());
  const char* crash_env = std::getenv("CPUCNN_FUZZ_CRASH_FILE");
  if (crash_env && *crash_env) std::snprintf(g_crash_file, sizeof(g_crash_file), "%s", crash_env);
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) signal(sig, on_fatal_signal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_current_input);

  auto run_one = [&](const Bytes& b) {
    g_current = b.data();
    g_current_size = b.size();
    LLVMFuzzerTestOneInput(b.data(), b.size());
    g_current = nullptr;
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& b : corpus) run_one(b);
  Mutator mut(static_cast<uint64_t>(seed));
  long done = 0;
  for (; done < runs || max_time > 0; ++done) {
    if (max_time > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= max_time)
      break;
    if (max_time <= 0 && done >= runs) break;
    run_one(mut.mutate(corpus[static_cast<size_t>(done) % corpus.size()]));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fuzz_load_driver: %zu seeds + %ld mutated inputs in %.1f s, no crash\n", corpus.size(), done, secs);
  return 0;
}
