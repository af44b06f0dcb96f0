// The feed-forward blocks of DSA models: the dense SwiGLU MLP and the mixture of experts with
// DeepSeek's sigmoid router (score correction bias, group-limited selection, normalisation,
// routed scaling) plus shared experts.
#pragma once

#include <ATen/ATen.h>

#include "model_config.h"
#include "model_weights.h"

namespace indexcache {

// down(silu(gate(x)) * up(x)); x: [tokens, hidden].
at::Tensor dense_mlp(const DenseMlpWeights& weights, const at::Tensor& x);

struct Routing {
  at::Tensor experts;  // [tokens, num_experts_per_tok] int64
  at::Tensor weights;  // [tokens, num_experts_per_tok] float32, normalised and scaled
};

// The router's choice for x [tokens, hidden] (computed in float32).
Routing route(const MoeWeights& weights, const ModelConfig& config, const at::Tensor& x);

// Routed experts weighted by the router plus the shared experts; x: [tokens, hidden].
at::Tensor moe_forward(const MoeWeights& weights, const ModelConfig& config, const at::Tensor& x);

}  // namespace indexcache
