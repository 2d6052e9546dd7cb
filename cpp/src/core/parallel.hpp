// Thin OpenMP helpers: the thread count and the thread id, usable when the
// library is built without OpenMP (then everything runs on one thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

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

// Inside any parallel construct, one that runs on a single thread
// (`if (false)`, a team of one) included.
inline bool in_region() {
#ifdef _OPENMP
  return omp_get_level() > 0;
#else
  return false;
#endif
}

// An exception must not leave an OpenMP region: that is std::terminate (an
// abort, not a MemoryError). Work inside a region runs through run(), which
// keeps the first exception (operators plan their scratch before their
// regions, so their kernels throw nothing; this is the safety net)
// and makes the rest of the team's work a no-op; rethrow() after the region,
// on the calling thread, throws it. run() never spans a barrier, so a thread
// that failed still reaches every barrier its team waits at.
class RegionError {
 public:
  template <class F>
  void run(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

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
  RegionError err;
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
#endif
  for (int64_t c = 0; c < chunks; ++c) err.run([&] { f(c * n / chunks, (c + 1) * n / chunks); });
  err.rethrow();
}

}  // namespace cpucnn
