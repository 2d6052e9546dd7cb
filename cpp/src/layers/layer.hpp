// The layer interface. A layer knows its settings, infers its output shape
// from its input shape, owns its parameters, and runs forward/backward by
// calling ops and kernels; it does no SIMD itself.
//
// Shapes here are per sample: (C, H, W) or (F,). Batches are NCHW / NF.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "core/tensor.hpp"
#include "model/json.hpp"

namespace cpucnn {

struct Param {
  std::string name;      // "weight", "bias", "running_mean", ...
  Dims shape;            // PyTorch's layout; known after build, allocated by allocate()
  Tensor value;          // PyTorch's layout
  Tensor grad;           // same shape; unused when !trainable
  bool trainable = true; // learnable (has a gradient); false for buffers such as running_mean
  // Its layer is frozen (Python's layer.trainable = False): the optimizer
  // leaves it alone and the layer need not compute its gradient.
  bool frozen = false;
  // Its dtype in model files: "F32", or "I8" for int8 weights (held here as
  // floats with integer values in [-127, 127]; written and read as int8).
  std::string dtype = "F32";
};

struct ForwardContext {
  bool training = false;
  uint64_t seed = 0;     // model seed, for dropout
  uint64_t step = 0;     // training step counter, for dropout
  // The parameters' version (Sequential::version()): weights prepared for
  // inference are remade when it moves, never compared value by value.
  uint64_t version = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;

  // "Conv2D", "Dense", ... (the name in model files and the Python API).
  virtual const char* type() const = 0;
  // Settings in a short form for messages: "Conv2D(16, 3x3)".
  virtual std::string describe() const { return type(); }
  // "layer 2 Conv2D(16, 3x3)" once the model has set the index.
  std::string label() const;

  // Checks the input shape against the settings, creates the parameters and
  // returns the output shape. Throws ValueError naming the layer and shapes.
  virtual Dims build(const Dims& in) = 0;
  // Allocates the parameters build() declared (zeroed), once their shapes
  // have been checked (a model file is validated before anything is allocated).
  void allocate();
  // PyTorch's default initialisation, from the model's generator.
  virtual void reset_parameters(Rng&) {}

  // Forward over a batch of n samples (x: n x in_shape, y: n x out_shape).
  // With ctx.training false it must not modify the layer's parameters or
  // settings (inference may run from several threads at once; a cache of
  // prepared weights must be thread-safe).
  virtual void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) = 0;
  // Backward: given x, y of the last training forward and dy, writes the
  // parameters' gradients (overwriting) and dx unless dx is null.
  virtual void backward(const float* x, const float* y, const float* dy, float* dx, int64_t n) = 0;

  // The settings as JSON (the "architecture" in model files), with "type".
  virtual json::Value config() const = 0;
  // Checks parameter values a model file brought in (int8 layers: weights in
  // range, scales positive); throws ValueError naming the layer.
  virtual void validate_params() const {}
  // Its output is its input, unchanged (int8 Flatten, a ReLU already fused):
  // the model runs no forward for it.
  virtual bool is_view() const { return false; }
  // Multiply-accumulates per sample of the forward pass.
  virtual int64_t macs() const { return 0; }
  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param* find_param(const std::string& name);

  // layer.trainable = False: its parameters are frozen (the optimizer skips
  // them, backward skips their gradients where it can). Set after build().
  void set_frozen(bool f);
  bool frozen() const { return frozen_; }
  // Has learnable parameters that are not frozen.
  bool learns() const;

  int index = -1;
  Dims in_shape, out_shape;

 protected:
  // Declares a parameter (value and, when trainable, grad) of the given shape.
  Param& add_param(const std::string& name, const Dims& shape, bool trainable = true);
  // "layer 2 Conv2D(16, 3x3): " + msg
  [[noreturn]] void fail(const std::string& msg) const;
  int64_t in_numel() const { return checked_numel(in_shape); }
  int64_t out_numel() const { return checked_numel(out_shape); }

  std::vector<Param> params_;
  bool frozen_ = false;
};

// Kernel sizes, strides, paddings, dilations and groups are at most this, so
// shape arithmetic on them cannot overflow.
constexpr int64_t kMaxSetting = int64_t(1) << 24;

// Builds a layer from its config (as produced by Layer::config()).
std::unique_ptr<Layer> make_layer(const json::Value& config);

// Helpers for reading settings from JSON with clear errors.
int64_t cfg_int(const json::Value& cfg, const char* key, int64_t fallback);
double cfg_num(const json::Value& cfg, const char* key, double fallback);
bool cfg_bool(const json::Value& cfg, const char* key, bool fallback);
// A pair such as kernel_size: an int or a [h, w] list.
void cfg_pair(const json::Value& cfg, const char* key, int64_t fallback, int64_t* a, int64_t* b);

}  // namespace cpucnn
