#include "core/parallel.hpp"

#include <pthread.h>

#include <atomic>

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

// libgomp's thread pool does not survive fork(): a child that opens a
// parallel region of more than one thread waits forever for workers that do
// not exist (Python's multiprocessing forks by default on Linux). A forked
// child therefore runs everything on one thread, as PyTorch does.
std::atomic<bool> g_forked{false};
void on_fork_child() {
  g_forked.store(true);
  g_threads.store(1);
}
[[maybe_unused]] const bool g_atfork_registered = [] { return pthread_atfork(nullptr, nullptr, on_fork_child) == 0; }();
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
  if (g_forked.load()) n = 1;
  g_threads.store(n);
}

bool forked_child() { return g_forked.load(); }

}  // namespace cpucnn
