#include "ops/peak.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <vector>

#include "core/errors.hpp"
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "kernels/kernels.hpp"

namespace cpucnn {

namespace {

using ChainsFn = int64_t (*)(int64_t iters, float m, float a, float* sink);

// The calling thread's CPU time in seconds (wall time where there is no
// per-thread clock): time the OS gives to other processes is not counted.
double thread_seconds() {
#ifdef CLOCK_THREAD_CPUTIME_ID
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return static_cast<double>(ts.tv_sec) + 1e-9 * ts.tv_nsec;
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// `threads` threads each run fn(iters) at once (they start together after
// a barrier); the sum of their rates, each FLOPs over its own CPU time, in
// GFLOP/s. The longest of their times in *longest.
double run_once(ChainsFn fn, int threads, int64_t iters, double* longest) {
  std::vector<double> rate(static_cast<size_t>(threads), 0.0), took(static_cast<size_t>(threads), 0.0);
  std::vector<float> sink(static_cast<size_t>(threads) * 16, 0.0f);  // a cache line apart
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    const int id = thread_id();
#ifdef _OPENMP
#pragma omp barrier
#endif
    const double t0 = thread_seconds();
    const int64_t flops = fn(iters, 0.999999f, 1e-3f, &sink[static_cast<size_t>(id) * 16]);
    const double t = thread_seconds() - t0;
    took[id] = t;
    if (t > 0.0) rate[id] = static_cast<double>(flops) / t / 1e9;
  }
  *longest = *std::max_element(took.begin(), took.end());
  double total = 0.0;
  for (double r : rate) total += r;  // threads that did not run (no OpenMP) add 0
  return total;
}

}  // namespace

double fma_peak_gflops(const std::string& isa, int threads, double seconds) {
  ChainsFn fn = nullptr;
#if defined(__x86_64__)
  if (isa == "avx2") fn = fma_chains_avx2;
  else if (isa == "avx512") fn = fma_chains_avx512;
  else throw ValueError("fma_peak_gflops: isa must be 'avx2' or 'avx512', got '" + isa + "'");
#else
  // The FMA probes are x86 kernels (kernels/peak/avx2.cc, avx512.cc); none is built here.
  throw ValueError("fma_peak_gflops: the FMA peak probe exists for x86-64 only (avx2, avx512), got '" + isa + "'");
#endif
  const std::vector<std::string> avail = available_isas();
  if (std::find(avail.begin(), avail.end(), isa) == avail.end())
    throw ValueError("fma_peak_gflops: ISA '" + isa + "' is not supported by this CPU");
  if (threads < 1 || threads > 1024) throw ValueError("fma_peak_gflops: threads must be in [1, 1024]");
  if (!(seconds > 0.0 && seconds <= 60.0)) throw ValueError("fma_peak_gflops: seconds must be in (0, 60]");
  // Short runs (about a millisecond), many of them, the best kept: on a
  // shared machine a long run is almost surely preempted part-way, a short
  // one often is not.
  const double burst = 1e-3;
  double took = 0.0;
  int64_t iters = 1 << 10;
  for (;;) {
    run_once(fn, threads, iters, &took);
    if (took >= burst / 2 || iters >= (int64_t(1) << 30)) break;
    iters = took > 1e-7 ? std::max<int64_t>(iters * 2, static_cast<int64_t>(iters * burst / took)) : iters * 16;
  }
  double best = 0.0;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < 3 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds;
       ++r)
    best = std::max(best, run_once(fn, threads, iters, &took));
  return best;
}

}  // namespace cpucnn
