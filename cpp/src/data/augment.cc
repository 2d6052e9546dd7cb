#include "data/augment.hpp"

#include <string>

#include "core/errors.hpp"
#include "core/random.hpp"

namespace cpucnn::data {

void AugmentSpec::validate() const {
  if (c <= 0 || h <= 0 || w <= 0)
    throw ValueError("data: samples must have a positive shape, got (" + std::to_string(c) + ", " +
                     std::to_string(h) + ", " + std::to_string(w) + ")");
  if (pad < 0) throw ValueError("data: random_crop padding must be >= 0, got " + std::to_string(pad));
  if (crop) {
    if (out_h <= 0 || out_w <= 0 || out_h > h + 2 * pad || out_w > w + 2 * pad)
      throw ValueError("data: random_crop size (" + std::to_string(out_h) + ", " + std::to_string(out_w) +
                       ") does not fit the padded image (" + std::to_string(h + 2 * pad) + ", " +
                       std::to_string(w + 2 * pad) + ")");
  } else if (out_h != h || out_w != w || pad != 0) {
    throw ValueError("data: without a crop the output size is the input size");
  }
  if (!mean.empty() && static_cast<int64_t>(mean.size()) != c)
    throw ValueError("data: mean needs one value per channel (" + std::to_string(c) + "), got " +
                     std::to_string(mean.size()));
  if (!std.empty() && static_cast<int64_t>(std.size()) != c)
    throw ValueError("data: std needs one value per channel (" + std::to_string(c) + "), got " +
                     std::to_string(std.size()));
  for (float v : std)
    if (!(v > 0.0f)) throw ValueError("data: std values must be positive, got " + std::to_string(v));
}

SampleDraw draw(const AugmentSpec& s, uint64_t epoch, uint64_t index) {
  // key = H(seed ^ H(epoch ^ H(index))); then successive draws H(key + k).
  const uint64_t key = splitmix64(s.seed ^ splitmix64(epoch ^ splitmix64(index)));
  SampleDraw d;
  if (s.crop) {
    const uint64_t rows = static_cast<uint64_t>(s.h + 2 * s.pad - s.out_h + 1);
    const uint64_t cols = static_cast<uint64_t>(s.w + 2 * s.pad - s.out_w + 1);
    d.top = static_cast<int64_t>(splitmix64(key + 1) % rows);
    d.left = static_cast<int64_t>(splitmix64(key + 2) % cols);
  }
  if (s.flip) d.flip = (splitmix64(key + 3) >> 63) != 0;
  return d;
}

namespace {

inline float load(const uint8_t* p, int64_t i) { return static_cast<float>(p[i]); }
inline float load(const float* p, int64_t i) { return p[i]; }

template <typename T>
void make(const AugmentSpec& s, const T* src, const SampleDraw& d, float* dst) {
  const int64_t oh = s.out_h, ow = s.out_w;
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const float mean = s.mean.empty() ? 0.0f : s.mean[ch];
    const float sd = s.std.empty() ? 1.0f : s.std[ch];
    const float fill = (0.0f * s.scale - mean) / sd;   // a padded pixel: source value 0
    const T* plane = src + ch * s.h * s.w;
    float* out = dst + ch * oh * ow;
    for (int64_t y = 0; y < oh; ++y) {
      const int64_t sy = y + d.top - s.pad;
      float* row = out + y * ow;
      if (sy < 0 || sy >= s.h) {
        for (int64_t x = 0; x < ow; ++x) row[x] = fill;
        continue;
      }
      const T* srow = plane + sy * s.w;
      for (int64_t x = 0; x < ow; ++x) {
        const int64_t cx = d.flip ? ow - 1 - x : x;   // the flip mirrors the crop
        const int64_t sx = cx + d.left - s.pad;
        row[x] = (sx < 0 || sx >= s.w) ? fill : (load(srow, sx) * s.scale - mean) / sd;
      }
    }
  }
}

}  // namespace

void make_sample(const AugmentSpec& s, const void* src, uint64_t epoch, uint64_t index, float* dst) {
  const SampleDraw d = draw(s, epoch, index);
  if (s.type == SourceType::u8)
    make(s, static_cast<const uint8_t*>(src), d, dst);
  else
    make(s, static_cast<const float*>(src), d, dst);
}

}  // namespace cpucnn::data
