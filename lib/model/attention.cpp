#include "attention.h"

#include <torch/version.h>

#include <algorithm>
#include <limits>

#include "error.h"
#include "indexer.h"
#include "norm.h"

namespace indexcache {

MlaProjection mla_project(const AttentionWeights& w, const ModelConfig& c, const at::Tensor& x,
                          const RopeTables& rope, int64_t first_row) {
  const int64_t tokens = x.size(0);
  const int64_t rows = tokens - first_row;
  const int64_t nope = c.qk_nope_head_dim;
  const int64_t rope_dim = c.qk_rope_head_dim;

  MlaProjection p;
  p.first_row = first_row;
  p.q_latent = rms_norm(apply_linear(x, w.q_a_proj, w.q_a_bias), w.q_a_norm, 1e-6);
  at::Tensor q = apply_linear(p.q_latent.narrow(0, first_row, rows), w.q_b_proj)
                     .view({rows, c.num_attention_heads, c.qk_head_dim()});
  p.queries_nope = q.narrow(-1, 0, nope);
  // The query rows' own positions: the rotary tables from row first_row on.
  const RopeTables query_rope{rope.cos.narrow(0, first_row, rows), rope.sin.narrow(0, first_row, rows)};
  p.queries_rope = apply_rope(q.narrow(-1, nope, rope_dim), query_rope, RopeLayout::Interleaved, /*token_dim=*/0);

  at::Tensor compressed = apply_linear(x, w.kv_a_proj, w.kv_a_bias);
  p.kv_latent = rms_norm(compressed.narrow(-1, 0, c.kv_lora_rank), w.kv_a_norm, 1e-6);
  p.keys_rope = apply_rope(compressed.narrow(-1, c.kv_lora_rank, rope_dim), rope, RopeLayout::Interleaved,
                           /*token_dim=*/0);
  return p;
}

AttentionPath parse_attention_path(const std::string& text) {
  if (text == "auto") return AttentionPath::Auto;
  if (text == "eager") return AttentionPath::Eager;
  if (text == "sparse") return AttentionPath::Sparse;
  if (text == "fused") {
    if (!fused_attention_available()) {
      throw InputError("--attention", "fused needs libtorch 2.0 or newer; this build has " TORCH_VERSION);
    }
    return AttentionPath::Fused;
  }
  throw InputError("--attention", "\"" + text + "\" is not a path (use auto, eager, sparse or fused)");
}

bool fused_attention_available() { return TORCH_VERSION_MAJOR >= 2; }

AttentionPath resolve_attention_path(AttentionPath path, int64_t tokens, int64_t index_topk, const at::Device& device,
                                     at::ScalarType dtype) {
  if (path != AttentionPath::Auto) return path;
  if (tokens > 4 * index_topk) return AttentionPath::Sparse;
  const bool fused = fused_attention_available() && device.is_cuda() && dtype == at::kBFloat16;
  return fused ? AttentionPath::Fused : AttentionPath::Eager;
}

namespace {

int64_t chunk_rows(int64_t bytes_per_row, int64_t chunk_bytes, int64_t tokens) {
  return std::clamp<int64_t>(chunk_bytes / std::max<int64_t>(1, bytes_per_row), 1, tokens);
}

// The eager and fused paths' operands, transformers' way: per-head keys [nope | rope] and values
// from kv_b_proj, each with a contiguous last dimension.
struct PerHeadOperands {
  at::Tensor queries;  // [heads, tokens - first_row, qk]
  at::Tensor keys;     // [heads, tokens, qk]
  at::Tensor values;   // [heads, tokens, v]
};

PerHeadOperands per_head_operands(const MlaProjection& p, const AttentionWeights& w, const ModelConfig& c) {
  const int64_t tokens = p.kv_latent.size(0);
  const int64_t heads = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim;
  at::Tensor kv = apply_linear(p.kv_latent, w.kv_b_proj).view({tokens, heads, nope + c.v_head_dim});
  at::Tensor keys_rope = p.keys_rope.unsqueeze(1).expand({tokens, heads, c.qk_rope_head_dim});
  PerHeadOperands o;
  o.queries = at::cat({p.queries_nope, p.queries_rope}, -1).transpose(0, 1);
  o.keys = at::cat({kv.narrow(-1, 0, nope), keys_rope}, -1).transpose(0, 1);
  o.values = kv.narrow(-1, nope, c.v_head_dim).transpose(0, 1);
  return o;
}

// transformers' eager attention.
at::Tensor attend_eager(const MlaProjection& p, const AttentionWeights& w, const ModelConfig& c, const at::Tensor& topk,
                        double scale, int64_t chunk_bytes) {
  const int64_t tokens = p.kv_latent.size(0);
  const int64_t heads = c.num_attention_heads;
  const auto [queries, keys, values] = per_head_operands(p, w, c);

  const int64_t first = p.first_row;
  at::Tensor output = at::empty({tokens - first, heads * c.v_head_dim}, values.options());
  const int64_t chunk = chunk_rows(heads * tokens * 4 * 2, chunk_bytes, tokens);  // logits + probabilities
  for (int64_t begin = first; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    at::Tensor logits =
        at::matmul(queries.narrow(1, begin - first, end - begin), keys.narrow(1, 0, end).transpose(1, 2));
    logits.mul_(scale);
    at::Tensor allowed = selection_mask(topk.narrow(0, begin, end - begin), begin, end);
    logits.masked_fill_(allowed.logical_not().unsqueeze(0), -std::numeric_limits<float>::infinity());
    at::Tensor probabilities = at::softmax(logits, -1, at::kFloat).to(values.scalar_type());
    at::Tensor rows = at::matmul(probabilities, values.narrow(1, 0, end));  // [heads, rows, v]
    output.narrow(0, begin - first, end - begin)
        .copy_(rows.transpose(0, 1).reshape({end - begin, heads * c.v_head_dim}));
  }
  return output;
}

#if TORCH_VERSION_MAJOR >= 2
// The eager path's computation through scaled_dot_product_attention: per chunk of query rows only
// the boolean selection mask [rows, keys] is materialised.
at::Tensor attend_fused(const MlaProjection& p, const AttentionWeights& w, const ModelConfig& c, const at::Tensor& topk,
                        double scale, int64_t chunk_bytes) {
  const int64_t tokens = p.kv_latent.size(0);
  const int64_t heads = c.num_attention_heads;
  const PerHeadOperands per_head = per_head_operands(p, w, c);
  // [1, heads, tokens, dim], the last dimension contiguous as the fused kernels require.
  const at::Tensor queries = per_head.queries.unsqueeze(0);
  const at::Tensor keys = per_head.keys.unsqueeze(0);
  const at::Tensor values = per_head.values.contiguous().unsqueeze(0);

  const int64_t first = p.first_row;
  at::Tensor output = at::empty({tokens - first, heads * c.v_head_dim}, values.options());
  // The mask, and its additive form in the compute dtype, per query row.
  const int64_t chunk = chunk_rows(tokens * (1 + p.kv_latent.element_size()), chunk_bytes, tokens);
  for (int64_t begin = first; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    at::Tensor allowed = selection_mask(topk.narrow(0, begin, end - begin), begin, end);  // [rows, end]
    at::Tensor rows = at::scaled_dot_product_attention(
        queries.narrow(2, begin - first, end - begin), keys.narrow(2, 0, end), values.narrow(2, 0, end), allowed,
        /*dropout_p=*/0.0, /*is_causal=*/false, scale);  // [1, heads, rows, v]
    output.narrow(0, begin - first, end - begin).copy_(rows.squeeze(0).transpose(0, 1).reshape({end - begin, -1}));
  }
  return output;
}
#else
at::Tensor attend_fused(const MlaProjection&, const AttentionWeights&, const ModelConfig&, const at::Tensor&, double,
                        int64_t) {
  throw InputError("--attention", "fused needs libtorch 2.0 or newer; this build has " TORCH_VERSION);
}
#endif

// Absorbed attention over each query's gathered latents. With W_uk [heads, nope, kv_lora] and
// W_uv [heads, v, kv_lora] from kv_b_proj: q_nope . (W_uk l) = (q_nope W_uk) . l and
// sum_j p_j W_uv l_j = W_uv (sum_j p_j l_j).
at::Tensor attend_sparse(const MlaProjection& p, const AttentionWeights& w, const ModelConfig& c,
                         const at::Tensor& topk, double scale, int64_t chunk_bytes) {
  const int64_t tokens = p.kv_latent.size(0);
  const int64_t heads = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim;
  const int64_t latent = c.kv_lora_rank;
  const int64_t k = topk.size(1);
  at::Tensor up = w.kv_b_proj.view({heads, nope + c.v_head_dim, latent});
  at::Tensor up_keys = up.narrow(1, 0, nope);               // [heads, nope, latent]
  at::Tensor up_values = up.narrow(1, nope, c.v_head_dim);  // [heads, v, latent]
  at::Tensor cache = at::cat({p.kv_latent, p.keys_rope}, -1);  // [tokens, latent + rope]

  const int64_t first = p.first_row;
  at::Tensor output = at::empty({tokens - first, heads, c.v_head_dim}, p.kv_latent.options());
  // Per query row: gathered latents k x (latent + rope), absorbed queries and outputs
  // heads x (latent + rope), and float32 logits heads x k.
  const int64_t element = p.kv_latent.element_size();
  const int64_t bytes_per_row = (k + 2 * heads) * (latent + c.qk_rope_head_dim) * element + heads * k * 4 * 2;
  const int64_t chunk = chunk_rows(bytes_per_row, chunk_bytes, tokens);
  for (int64_t begin = first; begin < tokens; begin += chunk) {
    const int64_t rows = std::min(chunk, tokens - begin);
    at::Tensor selected = topk.narrow(0, begin, rows);
    at::Tensor valid = selected >= 0;  // padding (-1) of rows with fewer than k causal keys
    at::Tensor gathered = cache.index_select(0, selected.clamp_min(0).reshape({-1})).view({rows, k, -1});
    // Absorbed query [rows, heads, latent + rope]: (q_nope W_uk) next to the rotary query.
    at::Tensor q_absorbed = at::einsum("rhn,hnl->rhl", {p.queries_nope.narrow(0, begin - first, rows), up_keys});
    at::Tensor query = at::cat({q_absorbed, p.queries_rope.narrow(0, begin - first, rows)}, -1);
    at::Tensor logits = at::matmul(query, gathered.transpose(1, 2)) * scale;  // [rows, heads, k]
    logits = logits.masked_fill(valid.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
    at::Tensor probabilities = at::softmax(logits, -1, at::kFloat).to(gathered.scalar_type());
    at::Tensor mixed = at::matmul(probabilities, gathered.narrow(2, 0, latent));  // [rows, heads, latent]
    output.narrow(0, begin - first, rows).copy_(at::einsum("rhl,hvl->rhv", {mixed, up_values}));
  }
  return output.view({tokens - first, heads * c.v_head_dim});
}

}  // namespace

at::Tensor mla_attend(const MlaProjection& p, const AttentionWeights& w, const ModelConfig& c, const at::Tensor& topk,
                      double scale, AttentionPath path, int64_t chunk_bytes) {
  const int64_t tokens = p.kv_latent.size(0);
  at::Tensor heads_output;
  switch (resolve_attention_path(path, tokens, c.index_topk, p.kv_latent.device(), p.kv_latent.scalar_type())) {
    case AttentionPath::Sparse: heads_output = attend_sparse(p, w, c, topk, scale, chunk_bytes); break;
    case AttentionPath::Fused: heads_output = attend_fused(p, w, c, topk, scale, chunk_bytes); break;
    default: heads_output = attend_eager(p, w, c, topk, scale, chunk_bytes); break;
  }
  return apply_linear(heads_output, w.o_proj, w.o_bias);
}

}  // namespace indexcache
