// The batch loader behind cpucnn.data: worker threads (std::thread) make the
// batches of one epoch ahead of the consumer, at most `prefetch` batches ahead,
// and hand them over in order. The workers never touch Python; the consumer
// waits with the GIL released (the binding's business). A worker's exception
// is handed to the consumer when it reaches the batch that failed. Closing (or
// destroying) the loader stops and joins the workers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.hpp"

namespace cpucnn::data {

struct LoaderConfig {
  AugmentSpec spec;
  const uint8_t* x = nullptr;     // n samples of spec.in_numel() elements each, C-contiguous
  int64_t n = 0;
  const uint8_t* y = nullptr;     // n rows of y_row_bytes each (nullptr: no labels)
  int64_t y_row_bytes = 0;
  std::vector<int64_t> order;     // the epoch's sample indices, in batch order
  int64_t index_offset = 0;       // added to a sample's index for its random draws
  int64_t batch_size = 1;
  bool drop_remainder = false;
  int workers = 1;                // 0: each batch is made by the consumer when asked
  int prefetch = 2;               // batches made ahead of the consumer (>= 1)
  uint64_t epoch = 0;
};

struct Batch {
  int64_t index = -1;
  int64_t size = 0;
  std::vector<float> x;           // size * spec.out_numel()
  std::vector<uint8_t> y;         // size * y_row_bytes
};

class BatchLoader {
 public:
  explicit BatchLoader(LoaderConfig cfg);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t num_batches() const { return num_batches_; }
  const LoaderConfig& config() const { return cfg_; }
  // The next batch in order; false after the last. Rethrows a worker's error.
  bool next(Batch& out);
  // Stops the workers and joins them; idempotent. next() then returns false.
  void close();
  int live_workers() const { return static_cast<int>(threads_.size()); }

 private:
  void make(int64_t b, Batch& out) const;
  void work();

  LoaderConfig cfg_;
  int64_t num_batches_ = 0;
  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  int64_t next_make_ = 0, next_take_ = 0;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace cpucnn::data
