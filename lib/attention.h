// Multi-head latent attention (MLA) of DSA models, restricted to the indexer's selection.
//
// Two exact paths over the same projection:
//   eager:  keys/values expanded per head from the KV latent, logits masked to the selected
//           causal positions, softmax in float32 — transformers' eager computation, O(T^2) per
//           head; the reference, and the faster choice for short sequences.
//   sparse: the per-head key/value up-projections are absorbed into the queries and outputs,
//           and each query gathers only its k selected latents [k, kv_lora + rope] (shared by
//           all heads): O(T x k) memory and work, no [T, T] anything. Mathematically identical;
//           rounding differs slightly (tests bound it).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace indexcache {

enum class AttentionPath { Auto, Eager, Sparse };
AttentionPath parse_attention_path(const std::string& text);  // "auto", "eager", "sparse"

struct MlaProjection {
  at::Tensor q_latent;      // [tokens, q_lora]: q_a_layernorm(q_a_proj(x)), also the indexer's input
  at::Tensor queries_nope;  // [tokens, heads, nope_dim]
  at::Tensor queries_rope;  // [tokens, heads, rope_dim], rotated
  at::Tensor kv_latent;     // [tokens, kv_lora]: kv_a_layernorm of the compressed KV
  at::Tensor keys_rope;     // [tokens, rope_dim], rotated, shared by all heads
};

// x: [tokens, hidden], the layer's normalised input in the compute dtype.
MlaProjection mla_project(const AttentionWeights& weights, const ModelConfig& config, const at::Tensor& x,
                          const RopeTables& rope);

// Auto picks sparse when most of the attention is sparse: tokens > 4 x index_topk.
AttentionPath resolve_attention_path(AttentionPath path, int64_t tokens, int64_t index_topk);

// Attention output [tokens, hidden] (after o_proj). `topk`: [tokens, index_topk] selected
// positions (see indexer.h). Queries are processed in chunks of about `chunk_bytes` of
// intermediate memory.
at::Tensor mla_attend(const MlaProjection& projection, const AttentionWeights& weights, const ModelConfig& config,
                      const at::Tensor& topk, double softmax_scale, AttentionPath path,
                      int64_t chunk_bytes = int64_t{256} << 20);

}  // namespace indexcache
