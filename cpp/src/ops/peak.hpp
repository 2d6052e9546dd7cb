// The machine's measured FMA peak, for benchmarks: GEMM speed is reported as
// a fraction of it. Measured with kernels/peak/<isa>.cc (independent FMA
// chains), never assumed from a clock frequency.
#pragma once

#include <string>

namespace cpucnn {

// GFLOP/s of `threads` threads each running FMA chains of `isa` ("avx2" or
// "avx512"; must be runnable here) at once: per run, the sum of the threads'
// rates, each over its own CPU time (so time a shared machine gives to other
// processes is not counted); the best of runs of about a millisecond,
// repeated for `seconds`. Throws ValueError for another ISA, one this CPU
// cannot run, threads outside [1, 1024] or seconds outside (0, 60].
double fma_peak_gflops(const std::string& isa, int threads, double seconds);

}  // namespace cpucnn
