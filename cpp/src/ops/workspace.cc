#include "ops/workspace.hpp"

#include "core/tensor.hpp"

namespace cpucnn {

Workspace::~Workspace() {
  for (float* p : ptr_) aligned_free(p);
}

float* Workspace::get(Slot slot, size_t n) {
  if (n > cap_[slot]) {
    size_t grow = cap_[slot] + cap_[slot] / 2;
    size_t want = n > grow ? n : grow;
    float* p = aligned_alloc_floats(want);
    aligned_free(ptr_[slot]);
    ptr_[slot] = p;
    cap_[slot] = want;
  }
  return ptr_[slot];
}

void Workspace::release() {
  for (int s = 0; s < kSlots; ++s) {
    aligned_free(ptr_[s]);
    ptr_[s] = nullptr;
    cap_[s] = 0;
  }
}

void release_thread_workspaces(int threads) {
  thread_workspace().release();
#pragma omp parallel num_threads(threads)
  thread_workspace().release();
}

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

}  // namespace cpucnn
