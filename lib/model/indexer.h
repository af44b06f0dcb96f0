// The lightning indexer of DeepSeek Sparse Attention: for every query t it scores every causal
// key s <= t,
//     score[t, s] = sum_h w[t, h] * relu(q[t, h, :] . k[s, :] * softmax_scale)
// (w already includes index_n_heads^-0.5), and selects the `index_topk` best keys.
//
// Selection rule (the CPU reference; the CUDA kernels follow it too):
//   - rows with t + 1 <= k select every causal key: positions 0..t, then kTopkPadding (-1);
//   - other rows hold the k highest-scoring positions, exact ties resolved to the lower
//     position, in ascending position order (the selection is a set for attention and for the
//     overlap; this order costs the CUDA select nothing, where a sort by score dominated it).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace indexcache {

constexpr int64_t kTopkPadding = -1;

// Precision of the indexer's q and k when scoring (accumulation is always float32):
//   Model:    as transformers computes them: the compute dtype (bf16 on a bf16 model, float32 on
//             a float32 model), upcast to float32 for the dot products. The default.
//   Float32, BFloat16: q and k rounded to that dtype whatever the compute dtype.
//   Float8:   e4m3 q (scale per token and head) and k (scale per token), as production serving
//             engines score the indexer.
enum class IndexerPrecision { Model, Float32, BFloat16, Float8 };
IndexerPrecision parse_indexer_precision(const std::string& text);  // "model", "fp32", "bf16", "fp8"
const char* indexer_precision_label(IndexerPrecision precision);

// Projected indexer inputs of one sequence, all float32.
struct IndexerProjection {
  at::Tensor queries;  // [tokens, index_heads, index_dim], rotated
  at::Tensor keys;     // [tokens, index_dim], normalised and rotated
  at::Tensor weights;  // [tokens, index_heads], weights_proj(x) * index_heads^-0.5
  double softmax_scale = 1.0;  // index_dim^-0.5
  IndexerPrecision precision = IndexerPrecision::Model;  // already applied to queries and keys
};

// x: [tokens, hidden] (the layer's normalised input, compute dtype); q_latent: [tokens, q_lora]
// (the MLA query latent after q_a_layernorm). Projections run in the compute dtype and are
// upcast to float32 for scoring, as transformers does.
IndexerProjection indexer_project(const IndexerWeights& weights, const ModelConfig& config, const at::Tensor& x,
                                  const at::Tensor& q_latent, const RopeTables& rope,
                                  IndexerPrecision precision = IndexerPrecision::Model);

// Scores of queries [begin, end) against keys [0, end): [end - begin, end] float32, with
// -inf where s > t (not causal).
at::Tensor lightning_scores(const IndexerProjection& projection, int64_t begin, int64_t end);

// Top-k rows for scores [rows, keys] whose first row is query position `first_position`:
// [rows, k] int64 under the selection rule above.
at::Tensor select_topk(const at::Tensor& scores, int64_t first_position, int64_t k);

// Selected positions of every query: [tokens, k] int64 (k = config.index_topk). Chunks the
// queries so no more than about `chunk_bytes` of scores exist at once. Dispatches to the CUDA
// kernels when the projection lives on a GPU and they are built.
at::Tensor indexer_topk(const IndexerProjection& projection, int64_t k, int64_t chunk_bytes = int64_t{256} << 20);

// The selection of rows 0..tokens-1 when every one of them has at most k causal keys
// (tokens <= k): [tokens, k] int64, row t = 0..t then kTopkPadding — what the indexer selects
// for such rows, without computing it.
at::Tensor all_causal_topk(int64_t tokens, int64_t k, const at::Device& device);

// Boolean mask [rows, keys] of the selected positions of `topk` rows [rows, k] (padding
// ignored), restricted to causal positions of queries starting at `first_position`.
at::Tensor selection_mask(const at::Tensor& topk_rows, int64_t first_position, int64_t keys);

}  // namespace indexcache
