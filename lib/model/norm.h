// The two normalisations of DSA models, computed as transformers does in each dtype.
#pragma once

#include <ATen/ATen.h>

namespace indexcache {

// RMSNorm over the last dimension: statistics in float32, the normalised value cast back to
// x's dtype, then multiplied by `weight` [dim].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// LayerNorm over the last dimension with weight and bias [dim] (the indexer's k_norm).
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// x @ weight^T (+ bias): the nn.Linear of a [out, in] weight.
at::Tensor apply_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace indexcache
