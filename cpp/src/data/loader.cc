#include "data/loader.hpp"

#include <cstring>
#include <string>
#include <utility>

#include "core/errors.hpp"

namespace cpucnn::data {

BatchLoader::BatchLoader(LoaderConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.spec.validate();
  if (cfg_.batch_size <= 0) throw ValueError("data: batch_size must be positive");
  if (cfg_.workers < 0) throw ValueError("data: workers must be >= 0");
  if (cfg_.prefetch < 1) throw ValueError("data: prefetch must be >= 1");
  if (cfg_.n > 0 && cfg_.x == nullptr) throw ValueError("data: no samples");
  for (int64_t i : cfg_.order)
    if (i < 0 || i >= cfg_.n)
      throw ValueError("data: sample index " + std::to_string(i) + " out of range for " + std::to_string(cfg_.n) +
                       " samples");
  const int64_t m = static_cast<int64_t>(cfg_.order.size());
  num_batches_ = cfg_.drop_remainder ? m / cfg_.batch_size : (m + cfg_.batch_size - 1) / cfg_.batch_size;
  try {
    for (int i = 0; i < cfg_.workers; ++i) threads_.emplace_back([this] { work(); });
  } catch (...) {
    close();
    throw;
  }
}

BatchLoader::~BatchLoader() { close(); }

void BatchLoader::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  ready_.clear();
  failed_.clear();
}

void BatchLoader::make(int64_t b, Batch& out) const {
  const AugmentSpec& s = cfg_.spec;
  const int64_t lo = b * cfg_.batch_size;
  const int64_t hi = std::min<int64_t>(lo + cfg_.batch_size, static_cast<int64_t>(cfg_.order.size()));
  const int64_t in_bytes = s.in_numel() * (s.type == SourceType::u8 ? 1 : 4);
  const int64_t out_numel = s.out_numel();
  out.index = b;
  out.size = hi - lo;
  out.x.resize(static_cast<size_t>(out.size * out_numel));
  out.y.resize(static_cast<size_t>(cfg_.y ? out.size * cfg_.y_row_bytes : 0));
  for (int64_t i = lo; i < hi; ++i) {
    const int64_t k = cfg_.order[static_cast<size_t>(i)];
    make_sample(s, cfg_.x + k * in_bytes, cfg_.epoch, static_cast<uint64_t>(k + cfg_.index_offset),
                out.x.data() + (i - lo) * out_numel);
    if (cfg_.y)
      std::memcpy(out.y.data() + (i - lo) * cfg_.y_row_bytes, cfg_.y + k * cfg_.y_row_bytes,
                  static_cast<size_t>(cfg_.y_row_bytes));
  }
}

void BatchLoader::work() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] {
        return stop_ || next_make_ >= num_batches_ || next_make_ < next_take_ + cfg_.prefetch;
      });
      if (stop_ || next_make_ >= num_batches_) return;
      b = next_make_++;
    }
    Batch out;
    std::exception_ptr err;
    try {
      make(b, out);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (err)
        failed_[b] = err;
      else
        ready_[b] = std::move(out);
    }
    ready_cv_.notify_all();
  }
}

bool BatchLoader::next(Batch& out) {
  if (cfg_.workers == 0) {
    if (stop_ || next_take_ >= num_batches_) return false;
    make(next_take_++, out);
    return true;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_ || next_take_ >= num_batches_) return false;
  const int64_t b = next_take_;
  ready_cv_.wait(lock, [&] { return stop_ || ready_.count(b) || failed_.count(b); });
  if (stop_) return false;
  auto f = failed_.find(b);
  if (f != failed_.end()) {
    std::exception_ptr err = f->second;
    lock.unlock();
    close();
    std::rethrow_exception(err);
  }
  auto it = ready_.find(b);
  out = std::move(it->second);
  ready_.erase(it);
  ++next_take_;
  lock.unlock();
  work_cv_.notify_all();
  return true;
}

}  // namespace cpucnn::data
