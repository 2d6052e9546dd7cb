// Optimizers with PyTorch's update rules. State (momentum buffers, Adam
// moments) lives here, one tensor per trainable parameter, in the model's
// parameter order.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/layer.hpp"
#include "model/json.hpp"

namespace cpucnn {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Binds to the trainable parameters (creates zeroed state).
  virtual void attach(const std::vector<Param*>& params) = 0;
  // One update from the parameters' current gradients.
  virtual void step() = 0;
  virtual json::Value config() const = 0;   // {"type": "SGD", "lr": ..., ...}
  // Named state tensors, for saving/restoring: {"momentum_buffer", tensors...}.
  virtual std::vector<std::pair<std::string, std::vector<Tensor>*>> state() = 0;
  virtual int64_t steps() const { return steps_; }
  virtual void set_steps(int64_t s) { steps_ = s; }

  float lr = 0.01f;

 protected:
  std::vector<Param*> params_;
  int64_t steps_ = 0;
};

// From {"type": "SGD"|"Adam", ...}; throws ValueError on bad settings.
std::unique_ptr<Optimizer> make_optimizer(const json::Value& cfg);

}  // namespace cpucnn
