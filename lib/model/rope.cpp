#include "rope.h"

#include <algorithm>
#include <cmath>

namespace indexcache {
namespace {

double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// Dimension index at which a frequency completes `rotations` turns over the original context.
double correction_dimension(double rotations, int64_t dim, double base, int64_t max_positions) {
  return (static_cast<double>(dim) * std::log(static_cast<double>(max_positions) / (rotations * 2.0 * M_PI))) /
         (2.0 * std::log(base));
}

RopeFrequencies yarn_frequencies(const RopeParameters& rope, int64_t dim) {
  RopeFrequencies result;
  if (rope.attention_factor) {
    result.attention_factor = *rope.attention_factor;
  } else if (rope.mscale && rope.mscale_all_dim && *rope.mscale != 0.0 && *rope.mscale_all_dim != 0.0) {
    result.attention_factor = yarn_mscale(rope.factor, *rope.mscale) / yarn_mscale(rope.factor, *rope.mscale_all_dim);
  } else {
    result.attention_factor = yarn_mscale(rope.factor, 1.0);
  }
  // Same float32 operations as transformers so the tables agree to the last bit.
  at::Tensor exponents = at::arange(0, dim, 2, at::kFloat) / static_cast<double>(dim);
  at::Tensor position_frequencies = at::pow(rope.theta, exponents);
  at::Tensor extrapolation = 1.0 / position_frequencies;
  at::Tensor interpolation = 1.0 / (rope.factor * position_frequencies);

  double low = correction_dimension(rope.beta_fast, dim, rope.theta, rope.original_max_position_embeddings);
  double high = correction_dimension(rope.beta_slow, dim, rope.theta, rope.original_max_position_embeddings);
  if (rope.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  at::Tensor ramp = ((at::arange(dim / 2, at::kFloat) - low) / (high - low)).clamp(0, 1);
  at::Tensor extrapolation_weight = 1 - ramp;
  result.inverse_frequencies = interpolation * (1 - extrapolation_weight) + extrapolation * extrapolation_weight;
  return result;
}

}  // namespace

RopeFrequencies rope_frequencies(const RopeParameters& rope, int64_t rope_dim) {
  if (rope.type == "yarn") return yarn_frequencies(rope, rope_dim);
  RopeFrequencies result;
  at::Tensor exponents = at::arange(0, rope_dim, 2, at::kFloat) / static_cast<double>(rope_dim);
  result.inverse_frequencies = 1.0 / at::pow(rope.theta, exponents);
  return result;
}

double attention_softmax_scale(const ModelConfig& config) {
  double scale = std::pow(static_cast<double>(config.qk_head_dim()), -0.5);
  const RopeParameters& rope = config.rope;
  if (rope.type != "default" && rope.mscale_all_dim && *rope.mscale_all_dim != 0.0) {
    double mscale = yarn_mscale(rope.factor, *rope.mscale_all_dim);
    scale = scale * mscale * mscale;
  }
  return scale;
}

RopeTables rope_tables(const RopeFrequencies& frequencies, int64_t length, at::ScalarType dtype, at::Device device) {
  at::Tensor positions = at::arange(length, at::kFloat);
  at::Tensor angles = at::outer(positions, frequencies.inverse_frequencies);  // [length, dim/2] float32
  RopeTables tables;
  tables.cos = (angles.cos() * frequencies.attention_factor).to(device, dtype);
  tables.sin = (angles.sin() * frequencies.attention_factor).to(device, dtype);
  return tables;
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables, RopeLayout layout, int64_t token_dim) {
  const int64_t half = x.size(-1) / 2;
  // Shape cos/sin [tokens, half] so they broadcast against x with tokens at `token_dim`.
  std::vector<int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
  int64_t tokens_axis = token_dim < 0 ? token_dim + x.dim() : token_dim;
  shape[static_cast<std::size_t>(tokens_axis)] = x.size(tokens_axis);
  shape.back() = half;
  at::Tensor cos = tables.cos.narrow(0, 0, x.size(tokens_axis)).reshape(shape);
  at::Tensor sin = tables.sin.narrow(0, 0, x.size(tokens_axis)).reshape(shape);
  at::Tensor first, second;
  if (layout == RopeLayout::Interleaved) {
    first = x.slice(-1, 0, x.size(-1), 2);
    second = x.slice(-1, 1, x.size(-1), 2);
  } else {
    first = x.narrow(-1, 0, half);
    second = x.narrow(-1, half, half);
  }
  return at::cat({first * cos - second * sin, second * cos + first * sin}, -1);
}

}  // namespace indexcache
