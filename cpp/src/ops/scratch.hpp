// The scratch memory of one operator call, planned before it runs. An
// operator describes what it needs as a ScratchLayout when it plans (parts
// shared by the call, and parts each thread of its team owns); the call
// reserves all of it at once, on the calling thread and before any parallel
// region, as a ScratchFrame. That reservation is the only allocation the
// call makes: out of memory is a std::bad_alloc (MemoryError) there, never
// inside a region, and the kernels then only take pointers.
//
// Frames come from an arena of the calling thread (so concurrent calls from
// several threads never share memory) and nest: an operator that calls
// another one (a convolution calling the GEMM) gets memory of its own.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cpucnn {

class ScratchLayout {
 public:
  // Each returns the part's offset (64-byte aligned) in its area.
  int64_t shared(int64_t floats);      // one for the call
  int64_t per_thread(int64_t floats);  // one for each thread of the team
  int64_t shared_floats() const { return shared_; }
  int64_t thread_floats() const { return thread_; }
  // Floats in all for a team of `threads` (saturates; an impossible size
  // fails to allocate).
  int64_t total(int threads) const;

 private:
  int64_t shared_ = 0, thread_ = 0;
};

class ScratchFrame {
 public:
  // Reserves layout.total(threads) floats (may throw std::bad_alloc).
  ScratchFrame(const ScratchLayout& layout, int threads);
  ~ScratchFrame();
  ScratchFrame(const ScratchFrame&) = delete;
  ScratchFrame& operator=(const ScratchFrame&) = delete;

  float* shared(int64_t offset) const { return base_ + offset; }
  // Thread t's part at `offset` (t < the team size reserved for).
  float* thread(int t, int64_t offset) const { return base_ + shared_ + t * stride_ + offset; }
  int64_t thread_stride() const { return stride_; }

 private:
  float* base_ = nullptr;
  int64_t shared_ = 0, stride_ = 0;
};

// Frees the calling thread's arena (tests of out-of-memory paths: the next
// calls allocate again). Not while one of its frames is alive.
void release_scratch();

}  // namespace cpucnn
