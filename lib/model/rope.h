// Rotary position embeddings as transformers computes them for DSA models: inverse frequencies
// (default or YaRN), cos/sin tables scaled by the YaRN attention factor, and the two layouts
// (half-split for the deepseek_v32 indexer, interleaved pairs elsewhere).
#pragma once

#include <ATen/ATen.h>

#include "model_config.h"

namespace indexcache {

// Inverse frequencies [rope_dim / 2] in float32 and the factor that scales cos/sin
// (1 for default RoPE; YaRN's mscale ratio otherwise).
struct RopeFrequencies {
  at::Tensor inverse_frequencies;
  double attention_factor = 1.0;
};
RopeFrequencies rope_frequencies(const RopeParameters& rope, int64_t rope_dim);

// The softmax scale of the main attention: qk_head_dim^-0.5, times mscale(factor,
// mscale_all_dim)^2 under YaRN (DeepSeek's correction for the stretched context).
double attention_softmax_scale(const ModelConfig& config);

// cos and sin of position x frequency for positions [0, length): each [length, rope_dim / 2],
// already multiplied by the attention factor and cast to `dtype` on `device`.
struct RopeTables {
  at::Tensor cos;
  at::Tensor sin;
};
RopeTables rope_tables(const RopeFrequencies& frequencies, int64_t length, at::ScalarType dtype, at::Device device);

// Rotates x [..., tokens, (heads,) rope_dim] in place of its last dimension. `tables` rows are
// positions; `token_dim` is the dimension of x that indexes tokens (cos/sin broadcast over the
// others). Interleaved: pairs (x[2i], x[2i+1]) rotate together and the result is written in
// de-interleaved order [rotated evens..., rotated odds...], as transformers does (dot products
// between equally rotated vectors are unaffected). HalfSplit: pairs (x[i], x[i + d/2]).
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables, RopeLayout layout, int64_t token_dim);

}  // namespace indexcache
