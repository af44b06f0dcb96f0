#include "indexer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "error.h"
#include "fp8.h"
#include "norm.h"

namespace indexcache {

IndexerPrecision parse_indexer_precision(const std::string& text) {
  if (text == "model") return IndexerPrecision::Model;
  if (text == "fp32") return IndexerPrecision::Float32;
  if (text == "bf16") return IndexerPrecision::BFloat16;
  if (text == "fp8") return IndexerPrecision::Float8;
  throw InputError("--indexer-precision", "\"" + text + "\" is not supported (use model, fp32, bf16 or fp8)");
}

const char* indexer_precision_label(IndexerPrecision precision) {
  switch (precision) {
    case IndexerPrecision::Float32: return "fp32";
    case IndexerPrecision::BFloat16: return "bf16";
    case IndexerPrecision::Float8: return "fp8";
    case IndexerPrecision::Model: break;
  }
  return "model";
}

namespace {

// q or k (float32) as the chosen precision leaves them.
at::Tensor apply_precision(const at::Tensor& values, IndexerPrecision precision) {
  switch (precision) {
    case IndexerPrecision::BFloat16: return values.to(at::kBFloat16).to(at::kFloat);
    case IndexerPrecision::Float8: return fp8_quantize_rows(values);
    case IndexerPrecision::Float32:
    case IndexerPrecision::Model: break;
  }
  return values;
}

}  // namespace

IndexerProjection indexer_project(const IndexerWeights& w, const ModelConfig& config, const at::Tensor& x,
                                  const at::Tensor& q_latent, const RopeTables& rope, IndexerPrecision precision) {
  const int64_t tokens = x.size(0);
  const int64_t heads = config.index_n_heads;
  const int64_t dim = config.index_head_dim;
  const int64_t rope_dim = config.qk_rope_head_dim;
  const RopeLayout layout = config.indexer_rope_layout();

  // The rotary part comes first in the indexer (the main attention puts it last).
  at::Tensor q = apply_linear(q_latent, w.wq_b).view({tokens, heads, dim});
  at::Tensor q_rotated = apply_rope(q.narrow(-1, 0, rope_dim), rope, layout, /*token_dim=*/0);
  q = at::cat({q_rotated, q.narrow(-1, rope_dim, dim - rope_dim)}, -1);

  at::Tensor k = layer_norm(apply_linear(x, w.wk), w.k_norm_weight, w.k_norm_bias, 1e-6);
  at::Tensor k_rotated = apply_rope(k.narrow(-1, 0, rope_dim), rope, layout, /*token_dim=*/0);
  k = at::cat({k_rotated, k.narrow(-1, rope_dim, dim - rope_dim)}, -1);

  IndexerProjection projection;
  projection.queries = apply_precision(q.to(at::kFloat), precision);
  projection.keys = apply_precision(k.to(at::kFloat), precision);
  projection.precision = precision;
  projection.weights = apply_linear(x.to(at::kFloat), w.weights_proj) * std::pow(static_cast<double>(heads), -0.5);
  projection.softmax_scale = std::pow(static_cast<double>(dim), -0.5);
  return projection;
}

at::Tensor lightning_scores(const IndexerProjection& p, int64_t begin, int64_t end) {
  at::Tensor q = p.queries.narrow(0, begin, end - begin);  // [rows, heads, dim]
  at::Tensor k = p.keys.narrow(0, 0, end);                 // [keys, dim]
  // Same operation order as transformers: (q . k) * scale, relu, then weight and sum heads.
  // In place where possible: these [rows, heads, keys] passes dominate the CPU time.
  at::Tensor per_head = at::matmul(q, k.t());  // [rows, heads, keys]
  per_head.mul_(p.softmax_scale).relu_();
  at::Tensor w = p.weights.narrow(0, begin, end - begin).unsqueeze(1);  // [rows, 1, heads]
  at::Tensor scores = at::matmul(w, per_head).squeeze(1);               // [rows, keys]
  at::Tensor positions = at::arange(end, scores.options().dtype(at::kLong));
  at::Tensor queries = at::arange(begin, end, scores.options().dtype(at::kLong)).unsqueeze(1);
  return scores.masked_fill_(positions.unsqueeze(0) > queries, -std::numeric_limits<float>::infinity());
}

at::Tensor select_topk(const at::Tensor& scores, int64_t first_position, int64_t k) {
  const int64_t rows = scores.size(0);
  const int64_t keys = scores.size(1);
  auto long_options = scores.options().dtype(at::kLong);
  at::Tensor result = at::full({rows, k}, kTopkPadding, long_options);
  const int64_t take = std::min(k, keys);
  // The k-th largest score of each row is the threshold: everything above it is selected, and
  // of the scores equal to it the lowest positions fill the remaining places. That pins the
  // tie rule without sorting whole rows (at::topk alone leaves tie order unspecified).
  at::Tensor threshold = std::get<0>(at::topk(scores, take, -1)).narrow(1, take - 1, 1);  // [rows, 1]
  at::Tensor above = scores > threshold;
  at::Tensor equal = scores == threshold;
  at::Tensor places_left = take - above.sum(-1, /*keepdim=*/true);
  at::Tensor chosen = above | (equal & (equal.cumsum(-1) <= places_left));
  // Exactly `take` chosen per row; nonzero() lists them in ascending position order.
  if (chosen.sum().item<int64_t>() != rows * take) {
    throw InputError("indexer", "scores contain NaN (non-finite activations); no result is written");
  }
  result.narrow(1, 0, take).copy_(chosen.nonzero().select(1, 1).view({rows, take}));
  // Rows with t + 1 <= k take every causal key in position order, then padding.
  const int64_t full_rows = std::clamp<int64_t>(k - first_position, 0, rows);
  if (full_rows > 0) {
    at::Tensor columns = at::arange(k, long_options).unsqueeze(0);
    at::Tensor rows_positions = at::arange(first_position, first_position + full_rows, long_options).unsqueeze(1);
    at::Tensor all_causal = at::where(columns <= rows_positions, columns, at::full({}, kTopkPadding, long_options));
    result.narrow(0, 0, full_rows).copy_(all_causal);
  }
  return result;
}

at::Tensor all_causal_topk(int64_t tokens, int64_t k, const at::Device& device) {
  auto long_options = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor columns = at::arange(k, long_options).unsqueeze(0);
  at::Tensor positions = at::arange(tokens, long_options).unsqueeze(1);
  return at::where(columns <= positions, columns, at::full({}, kTopkPadding, long_options));
}

#ifdef INDEXCACHE_CUDA
at::Tensor indexer_topk_cuda(const IndexerProjection& projection, int64_t k);  // lib/model/indexer_cuda.cpp
#endif

at::Tensor indexer_topk(const IndexerProjection& projection, int64_t k, int64_t chunk_bytes) {
#ifdef INDEXCACHE_CUDA
  if (projection.queries.is_cuda()) return indexer_topk_cuda(projection, k);
#endif
  const int64_t tokens = projection.queries.size(0);
  const int64_t heads = projection.queries.size(1);
  at::Tensor result = at::empty({tokens, k}, projection.queries.options().dtype(at::kLong));
  // [rows, heads, keys] float32 scores dominate the memory of one chunk.
  const int64_t bytes_per_row = std::max<int64_t>(1, heads * tokens * 4);
  const int64_t chunk = std::clamp<int64_t>(chunk_bytes / bytes_per_row, 1, tokens);
  for (int64_t begin = 0; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    result.narrow(0, begin, end - begin).copy_(select_topk(lightning_scores(projection, begin, end), begin, k));
  }
  return result;
}

at::Tensor selection_mask(const at::Tensor& topk_rows, int64_t first_position, int64_t keys) {
  const int64_t rows = topk_rows.size(0);
  auto bool_options = topk_rows.options().dtype(at::kBool);
  at::Tensor mask = at::zeros({rows, keys}, bool_options);
  // Padding (-1) points at position 0, which every row may attend to anyway when it pads.
  at::Tensor targets = topk_rows.clamp_min(0).clamp_max(keys - 1);
  mask.scatter_(1, targets, true);
  at::Tensor positions = at::arange(keys, topk_rows.options().dtype(at::kLong)).unsqueeze(0);
  at::Tensor queries = at::arange(first_position, first_position + rows, topk_rows.options().dtype(at::kLong)).unsqueeze(1);
  return mask & (positions <= queries);
}

}  // namespace indexcache
