// Thin OpenMP helpers: the thread count and the thread id, usable when the
// library is built without OpenMP (then everything runs on one thread).
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpucnn {

int get_num_threads();
// n <= 0: all cores. In a process forked from one that used cpucnn the
// count stays 1 (OpenMP's thread pool does not survive fork()).
void set_num_threads(int n);
bool forked_child();

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

// Runs f(begin, end) over [0, n) split into at most get_num_threads()
// contiguous ranges of at least `grain` items (one range: no threads).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  int64_t chunks = grain > 0 ? n / grain : n;
  const int64_t threads = get_num_threads();
  if (chunks > threads) chunks = threads;
  if (chunks <= 1 || in_parallel()) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
#endif
  for (int64_t c = 0; c < chunks; ++c) f(c * n / chunks, (c + 1) * n / chunks);
}

}  // namespace cpucnn
