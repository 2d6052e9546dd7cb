#include "model/sequential.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/parallel.hpp"
#include "dispatch/dispatch.hpp"
#include "layers/conv2d.hpp"
#include "model/loss.hpp"
#include "ops/scratch.hpp"

namespace cpucnn {

namespace {

// Rethrows `e`, the exception being handled, with the layer's label ("layer 3 Conv2D(64, 3x3):
// ...") unless it has one, keeping its type.
[[noreturn]] void rethrow_labelled(const Layer& layer, const ValueError& e) {
  const std::string msg = e.what();
  if (msg.rfind("layer ", 0) == 0) throw;
  if (dynamic_cast<const SizeLimitError*>(&e)) throw SizeLimitError(layer.label() + ": " + msg);
  throw ValueError(layer.label() + ": " + msg);
}

}  // namespace

Sequential::Sequential(const json::Value& arch, uint64_t seed, const ParamCheck& check) : seed_(seed) {
  kernels();  // resolves the ISA (and reports a bad CPUCNN_ISA) before any kernel runs
  if (!arch.is_object()) throw ValueError("architecture must be a JSON object");
  const json::Value& shape = arch.at("input_shape");
  if (!shape.is_array() || shape.size() == 0 || shape.size() > 3)
    throw ValueError("input_shape must be (channels, height, width) or (features,)");
  for (const auto& d : shape.as_array()) {
    const int64_t v = d.as_int();
    if (v <= 0) throw ValueError("input_shape must hold positive sizes");
    input_shape_.push_back(v);
  }
  // Every size below comes from the architecture (a model file's, possibly hostile): each is
  // checked (checked_numel: at most 2^40 elements; one sample's activations: at most
  // max_activation_bytes()) before anything is allocated.
  const int64_t in_numel = checked_numel(input_shape_, "input_shape");
  const json::Value& layers = arch.at("layers");
  if (!layers.is_array() || layers.size() == 0) throw ValueError("a model needs at least one layer");
  // Every layer's settings first (they allocate nothing), then the sizes they imply.
  std::vector<std::unique_ptr<Layer>> pending;
  std::vector<char> frozen;
  for (const auto& cfg : layers.as_array()) {
    try {
      pending.push_back(make_layer(cfg));
      frozen.push_back(!cfg_bool(cfg, "trainable", true));
    } catch (const ValueError& e) {
      throw ValueError("layer " + std::to_string(pending.size()) + " " + e.what());
    }
    pending.back()->index = static_cast<int>(pending.size() - 1);
  }
  check_sample_floats("input_shape " + shape_str(input_shape_), "the values of one sample", in_numel);
  max_numel_ = in_numel;
  Dims shape_now = input_shape_;
  Rng rng(seed);
  for (std::unique_ptr<Layer>& layer : pending) {
    try {
      shape_now = layer->build(shape_now);
      layer->set_frozen(frozen[static_cast<size_t>(layer->index)]);
      const int64_t out_numel = checked_numel(shape_now, "output");
      check_sample_floats(layer->label(), "activations of one sample (output " + shape_str(shape_now) + ")",
                          out_numel);
      max_numel_ = std::max(max_numel_, out_numel);
    } catch (const ValueError& e) {
      rethrow_labelled(*layer, e);
    }
    if (check) {
      for (const Param& p : layer->params()) check(*layer, p);
    }
    try {
      layer->allocate();
      if (!check) layer->reset_parameters(rng);
    } catch (const ValueError& e) {
      rethrow_labelled(*layer, e);
    } catch (const std::bad_alloc&) {
      throw ValueError(layer->label() + ": cannot allocate its parameters for input " + shape_str(layer->in_shape));
    }
    layers_.push_back(std::move(layer));
  }
  plan_storage();
}

namespace {
// Layers whose backward reads their own output, which must then survive.
bool backward_reads_output(const Layer& l) {
  const std::string t = l.type();
  return t == "ReLU" || t == "LeakyReLU" || t == "Sigmoid" || t == "Tanh" || t == "Softmax";
}
}  // namespace

void Sequential::plan_storage() {
  const size_t L = layers_.size();
  storage_.assign(L, kOwn);
  skip_forward_.assign(L, 0);
  std::vector<size_t> owner(L);
  for (size_t i = 0; i < L; ++i) {
    owner[i] = i;
    const std::string t = layers_[i]->type();
    if (i == 0) continue;
    if (t == "Flatten" || layers_[i]->is_view()) {
      storage_[i] = kView;
      owner[i] = owner[i - 1];
    } else if (t == "ReLU" && !backward_reads_output(*layers_[owner[i - 1]])) {
      storage_[i] = kInPlace;
      owner[i] = owner[i - 1];
      if (auto* conv = dynamic_cast<Conv2D*>(layers_[i - 1].get())) {
        conv->fused_relu = true;
        skip_forward_[i] = 1;
      }
    }
  }
  // relu'(y) at a window's argmax is [pooled output > 0]; every other input
  // of the window gets no gradient from the pooling anyway.
  relu_before_maxpool_.assign(L, 0);
  relu_before_conv_.assign(L, 0);
  for (size_t i = 0; i + 1 < L; ++i) {
    if (layers_[i]->type() != std::string("ReLU")) continue;
    if (layers_[i + 1]->type() == std::string("MaxPool2D")) relu_before_maxpool_[i] = 1;
    if (auto* conv = dynamic_cast<Conv2D*>(layers_[i + 1].get())) {
      conv->relu_input = i > 0;  // a first-layer ReLU has no backward to fold
      relu_before_conv_[i] = i > 0;
    }
  }
  acts_.resize(L);
  out_.assign(L, nullptr);
}

json::Value Sequential::architecture() const {
  json::Value a = json::Value::object();
  json::Value shape = json::Value::array();
  for (int64_t d : input_shape_) shape.push_back(d);
  a.set("input_shape", shape);
  json::Value ls = json::Value::array();
  for (const auto& l : layers_) {
    json::Value c = l->config();
    if (l->frozen()) c.set("trainable", false);
    ls.push_back(c);
  }
  a.set("layers", ls);
  return a;
}

std::vector<Param*> Sequential::trainable_params() {
  std::vector<Param*> out;
  for (auto& l : layers_)
    for (auto& p : l->params())
      if (p.trainable) out.push_back(&p);
  return out;
}

void Sequential::set_trainable(size_t i, bool trainable) { layers_.at(i)->set_frozen(!trainable); }

void Sequential::compile(const std::string& loss, const json::Value& optimizer) {
  if (loss != "cross_entropy" && loss != "mse")
    throw ValueError("unknown loss '" + loss + "' (expected \"cross_entropy\" or \"mse\")");
  const Dims& out = output_shape();
  if (out.size() != 1)
    throw ValueError("loss " + loss + " expects a flat model output (classes,), but " + layers_.back()->label() +
                     " outputs " + shape_str(out) + "; add Flatten() and Dense(classes)");
  auto opt = make_optimizer(optimizer);
  opt->attach(trainable_params());
  loss_ = loss;
  optimizer_ = std::move(opt);
}

void Sequential::check_input(const Dims& batch_shape) const {
  Dims want = {-1};
  want.insert(want.end(), input_shape_.begin(), input_shape_.end());
  bool ok = batch_shape.size() == want.size();
  for (size_t i = 1; ok && i < want.size(); ++i) ok = batch_shape[i] == want[i];
  if (!ok) {
    std::string w = "(N";
    for (int64_t d : input_shape_) w += ", " + std::to_string(d);
    w += ")";
    throw ValueError(layers_.front()->label() + ": expects input " + w + ", got " + shape_str(batch_shape));
  }
}

void Sequential::check_labels(const int64_t* labels, int64_t n) const {
  const int64_t classes = output_shape()[0];
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw ValueError("labels must be integers in [0, " + std::to_string(classes) + ") for " +
                       layers_.back()->label() + " with output " + shape_str(output_shape()) + ", got " +
                       std::to_string(labels[i]) + " at index " + std::to_string(i));
}

void Sequential::check_finite(const float* x, int64_t n, int64_t per_sample, const char* what) {
  const int64_t total = n * per_sample;
  int64_t bad = -1;
  for (int64_t i = 0; i < total; ++i) {
    if (!std::isfinite(x[i])) {
      bad = i;
      break;
    }
  }
  if (bad >= 0)
    throw ValueError(std::string(what) + " contains NaN or Inf (sample " + std::to_string(bad / per_sample) + ")");
}

void Sequential::set_label_smoothing(float e) {
  if (!(e >= 0.0f && e <= 1.0f)) throw ValueError("label_smoothing must be in [0, 1], got " + std::to_string(e));
  label_smoothing_ = e;
}

namespace {
void check_weights(const float* w, int64_t n) {
  if (!w) return;
  for (int64_t i = 0; i < n; ++i)
    if (!(w[i] >= 0.0f) || !std::isfinite(w[i]))
      throw ValueError("sample weights must be finite and non-negative, got " + std::to_string(w[i]) +
                       " at index " + std::to_string(i));
}
}  // namespace

StepResult Sequential::train_step(const float* x, int64_t n, const int64_t* labels, const float* targets,
                                  const float* weights) {
  const StepResult r = compute_gradients(x, n, labels, targets, weights);
  apply_gradients();
  return r;
}

namespace {
// Backward runs down to the lowest layer that learns (frozen layers below
// it need no gradient at all), which gets no dx.
size_t lowest_learning(const std::vector<std::unique_ptr<Layer>>& layers) {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i]->learns()) return i;
  return layers.size();
}
}  // namespace

StepResult Sequential::compute_gradients(const float* x, int64_t n, const int64_t* labels, const float* targets,
                                         const float* weights) {
  return run_step(x, n, labels, targets, weights, nullptr);
}

StepResult Sequential::run_step(const float* x, int64_t n, const int64_t* labels, const float* targets,
                                const float* weights, const std::function<void(size_t)>& after_layer) {
  if (!optimizer_) throw ValueError("the model must be compiled before training: call compile()");
  if (n <= 0) throw ValueError("training needs at least one sample");
  const int64_t classes = output_shape()[0];
  check_weights(weights, n);
  if (loss_ == "cross_entropy") {
    if (labels)
      check_labels(labels, n);
    else if (targets)
      check_finite(targets, n, classes, "y");
    else
      throw ValueError("cross_entropy needs integer labels or probability targets");
  } else {
    if (!targets) throw ValueError("mse needs float targets of shape (N, " + std::to_string(classes) + ")");
    check_finite(targets, n, classes, "y");
  }
  check_finite(x, n, checked_numel(input_shape_), "x");

  ForwardContext ctx{true, training_seed(), step_, version()};
  const float* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (storage_[i] == kOwn) {
      Dims s = {n};
      s.insert(s.end(), layers_[i]->out_shape.begin(), layers_[i]->out_shape.end());
      acts_[i].resize(s);
      out_[i] = acts_[i].data();
      layers_[i]->forward(in, out_[i], n, ctx);
    } else {
      out_[i] = out_[i - 1];
      if (storage_[i] == kInPlace && !skip_forward_[i]) layers_[i]->forward(out_[i], out_[i], n, ctx);
    }
    in = out_[i];
  }
  const int64_t grad_numel = checked_mul(n, max_numel_, "training: samples x the largest activation");
  grad_a_.resize({grad_numel});
  grad_b_.resize({grad_numel});
  StepResult r;
  const float* out = out_.back();
  for (int64_t i = 0; i < n * classes; ++i)
    if (!std::isfinite(out[i]))
      throw ValueError("the model's output became NaN or Inf in training (step " + std::to_string(step_) +
                       "); lower the learning rate");
  if (loss_ == "cross_entropy")
    r.loss = cross_entropy(out, labels, labels ? nullptr : targets, weights, label_smoothing_, n, classes,
                           grad_a_.data(), &r.correct);
  else
    r.loss = mse(out, targets, weights, n, classes, grad_a_.data(), &r.correct);

  const size_t lowest = lowest_learning(layers_);
  float* dy = grad_a_.data();
  float* dx = grad_b_.data();
  for (size_t i = layers_.size(); i-- > lowest;) {
    if (storage_[i] == kView) continue;  // the gradient passes through unchanged
    if ((relu_before_maxpool_[i] || relu_before_conv_[i]) && i > 0) continue;  // applied by the layer above
    if (i > 0 && relu_before_maxpool_[i - 1]) {
      const KernelTable& kt = kernels();
      const float* pooled = out_[i];
      parallel_for(n * checked_numel(layers_[i]->out_shape), 1 << 15,
                   [&](int64_t b, int64_t e) { kt.relu_bwd(pooled + b, dy + b, dy + b, e - b); });
    }
    const float* xin = i == 0 ? x : out_[i - 1];
    layers_[i]->backward(xin, out_[i], dy, i == lowest ? nullptr : dx, n);
    if (after_layer) after_layer(i);
    std::swap(dy, dx);
  }
  return r;
}

namespace {
// o = p's gradient * scale (0 for a frozen parameter, or when scale is 0).
void pack_param(const Param& p, float* o, float scale) {
  const int64_t m = p.grad.numel();
  const float* g = p.grad.data();
  if (p.frozen || scale == 0.0f) {
    std::memset(o, 0, static_cast<size_t>(m) * sizeof(float));
    return;
  }
  parallel_for(m, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = g[i] * scale;
  });
}
}  // namespace

std::vector<int64_t> Sequential::layer_offsets() {
  std::vector<int64_t> off(layers_.size() + 1, 0);
  int64_t at = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    off[i] = at;
    for (const Param& p : layers_[i]->params())
      if (p.trainable) at += p.grad.numel();
  }
  off[layers_.size()] = at;
  return off;
}

void Sequential::for_each_bucket(int64_t bucket_floats, const std::vector<int64_t>& off,
                                 const std::function<void(int64_t, int64_t)>& emit) {
  int64_t sent = off.back() + kGradientExtra;   // [sent, end) handed over
  for (size_t i = layers_.size(); i-- > 0;) {
    if (sent - off[i] >= std::max<int64_t>(bucket_floats, 1)) {
      emit(off[i], sent - off[i]);
      sent = off[i];
    }
  }
  if (sent > 0) emit(0, sent);
}

std::vector<std::pair<int64_t, int64_t>> Sequential::gradient_buckets(int64_t bucket_floats) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for_each_bucket(bucket_floats, layer_offsets(), [&](int64_t o, int64_t c) { out.emplace_back(o, c); });
  return out;
}

StepResult Sequential::compute_gradients_overlapped(const float* x, int64_t n, const int64_t* labels,
                                                    const float* targets, const float* weights, float pack_scale,
                                                    GradientSink& sink, int64_t bucket_floats) {
  float* buf = gradient_buffer();
  const std::vector<int64_t> off = layer_offsets();
  const std::vector<std::pair<int64_t, int64_t>> buckets = gradient_buckets(bucket_floats);
  std::vector<char> packed(layers_.size(), 0);
  size_t next = 0;   // the next bucket to hand over
  auto pack_layer = [&](size_t i) {
    float* o = buf + off[i];
    for (const Param& p : layers_[i]->params()) {
      if (!p.trainable) continue;
      pack_param(p, o, pack_scale);
      o += p.grad.numel();
    }
    packed[i] = 1;
  };
  // Hands over every bucket whose layers are all packed (layers finish from the last one down).
  auto flush = [&](size_t lowest_packed) {
    while (next < buckets.size() && buckets[next].first >= off[lowest_packed]) {
      sink.ready(buckets[next].first, buckets[next].second);
      ++next;
    }
  };
  const StepResult r = run_step(x, n, labels, targets, weights, [&](size_t i) {
    pack_layer(i);
    // Layers above i with no backward of their own (no parameters, or skipped) have nothing to pack.
    flush(i);
  });
  for (size_t i = layers_.size(); i-- > 0;) {   // layers below the lowest that learns: frozen, or none
    if (!packed[i]) pack_layer(i);
  }
  flush(0);
  return r;
}

void Sequential::idle_gradients() {
  if (!optimizer_) throw ValueError("the model must be compiled before training: call compile()");
  for (Param* p : trainable_params()) p->grad.zero();
  if (!collective_) return;
  // The synced layers' forward and backward with no samples, in the order a
  // step runs them, so every process makes the same collective calls.
  ForwardContext ctx{true, training_seed(), step_, version()};
  std::vector<size_t> synced;
  for (size_t i = 0; i < layers_.size(); ++i)
    if (dynamic_cast<SyncsStatistics*>(layers_[i].get())) synced.push_back(i);
  for (size_t i : synced) layers_[i]->forward(nullptr, nullptr, 0, ctx);
  const size_t lowest = lowest_learning(layers_);
  for (size_t k = synced.size(); k-- > 0;)
    if (synced[k] >= lowest) layers_[synced[k]]->backward(nullptr, nullptr, nullptr, nullptr, 0);
}

void Sequential::apply_gradients() {
  if (!optimizer_) throw ValueError("the model must be compiled before training: call compile()");
  optimizer_->clip_gradients();
  optimizer_->step();
  ++step_;
  parameters_changed();
}

int64_t Sequential::gradient_numel() {
  int64_t total = 0;
  for (Param* p : trainable_params()) total += p->grad.numel();
  return total;
}

float* Sequential::gradient_buffer() {
  const int64_t want = gradient_numel() + kGradientExtra;
  if (flat_grad_.numel() != want) {
    flat_grad_.resize({want});
    flat_grad_.zero();
  }
  return flat_grad_.data();
}

void Sequential::pack_gradients(float scale) {
  float* buf = gradient_buffer();
  for (Param* p : trainable_params()) {
    pack_param(*p, buf, scale);
    buf += p->grad.numel();
  }
}

void Sequential::unpack_gradients(float scale) {
  const float* buf = gradient_buffer();
  for (Param* p : trainable_params()) {
    const int64_t m = p->grad.numel();
    float* g = p->grad.data();
    const float* in = buf;
    if (!p->frozen)
      parallel_for(m, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) g[i] = in[i] * scale;
      });
    buf += m;
  }
}

void Sequential::set_collective(Collective* c) {
  collective_ = c;
  for (auto& l : layers_)
    if (auto* s = dynamic_cast<SyncsStatistics*>(l.get())) s->set_collective(c);
}

void Sequential::predict(const float* x, int64_t n, float* out, int64_t batch_size) const {
  if (batch_size <= 0) throw ValueError("batch_size must be positive");
  const int64_t in_size = checked_numel(input_shape_);
  const int64_t out_size = checked_numel(output_shape());
  const int64_t bs = std::min(batch_size, std::max<int64_t>(n, 1));
  const int64_t buf_numel = checked_mul(bs, max_numel_, "predict: batch_size x the largest activation");
  // The two activation buffers come from the calling thread's scratch arena
  // (ops/scratch.hpp): reused from call to call, so a predict does not map
  // and fault in fresh pages for them each time (2.5 of 8 ms of a
  // 256-image conv layer on AVX2), and concurrent predicts on other threads
  // have their own.
  ScratchLayout layout;
  const int64_t a_at = layout.shared(buf_numel), b_at = layout.shared(buf_numel);
  ScratchFrame frame(layout, 1);
  ForwardContext ctx{false, seed_, 0, version()};
  for (int64_t s = 0; s < n; s += bs) {
    const int64_t m = std::min(bs, n - s);
    const float* cur = x + s * in_size;
    float* dst_out = out + s * out_size;
    float* bufs[2] = {frame.shared(a_at), frame.shared(b_at)};
    for (size_t i = 0; i < layers_.size(); ++i) {
      const bool last = i + 1 == layers_.size();
      if (storage_[i] == kView && !last) continue;
      if (storage_[i] == kInPlace && !last) {
        if (!skip_forward_[i]) layers_[i]->forward(cur, const_cast<float*>(cur), m, ctx);
        continue;
      }
      float* dst = last ? dst_out : (cur == bufs[0] ? bufs[1] : bufs[0]);
      if (last && skip_forward_[i])
        std::memcpy(dst, cur, m * out_size * sizeof(float));  // ReLU already applied
      else
        layers_[i]->forward(cur, dst, m, ctx);
      cur = dst;
    }
  }
}

void Sequential::predict_outputs(const float* x, int64_t n, size_t begin, const std::vector<size_t>& capture,
                                 const std::vector<float*>& outs, int64_t batch_size) const {
  if (batch_size <= 0) throw ValueError("batch_size must be positive");
  if (capture.empty() || capture.size() != outs.size()) throw ValueError("predict_outputs: no outputs asked for");
  for (size_t k = 0; k < capture.size(); ++k)
    if (capture[k] < begin || capture[k] >= layers_.size() || (k > 0 && capture[k] <= capture[k - 1]))
      throw ValueError("predict_outputs: output indices must be ascending layer indices from the first layer run");
  if (begin >= layers_.size()) throw ValueError("predict_outputs: no layer " + std::to_string(begin));
  const size_t last = capture.back();
  const int64_t in_size = checked_numel(layers_[begin]->in_shape);
  const int64_t bs = std::min(batch_size, std::max<int64_t>(n, 1));
  const int64_t buf_numel = checked_mul(bs, max_numel_, "predict: batch_size x the largest activation");
  Tensor a({buf_numel}), b({buf_numel});
  ForwardContext ctx{false, seed_, 0, version()};
  for (int64_t s = 0; s < n; s += bs) {
    const int64_t m = std::min(bs, n - s);
    const float* cur = x + s * in_size;
    float* bufs[2] = {a.data(), b.data()};
    bool relu_done = false;  // the Conv2D just run applied the ReLU that follows it
    size_t k = 0;
    for (size_t i = begin; i <= last; ++i) {
      Layer& layer = *layers_[i];
      const std::string t = layer.type();
      const bool want = capture[k] == i;
      if (t == "Flatten" || (t == "ReLU" && relu_done)) {
        relu_done = false;  // the same data: a view, or a ReLU already applied
      } else {
        float* dst = cur == bufs[0] ? bufs[1] : bufs[0];
        auto* conv = dynamic_cast<Conv2D*>(&layer);
        if (conv && conv->fused_relu) {
          // The ReLU after it is fused unless this convolution's own output is wanted
          // or the run stops here.
          relu_done = !want && i < last;
          conv->forward_relu(cur, dst, m, ctx, relu_done);
        } else {
          layer.forward(cur, dst, m, ctx);
          relu_done = false;
        }
        cur = dst;
      }
      if (want) {
        const int64_t per = checked_numel(layer.out_shape);
        std::memcpy(outs[k] + s * per, cur, static_cast<size_t>(m * per) * sizeof(float));
        ++k;
      }
    }
  }
}

EvalResult Sequential::evaluate(const float* x, int64_t n, const int64_t* labels, const float* targets,
                                int64_t batch_size, const float* weights) const {
  if (batch_size <= 0) throw ValueError("batch_size must be positive");
  const int64_t in_size = checked_numel(input_shape_);
  const int64_t classes = output_shape()[0];
  check_weights(weights, n);
  if (loss_ == "cross_entropy") {
    if (labels)
      check_labels(labels, n);
    else if (targets)
      check_finite(targets, n, classes, "y");
    else
      throw ValueError("cross_entropy needs integer labels or probability targets");
  } else if (!targets) {
    throw ValueError("mse needs float targets of shape (N, " + std::to_string(classes) + ")");
  }
  EvalResult r;
  const int64_t bs = std::min(batch_size, std::max<int64_t>(n, 1));
  Tensor out({bs * classes});
  for (int64_t s = 0; s < n; s += bs) {
    const int64_t m = std::min(bs, n - s);
    predict(x + s * in_size, m, out.data(), m);
    const float* w = weights ? weights + s : nullptr;
    if (loss_ == "cross_entropy") {
      const float* probs = labels ? nullptr : targets + s * classes;
      r.loss_sum += cross_entropy(out.data(), labels ? labels + s : nullptr, probs, w, label_smoothing_, m, classes,
                                  nullptr, &r.correct) * m;
      if (labels) {
        r.top5 += topk_hits(out.data(), labels + s, m, classes, 5);
      } else {  // against the probabilities' argmax
        for (int64_t i = 0; i < m; ++i) {
          const float* t = probs + i * classes;
          const int64_t label = std::max_element(t, t + classes) - t;
          r.top5 += topk_hits(out.data() + i * classes, &label, 1, classes, 5);
        }
      }
    } else {
      r.loss_sum += mse(out.data(), targets + s * classes, w, m, classes, nullptr, &r.correct) * m;
    }
    r.count += m;
  }
  return r;
}

}  // namespace cpucnn
