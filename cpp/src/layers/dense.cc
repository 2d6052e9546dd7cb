#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>

#include "core/parallel.hpp"
#include "layers/factory.hpp"
#include "ops/gemm.hpp"

namespace cpucnn {

namespace {

// C (m x n) = op(A) (m x k) op(B) (k x n), row-major, on `threads` threads
// (op(B) already packed when packed_b is given).
void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            const float* b, int64_t ldb, float* c, int64_t ldc, int threads, const float* packed_b = nullptr) {
  GemmArgs g;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.packed_b = packed_b;
  gemm_parallel(g, threads);
}

// y = x W^T + b with W (units, features), as torch.nn.Linear.
class Dense : public Layer {
 public:
  explicit Dense(const json::Value& cfg) {
    units_ = cfg_int(cfg, "units", 0);
    use_bias_ = cfg_bool(cfg, "use_bias", true);
    if (units_ <= 0) fail("units must be positive, got " + std::to_string(units_));
    if (units_ > kMaxNumel) fail("units must be at most 2^40, got " + std::to_string(units_));
  }
  const char* type() const override { return "Dense"; }
  std::string describe() const override { return "Dense(" + std::to_string(units_) + ")"; }

  Dims build(const Dims& in) override {
    if (in.size() != 1)
      fail("expects a flat input (features,), got " + shape_str(in) + "; add Flatten() before it");
    if (in[0] <= 0) fail("input " + shape_str(in) + " is empty");
    in_shape = in;
    out_shape = {units_};
    checked_numel({units_, in[0]}, "Dense weight");
    params_.clear();
    add_param("weight", {units_, in[0]});
    if (use_bias_) add_param("bias", {units_});
    return out_shape;
  }

  void reset_parameters(Rng& rng) override {
    const float bound = 1.0f / std::sqrt(static_cast<float>(in_shape[0]));
    for (auto& p : params_) {
      float* v = p.value.data();
      for (int64_t i = 0; i < p.value.numel(); ++i) v[i] = rng.uniform(-bound, bound);
    }
  }

  void forward(const float* x, float* y, int64_t n, const ForwardContext& ctx) override {
    const int64_t f = in_shape[0];
    // y (n x units) = x (n x f) * W^T (f x units). Inference takes W^T packed
    // once per parameter version (training changes W every step).
    const float* w = params_[0].value.data();
    std::shared_ptr<const PackedGemmB> packed;
    if (!ctx.training && n > kPackedMinRows) packed = packed_weights(ctx.version);
    matmul(false, true, n, units_, f, x, f, w, f, y, units_, get_num_threads(),
           packed ? packed->panels.data() : nullptr);
    if (use_bias_) {
      const float* b = params_[1].value.data();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < units_; ++j) y[i * units_ + j] += b[j];
    }
  }

  void backward(const float* x, const float*, const float* dy, float* dx, int64_t n) override {
    const int64_t f = in_shape[0];
    const int threads = get_num_threads();
    if (!frozen_) {
      // dW (units x f) = dy^T (units x n) * x (n x f)
      matmul(true, false, units_, f, n, dy, units_, x, f, params_[0].grad.data(), f, threads);
      if (use_bias_) {
        float* db = params_[1].grad.data();
        std::memset(db, 0, units_ * sizeof(float));
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < units_; ++j) db[j] += dy[i * units_ + j];
      }
    }  // frozen: no weight gradient
    if (dx) {
      // dx (n x f) = dy (n x units) * W (units x f)
      matmul(false, false, n, f, units_, dy, units_, params_[0].value.data(), f, dx, f, threads);
    }
  }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c.set("type", "Dense");
    c.set("units", units_);
    c.set("use_bias", use_bias_);
    return c;
  }
  int64_t macs() const override { return units_ * in_shape[0]; }

 private:
  // Batches of up to this many rows run as dot products over W's rows
  // (ops/gemm.cc's GEMV path), which reads W in place.
  static constexpr int64_t kPackedMinRows = 4;

  // W^T packed for the GEMM (ops/gemm.hpp), made again when the parameters'
  // version or the kernel table changes. Inference may run from several
  // threads at once: the entry is swapped under a lock and shared.
  std::shared_ptr<const PackedGemmB> packed_weights(uint64_t version) {
    const int64_t f = in_shape[0];
    std::lock_guard<std::mutex> lock(mutex_);
    if (!packed_ || packed_version_ != version || !gemm_packed_b_current(*packed_, units_, f)) {
      GemmArgs g;
      g.trans_b = true;
      g.n = units_;
      g.k = f;
      g.b = params_[0].value.data();
      g.ldb = f;
      packed_ = gemm_pack_b(g);
      packed_version_ = version;
    }
    return packed_;
  }

  std::mutex mutex_;
  std::shared_ptr<const PackedGemmB> packed_;
  uint64_t packed_version_ = 0;
  int64_t units_ = 0;
  bool use_bias_ = true;
};

}  // namespace

std::unique_ptr<Layer> make_dense(const json::Value& cfg) { return std::make_unique<Dense>(cfg); }

}  // namespace cpucnn
