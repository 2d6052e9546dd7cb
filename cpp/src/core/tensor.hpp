// The one tensor type: contiguous, 64-byte aligned float32 with a shape.
// A tensor keeps its allocation when resized to an equal or smaller size, so
// buffers reused across training steps are allocated once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cpucnn {

using Dims = std::vector<int64_t>;

// "(8, 3, 32, 32)"
std::string shape_str(const Dims& dims);
// The largest tensor (and the largest size setting) accepted: 2^40 elements
// (4 TiB of floats). Keeps every size product far from int64 overflow.
constexpr int64_t kMaxNumel = int64_t(1) << 40;

// Product of dims; throws ValueError when a dim is negative or it exceeds kMaxNumel.
int64_t checked_numel(const Dims& dims, const char* what = "shape");

// 64-byte aligned float storage.
float* aligned_alloc_floats(size_t n);
// Fault injection for tests: the n-th allocation from now (0: the next one)
// throws std::bad_alloc, once; n < 0 turns it off.
void fail_allocation_after(int64_t n);
// Testing: allocations made inside an OpenMP parallel region so far (operators
// reserve their scratch before their regions: this stays 0).
int64_t allocations_in_parallel_regions();
void aligned_free(void* p);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Dims& shape) { resize(shape); }
  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  ~Tensor() { aligned_free(data_); }

  // Sets the shape; reallocates only when the capacity is too small. Contents
  // are unspecified after a resize that grows.
  void resize(const Dims& shape);
  void zero();
  void fill(float v);

  float* data() { return data_; }
  const float* data() const { return data_; }
  const Dims& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }

 private:
  Dims shape_;
  float* data_ = nullptr;
  int64_t numel_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace cpucnn
