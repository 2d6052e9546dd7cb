#include "core/parallel.hpp"

#include <atomic>
#include <thread>

namespace cpucnn {

namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
std::atomic<int> g_threads{0};
}  // namespace

int get_num_threads() {
  int n = g_threads.load();
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n);
  }
  return n;
}

void set_num_threads(int n) {
#ifdef _OPENMP
  if (n <= 0) n = omp_get_num_procs();
#else
  n = 1;
#endif
  g_threads.store(n);
}

}  // namespace cpucnn
