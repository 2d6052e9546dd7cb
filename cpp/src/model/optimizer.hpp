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
  // One update from the parameters' current gradients (frozen ones are
  // skipped: their values and state stay as they are).
  virtual void step() = 0;
  // clipnorm (global norm over the unfrozen gradients, as
  // torch.nn.utils.clip_grad_norm_) then clipvalue (clip_grad_value_); the
  // model calls it before step().
  void clip_gradients();
  virtual json::Value config() const = 0;   // {"type": "SGD", "lr": ..., ...}
  // Named state tensors, for saving/restoring: {"momentum_buffer", tensors...}.
  virtual std::vector<std::pair<std::string, std::vector<Tensor>*>> state() = 0;
  virtual int64_t steps() const { return steps_; }
  virtual void set_steps(int64_t s) { steps_ = s; }

  float lr = 0.01f;
  float clipnorm = 0.0f, clipvalue = 0.0f;  // 0: off

 protected:
  // Reads clipnorm/clipvalue from a config; writes them into one (when set).
  void read_clip(const json::Value& cfg, const char* opt);
  void write_clip(json::Value& c) const;
  std::vector<Param*> params_;
  int64_t steps_ = 0;
};

// A float setting as JSON: the shortest decimal that reads back as the same
// float (0.001f -> 0.001, not 0.0010000000474974513).
double shortest(float v);

// From {"type": "SGD"|"Adam"|"AdamW"|"RMSprop", ...}; throws ValueError on bad settings.
std::unique_ptr<Optimizer> make_optimizer(const json::Value& cfg);

}  // namespace cpucnn
