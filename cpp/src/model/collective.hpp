// Sums across the processes of a data-parallel job. The core has no transport
// of its own: the Python package implements Collective with MPI's allreduce
// (mpi4py, cpucnn.distributed). Layers whose training statistics span the
// global batch (BatchNorm2D with sync_batchnorm) call it between their
// parallel regions, never inside one.
#pragma once

#include <cstdint>

namespace cpucnn {

class Collective {
 public:
  virtual ~Collective() = default;
  // Sums values[0, n) elementwise over every process, in place. Every process
  // calls it the same number of times, with the same n, in the same order.
  virtual void allreduce_sum(double* values, int64_t n) = 0;
};

// Takes the gradients of a data-parallel step as the backward pass finishes
// them (to start their allreduce while the rest of the backward runs): see
// Sequential::compute_gradients_overlapped.
class GradientSink {
 public:
  virtual ~GradientSink() = default;
  // [offset, offset + count) of Sequential::gradient_buffer() is final.
  virtual void ready(int64_t offset, int64_t count) = 0;
};

// A layer whose batch statistics can be computed over the global batch.
class SyncsStatistics {
 public:
  virtual ~SyncsStatistics() = default;
  // null: statistics of this process's samples only (the default).
  // Otherwise forward (training) sums its per-channel statistics over every
  // process, and backward the per-channel sums of its output gradient, each
  // weighted by this process's share of the global batch (the gradients of a
  // data-parallel step are averaged with those weights). A process with no
  // samples in a step still calls forward and backward with n = 0 (and null
  // pointers), so every process makes the same calls.
  virtual void set_collective(Collective* c) = 0;
};

}  // namespace cpucnn
