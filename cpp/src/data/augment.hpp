// One sample of a cpucnn.data pipeline: gather, random crop with zero padding,
// horizontal flip and the map to float (scale, per-channel mean/std), fused in
// one pass over the output. The random draws of a sample come from
// (seed, epoch, sample index) alone, never from the thread that makes it, so
// batches are the same whatever the number of workers.
#pragma once

#include <cstdint>
#include <vector>

namespace cpucnn::data {

enum class SourceType { u8, f32 };

struct AugmentSpec {
  SourceType type = SourceType::f32;
  int64_t c = 1, h = 1, w = 1;        // a source sample (C, H, W)
  int64_t out_h = 1, out_w = 1;       // the output sample (C, out_h, out_w)
  int64_t pad = 0;                    // zero padding on every side before the crop (source units)
  bool crop = false;                  // random crop; without it the output is the source (out == in)
  bool flip = false;                  // horizontal flip with probability 1/2
  float scale = 1.0f;                 // out = (src * scale - mean[c]) / std[c]
  std::vector<float> mean, std;       // one per channel (empty: 0 and 1)
  uint64_t seed = 0;

  // Checks the settings; throws ValueError naming what is wrong.
  void validate() const;
  int64_t in_numel() const { return c * h * w; }
  int64_t out_numel() const { return c * out_h * out_w; }
};

// The random choices for one sample: crop offsets in the padded image and the flip.
struct SampleDraw {
  int64_t top = 0, left = 0;
  bool flip = false;
};
SampleDraw draw(const AugmentSpec& s, uint64_t epoch, uint64_t index);

// Writes the output sample for source sample `src` (in_numel() elements of the source type) to
// `dst` (out_numel() floats). `index` keys the random draws.
void make_sample(const AugmentSpec& s, const void* src, uint64_t epoch, uint64_t index, float* dst);

}  // namespace cpucnn::data
