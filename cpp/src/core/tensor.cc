#include "core/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>

#include "core/errors.hpp"
#include "core/parallel.hpp"

namespace cpucnn {

std::string shape_str(const Dims& dims) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) os << ", ";
    os << dims[i];
  }
  if (dims.size() == 1) os << ',';
  os << ')';
  return os.str();
}

int64_t checked_numel(const Dims& dims, const char* what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) throw ValueError(std::string(what) + " " + shape_str(dims) + " has a negative size");
    if (d != 0 && n > kMaxNumel / d)
      throw ValueError(std::string(what) + " " + shape_str(dims) + " is too large (more than 2^40 elements)");
    n *= d;
  }
  return n;
}

namespace {
std::atomic<int64_t> g_fail_after{-1};
}  // namespace

void fail_allocation_after(int64_t n) { g_fail_after.store(n < 0 ? -1 : n); }

namespace {
std::atomic<int64_t> g_region_allocs{0};
}  // namespace

int64_t allocations_in_parallel_regions() { return g_region_allocs.load(); }

float* aligned_alloc_floats(size_t n) {
  if (n == 0) n = 1;
  if (in_region()) g_region_allocs.fetch_add(1, std::memory_order_relaxed);
  if (n > static_cast<size_t>(kMaxNumel)) throw std::bad_alloc();
  if (g_fail_after.load(std::memory_order_relaxed) >= 0 && g_fail_after.fetch_sub(1) == 0) throw std::bad_alloc();
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}

void aligned_free(void* p) { std::free(p); }

Tensor::Tensor(const Tensor& other) {
  resize(other.shape_);
  if (numel_) std::memcpy(data_, other.data_, numel_ * sizeof(float));
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) {
    resize(other.shape_);
    if (numel_) std::memcpy(data_, other.data_, numel_ * sizeof(float));
  }
  return *this;
}

Tensor::Tensor(Tensor&& o) noexcept
    : shape_(std::move(o.shape_)), data_(o.data_), numel_(o.numel_), capacity_(o.capacity_) {
  o.data_ = nullptr;
  o.numel_ = o.capacity_ = 0;
}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    aligned_free(data_);
    shape_ = std::move(o.shape_);
    data_ = o.data_;
    numel_ = o.numel_;
    capacity_ = o.capacity_;
    o.data_ = nullptr;
    o.numel_ = o.capacity_ = 0;
  }
  return *this;
}

void Tensor::resize(const Dims& shape) {
  int64_t n = checked_numel(shape, "tensor shape");
  if (n > capacity_) {
    float* p = aligned_alloc_floats(static_cast<size_t>(n));
    aligned_free(data_);
    data_ = p;
    capacity_ = n;
  }
  shape_ = shape;
  numel_ = n;
}

void Tensor::zero() {
  if (numel_) std::memset(data_, 0, numel_ * sizeof(float));
}

void Tensor::fill(float v) { std::fill(data_, data_ + numel_, v); }

}  // namespace cpucnn
