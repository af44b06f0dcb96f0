// Multi-head latent attention (MLA) of DSA models, restricted to the indexer's selection.
//
// Three exact paths over the same projection:
//   eager:  keys/values expanded per head from the KV latent, logits masked to the selected
//           causal positions, softmax in float32 — transformers' eager computation, O(T^2) per
//           head; the reference, and the faster choice for short sequences.
//   sparse: the per-head key/value up-projections are absorbed into the queries and outputs,
//           and each query gathers only its k selected latents [k, kv_lora + rope] (shared by
//           all heads): O(T x k) memory and work, no [T, T] anything. Mathematically identical;
//           rounding differs slightly (tests bound it).
//   fused:  the eager path's keys, values and selection mask, but the masked softmax(QK^T)V runs
//           in PyTorch's fused attention kernel (scaled_dot_product_attention: on a GPU the
//           memory-efficient kernel, float32 accumulation and online softmax), so the [heads,
//           rows, T] logits and probabilities never exist. Needs libtorch >= 2.0. Profiled on
//           an H100 at 4K tokens (DeepSeek-V3.2 dimensions), the eager path's masking, softmax
//           and copies of those tensors took 17 of a layer's 37 ms of GPU time.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace indexcache {

enum class AttentionPath { Auto, Eager, Sparse, Fused };
AttentionPath parse_attention_path(const std::string& text);  // "auto", "eager", "sparse", "fused"

// Whether this build has the fused path (libtorch >= 2.0).
bool fused_attention_available();

// Queries may cover only the rows [first_row, tokens) (the rest of the sequence then serves as
// keys and values only); keys and values always cover every row.
struct MlaProjection {
  int64_t first_row = 0;    // position of the first query row
  at::Tensor q_latent;      // [tokens, q_lora]: q_a_layernorm(q_a_proj(x)), also the indexer's input
  at::Tensor queries_nope;  // [tokens - first_row, heads, nope_dim]
  at::Tensor queries_rope;  // [tokens - first_row, heads, rope_dim], rotated
  at::Tensor kv_latent;     // [tokens, kv_lora]: kv_a_layernorm of the compressed KV
  at::Tensor keys_rope;     // [tokens, rope_dim], rotated, shared by all heads
};

// x: [tokens, hidden], the layer's normalised input in the compute dtype. Queries are projected
// for rows [first_row, tokens) only.
MlaProjection mla_project(const AttentionWeights& weights, const ModelConfig& config, const at::Tensor& x,
                          const RopeTables& rope, int64_t first_row = 0);

// Auto picks sparse when most of the attention is sparse: tokens > 4 x index_topk; otherwise
// fused for bfloat16 on a GPU (where it is available) and eager elsewhere, so float32 runs keep
// transformers' exact computation.
AttentionPath resolve_attention_path(AttentionPath path, int64_t tokens, int64_t index_topk,
                                     const at::Device& device = at::kCPU, at::ScalarType dtype = at::kFloat);

// Attention output [tokens - first_row, hidden] (after o_proj) for the projection's query rows.
// `topk`: [tokens, index_topk] selected positions of every row (see indexer.h). Queries are processed in chunks of about `chunk_bytes` of
// intermediate memory.
at::Tensor mla_attend(const MlaProjection& projection, const AttentionWeights& weights, const ModelConfig& config,
                      const at::Tensor& topk, double softmax_scale, AttentionPath path,
                      int64_t chunk_bytes = int64_t{256} << 20);

}  // namespace indexcache
