// Per-thread scratch memory, grown on first use and then reused, so steady
// state training allocates nothing. Each OS thread (including OpenMP workers)
// has its own arena; slots separate buffers that are live at the same time.
#pragma once

#include <cstddef>

namespace cpucnn {

class Workspace {
 public:
  // kKernel: the scratch a kernel takes as an argument (kernels/scratch.cc).
  enum Slot { kGemmA, kGemmB, kCol, kCol2, kCol3, kTmp, kTmp2, kKernel, kSlots };
  Workspace() = default;
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // At least n floats, 64-byte aligned; contents unspecified.
  float* get(Slot slot, size_t n);
  // Frees every slot (tests: the next get() allocates again).
  void release();

 private:
  float* ptr_[kSlots] = {};
  size_t cap_[kSlots] = {};
};

Workspace& thread_workspace();
// Releases the calling thread's workspace and those of an OpenMP team of
// `threads` (tests of out-of-memory paths: workspaces grow again).
void release_thread_workspaces(int threads);

}  // namespace cpucnn
