#include "ops/scratch.hpp"

#include <new>
#include <stdexcept>

#include "core/limits.hpp"
#include "core/tensor.hpp"

namespace cpucnn {

namespace {

constexpr int64_t kAlign = 16;  // floats: 64 bytes
constexpr int kDepth = 4;       // frames alive at once on one thread

int64_t aligned(int64_t floats) { return (floats + kAlign - 1) / kAlign * kAlign; }

// One block per nesting depth, grown (never shrunk) to the largest frame
// that depth has held; released with the thread.
struct Arena {
  float* block[kDepth] = {};
  int64_t cap[kDepth] = {};
  int depth = 0;
  ~Arena() {
    for (float* p : block) aligned_free(p);
  }
};

Arena& arena() {
  thread_local Arena a;
  return a;
}

}  // namespace

int64_t ScratchLayout::shared(int64_t floats) {
  const int64_t at = shared_;
  shared_ = saturating_add(shared_, aligned(floats < 0 ? 0 : floats));
  return at;
}

int64_t ScratchLayout::per_thread(int64_t floats) {
  const int64_t at = thread_;
  thread_ = saturating_add(thread_, aligned(floats < 0 ? 0 : floats));
  return at;
}

int64_t ScratchLayout::total(int threads) const {
  return saturating_add(shared_, saturating_mul(thread_, threads < 1 ? 1 : threads));
}

ScratchFrame::ScratchFrame(const ScratchLayout& layout, int threads) {
  Arena& a = arena();
  if (a.depth >= kDepth) throw std::logic_error("scratch frames nested too deeply");
  const int64_t want = layout.total(threads);
  const int d = a.depth;
  if (want > a.cap[d]) {
    // Grow by half again at least, so alternating sizes settle quickly.
    const int64_t grow = saturating_add(a.cap[d], a.cap[d] / 2);
    const int64_t n = want > grow ? want : grow;
    float* p = aligned_alloc_floats(static_cast<size_t>(n));  // may throw std::bad_alloc
    aligned_free(a.block[d]);
    a.block[d] = p;
    a.cap[d] = n;
  }
  base_ = a.block[d];
  shared_ = layout.shared_floats();
  stride_ = layout.thread_floats();
  a.depth = d + 1;
}

ScratchFrame::~ScratchFrame() { --arena().depth; }

void release_scratch() {
  Arena& a = arena();
  if (a.depth != 0) throw std::logic_error("release_scratch with a frame alive");
  for (int d = 0; d < kDepth; ++d) {
    aligned_free(a.block[d]);
    a.block[d] = nullptr;
    a.cap[d] = 0;
  }
}

}  // namespace cpucnn
