// A sequential model: the layers, their activation buffers, the loss, the
// optimizer and the training step. All state lives here; the Python API and
// the C API are thin views of it.
#pragma once

#include <functional>
#include <memory>
#include <atomic>
#include <string>
#include <vector>

#include "core/rwlock.hpp"
#include "layers/layer.hpp"
#include "model/collective.hpp"
#include "model/json.hpp"
#include "model/optimizer.hpp"

namespace cpucnn {

struct StepResult {
  double loss = 0.0;
  int64_t correct = 0;
};

struct EvalResult {
  double loss_sum = 0.0;   // sum of per-batch mean losses weighted by batch size
  int64_t correct = 0;     // top-1
  int64_t top5 = 0;
  int64_t count = 0;
};

class Sequential {
 public:
  // Called for each parameter after its layer's shapes are known and before
  // anything is allocated (the model-file loader checks the file with it).
  using ParamCheck = std::function<void(const Layer&, const Param&)>;

  // arch: {"input_shape": [C, H, W], "layers": [{"type": ...}, ...]}.
  // Without `check` the parameters get PyTorch's default initialisation from
  // `seed`; with it they are left zeroed for the caller to fill.
  Sequential(const json::Value& arch, uint64_t seed, const ParamCheck& check = nullptr);

  json::Value architecture() const;
  const Dims& input_shape() const { return input_shape_; }
  const Dims& output_shape() const { return layers_.back()->out_shape; }
  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_.at(i); }
  const Layer& layer(size_t i) const { return *layers_.at(i); }
  std::vector<Param*> trainable_params();
  // layer.trainable: false freezes layer i's parameters (see Layer::set_frozen);
  // takes effect at the next training step. Saved in the architecture.
  void set_trainable(size_t i, bool trainable);
  uint64_t seed() const { return seed_; }

  void compile(const std::string& loss, const json::Value& optimizer);
  bool compiled() const { return optimizer_ != nullptr; }
  const std::string& loss_name() const { return loss_; }
  Optimizer* optimizer() { return optimizer_.get(); }
  uint64_t step_count() const { return step_; }
  void set_step_count(uint64_t s) { step_ = s; }

  // Throws ValueError unless `batch_shape` is (N, *input_shape).
  void check_input(const Dims& batch_shape) const;
  // Throws ValueError for labels outside [0, classes) or targets of the wrong size.
  void check_labels(const int64_t* labels, int64_t n) const;
  // Throws ValueError naming the first sample holding NaN or Inf.
  static void check_finite(const float* x, int64_t n, int64_t per_sample, const char* what);

  // One training step on n samples: forward, loss, backward, update.
  // labels (n) for cross_entropy, or (labels null) probability targets
  // (n x outputs); targets (n x outputs) for mse. weights (n, or null): the
  // loss is sum_i w_i loss_i / n (Keras's sample_weight).
  StepResult train_step(const float* x, int64_t n, const int64_t* labels, const float* targets,
                        const float* weights = nullptr);
  // train_step in two halves, for data-parallel training (the same arithmetic:
  // train_step is exactly compute_gradients then apply_gradients).
  // compute_gradients: forward, loss and backward, leaving in each trainable
  // parameter's grad the gradient of the batch's mean loss.
  StepResult compute_gradients(const float* x, int64_t n, const int64_t* labels, const float* targets,
                               const float* weights = nullptr);
  // compute_gradients that also packs the gradients (times pack_scale, as
  // pack_gradients) into gradient_buffer() while the backward pass runs: each
  // time the finished layers (the last ones first) hold bucket_floats or more
  // not yet handed over, sink.ready() gets that range. The ranges are those of
  // gradient_buckets(bucket_floats), in its order; the first one also holds
  // the kGradientExtra slots (write them before the call).
  StepResult compute_gradients_overlapped(const float* x, int64_t n, const int64_t* labels, const float* targets,
                                          const float* weights, float pack_scale, GradientSink& sink,
                                          int64_t bucket_floats);
  // The (offset, count) ranges compute_gradients_overlapped hands over, in order.
  std::vector<std::pair<int64_t, int64_t>> gradient_buckets(int64_t bucket_floats);
  // A process with no samples in a data-parallel step: zero gradients, and the
  // same calls to the collective (synced BatchNorm) as a step with samples.
  void idle_gradients();
  // Clips the gradients and updates the parameters with the optimizer.
  void apply_gradients();

  // The trainable parameters' gradients as one contiguous buffer (in
  // trainable_params() order) followed by kGradientExtra slots for the caller
  // (a data-parallel step carries its sample count and a stop flag in them):
  // one allreduce moves everything. Allocated once; the pointer stays valid
  // for the model's life.
  static constexpr int64_t kGradientExtra = 2;
  int64_t gradient_numel();
  float* gradient_buffer();
  // buffer = grads * scale (a frozen parameter's slots: 0; scale 0: all 0).
  void pack_gradients(float scale);
  // grads = buffer * scale (frozen parameters untouched).
  void unpack_gradients(float scale);
  // null: per-process statistics; see SyncsStatistics. Not owned.
  void set_collective(Collective* c);
  // Dropout's random stream in training: 0 (the default) is the model's seed
  // itself; data-parallel training gives each process its own (its rank), so
  // the processes' slices of a global batch get independent masks.
  uint64_t dropout_stream() const { return dropout_stream_; }
  void set_dropout_stream(uint64_t s) { dropout_stream_ = s; }
  // Inference in chunks of batch_size; safe to call from several threads.
  void predict(const float* x, int64_t n, float* out, int64_t batch_size) const;
  // Inference from layer `begin` (x: n x that layer's input shape) up to the last index in
  // `capture` (ascending, each >= begin), writing the true output of each captured layer
  // (a fused Conv2D's before its ReLU) to outs[k] (n x that layer's output shape). Safe to call
  // from several threads, like predict.
  void predict_outputs(const float* x, int64_t n, size_t begin, const std::vector<size_t>& capture,
                       const std::vector<float*>& outs, int64_t batch_size) const;
  EvalResult evaluate(const float* x, int64_t n, const int64_t* labels, const float* targets,
                      int64_t batch_size, const float* weights = nullptr) const;
  // cross_entropy's label smoothing (torch's definition), in [0, 1].
  float label_smoothing() const { return label_smoothing_; }
  void set_label_smoothing(float e);

  // Readers-writer lock for concurrent use: inference (predict, evaluate,
  // reading parameters, saving) holds it shared; anything that writes
  // parameters or optimizer state (train_step, parameter writes, compile)
  // holds it exclusively, so a reader sees the old or the new weights, never
  // a mix. The model's own methods do not take it: callers (the bindings,
  // the C API) do.
  RwLock& mutex() { return mutex_; }
  // Bumped by every write to the parameters (train_step does it itself;
  // whoever writes a Param's value directly calls parameters_changed()).
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void parameters_changed() { version_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  void plan_storage();
  // compute_gradients, calling after_layer(i) once layer i's backward has run.
  StepResult run_step(const float* x, int64_t n, const int64_t* labels, const float* targets, const float* weights,
                      const std::function<void(size_t)>& after_layer);
  // Where each layer's trainable parameters start in gradient_buffer() (size()+1 entries).
  std::vector<int64_t> layer_offsets();
  // Calls emit(offset, count) for each bucket: walking the layers from the
  // last, a range is cut at a layer's start once it holds bucket_floats or
  // more; what is left at the end is the last range.
  void for_each_bucket(int64_t bucket_floats, const std::vector<int64_t>& off,
                       const std::function<void(int64_t, int64_t)>& emit);

  Dims input_shape_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::string loss_ = "cross_entropy";
  std::unique_ptr<Optimizer> optimizer_;
  uint64_t seed_ = 0, step_ = 0;
  float label_smoothing_ = 0.0f;
  // How each layer's output is stored. kOwn: its own buffer; kInPlace: it
  // overwrites its input (a ReLU after a layer whose backward does not need
  // its own output); kView: the same data as its input (Flatten).
  enum Storage { kOwn, kInPlace, kView };
  std::vector<Storage> storage_;
  std::vector<char> skip_forward_;   // a ReLU already applied by the Conv2D before it
  // A ReLU followed by MaxPool2D: its backward is folded into the pooling's
  // (the pooled gradient is masked by pooled output > 0, a quarter of the
  // data for 2x2 windows) and skipped.
  std::vector<char> relu_before_maxpool_;
  // A ReLU followed by Conv2D: its backward is applied by the convolution's
  // (inside the Winograd backward pass where it runs) and skipped.
  std::vector<char> relu_before_conv_;
  std::vector<Tensor> acts_;         // storage of kOwn outputs (training)
  std::vector<float*> out_;          // out_[i] = where layer i's output is (training)
  Tensor grad_a_, grad_b_;       // ping-pong gradient buffers
  Tensor flat_grad_;             // gradient_buffer()
  Collective* collective_ = nullptr;
  uint64_t dropout_stream_ = 0;
  uint64_t training_seed() const { return seed_ + dropout_stream_ * 0x9E3779B97F4A7C15ull; }
  int64_t max_numel_ = 0;        // largest per-sample activation
  RwLock mutex_;
  std::atomic<uint64_t> version_{1};
};

}  // namespace cpucnn
