// Per-thread scratch memory, grown on first use and then reused, so steady
// state training allocates nothing. Each OS thread (including OpenMP workers)
// has its own arena; slots separate buffers that are live at the same time.
#pragma once

#include <cstddef>

namespace cpucnn {

class Workspace {
 public:
  enum Slot { kGemmA, kGemmB, kCol, kCol2, kCol3, kTmp, kTmp2, kSlots };
  Workspace() = default;
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // At least n floats, 64-byte aligned; contents unspecified.
  float* get(Slot slot, size_t n);

 private:
  float* ptr_[kSlots] = {};
  size_t cap_[kSlots] = {};
};

Workspace& thread_workspace();

}  // namespace cpucnn
