#include "deepseek_v4_model.h"

#include <cmath>
#include <stdexcept>

#include "error.h"
#include "norm.h"
#include "rope.h"

namespace indexcache {
namespace {

at::Tensor ids_tensor(const std::vector<int64_t>& ids, at::Device device) {
  return at::tensor(ids, at::TensorOptions().dtype(at::kLong)).to(device);
}

// Rows `first` .. `first + count` of rotary tables (positions are rows).
V4RopeTables table_rows(const V4RopeTables& tables, int64_t first, int64_t count) {
  return {tables.cos.narrow(0, first, count), tables.sin.narrow(0, first, count)};
}

// The rows of compressed entries: entry w sits at position w * rate (its block's first token).
V4RopeTables entry_rows(const V4RopeTables& tables, int64_t entries, int64_t rate) {
  const at::Tensor rows = at::arange(entries, at::TensorOptions().dtype(at::kLong).device(tables.cos.device())) * rate;
  return {tables.cos.index_select(0, rows), tables.sin.index_select(0, rows)};
}

// sqrt(softplus(x)): DeepSeek-V4's router score.
at::Tensor sqrt_softplus(const at::Tensor& logits) { return at::sqrt(at::softplus(logits)); }

}  // namespace

DeepseekV4Model::DeepseekV4Model(DeepseekV4Config config, Checkpoint checkpoint, V4ModelOptions options)
    : config_(std::move(config)), checkpoint_(std::move(checkpoint)), options_(options) {
  if (options_.dtype != at::kFloat && options_.dtype != at::kBFloat16) {
    throw std::invalid_argument("DeepseekV4Model: dtype must be float32 or bfloat16");
  }
  layers_.resize(static_cast<std::size_t>(config_.num_hidden_layers));
  const RopeFrequencies main = rope_frequencies(config_.main_rope, config_.qk_rope_head_dim);
  const RopeFrequencies compress = rope_frequencies(config_.compress_rope, config_.qk_rope_head_dim);
  main_inverse_frequencies_ = main.inverse_frequencies;
  compress_inverse_frequencies_ = compress.inverse_frequencies;
  main_attention_factor_ = main.attention_factor;
  compress_attention_factor_ = compress.attention_factor;
}

const V4RopeTables& DeepseekV4Model::rope(bool compressed, int64_t length) {
  V4RopeTables& tables = compressed ? compress_tables_ : main_tables_;
  if (!tables.cos.defined() || tables.cos.size(0) < length) {
    const at::Tensor& frequencies = compressed ? compress_inverse_frequencies_ : main_inverse_frequencies_;
    const double factor = compressed ? compress_attention_factor_ : main_attention_factor_;
    const at::Tensor angles = at::outer(at::arange(length, at::kFloat), frequencies);  // float32, as transformers
    tables.cos = (angles.cos() * factor).to(options_.device, options_.dtype);
    tables.sin = (angles.sin() * factor).to(options_.device, options_.dtype);
  }
  return tables;
}

const V4LayerWeights& DeepseekV4Model::layer_weights(int64_t layer, bool need_indexer) {
  auto& slot = options_.keep_weights ? layers_[static_cast<std::size_t>(layer)] : streamed_;
  const bool stale = !slot || (!options_.keep_weights && streamed_layer_ != layer) || (need_indexer && !slot->has_indexer);
  if (stale) {
    // An F CSA layer needs its indexer; S layers load without it (their indexer may be absent).
    const bool with_indexer = need_indexer || (slot && slot->has_indexer);
    slot = std::make_unique<V4LayerWeights>(
        load_v4_layer(checkpoint_, config_, layer, with_indexer, options_.dtype, options_.device));
    streamed_layer_ = layer;
  }
  return *slot;
}

const V4HeadWeights& DeepseekV4Model::head_weights() {
  if (!head_) head_ = std::make_unique<V4HeadWeights>(load_v4_head(checkpoint_, config_, options_.dtype, options_.device));
  return *head_;
}

at::Tensor DeepseekV4Model::embed(const std::vector<int64_t>& ids) {
  for (int64_t id : ids) {
    if (id < 0 || id >= config_.vocab_size) {
      throw InputError("", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                               std::to_string(config_.vocab_size) + ")");
    }
  }
  const at::Tensor rows = head_weights().embed.index_select(0, ids_tensor(ids, options_.device));
  return rows.unsqueeze(1).expand({-1, config_.hc_mult, -1}).contiguous();
}

at::Tensor DeepseekV4Model::attention(int64_t layer, const V4LayerWeights& weights, const at::Tensor& input,
                                      const at::Tensor& shared_topk, int64_t first_row, at::Tensor& topk_out) {
  const V4Attention type = config_.layer_types[static_cast<std::size_t>(layer)];
  const int64_t tokens = input.size(0);
  const int64_t queries = tokens - first_row;
  const int64_t heads = config_.num_attention_heads;
  const int64_t dim = config_.head_dim;
  const double eps = config_.rms_norm_eps;
  const V4RopeTables& tables = rope(type != V4Attention::Sliding, tokens);
  const V4RopeTables query_tables = table_rows(tables, first_row, queries);

  const at::Tensor q_latent = rms_norm(apply_linear(input, weights.q_a), weights.q_norm, eps);  // [T, q_lora]
  at::Tensor q = apply_linear(q_latent.narrow(0, first_row, queries), weights.q_b).reshape({queries, heads, dim});
  q = v4_rotate(v4_unweighted_rms_norm(q, eps), query_tables, 0);
  at::Tensor keys = rms_norm(apply_linear(input, weights.kv), weights.kv_norm, eps);  // [T, D], values too
  keys = v4_rotate(keys, table_rows(tables, 0, tokens), 0);

  int64_t entries = 0;
  const int64_t rate = config_.compress_rate(type);
  at::Tensor selection;
  if (type != V4Attention::Sliding) {
    entries = tokens / rate;
    const V4RopeTables entry_tables = entry_rows(tables, entries, rate);
    const V4CompressorWeights& compressor = weights.compressor;
    const at::Tensor compressed =
        v4_compress(apply_linear(input, compressor.kv), apply_linear(input, compressor.gate), compressor.ape,
                    compressor.norm, rate, type == V4Attention::Compressed, entry_tables, eps);
    keys = at::cat({keys, compressed}, 0);
    if (type == V4Attention::Compressed) {
      const int64_t take = std::min(config_.index_topk, entries);
      if (shared_topk.defined()) {
        if (shared_topk.dim() != 2 || shared_topk.size(0) != tokens || shared_topk.size(1) != take) {
          throw std::invalid_argument("DeepseekV4Model::forward_layer: shared_topk must be [tokens, min(index_topk, entries)]");
        }
        topk_out = shared_topk;
      } else {
        const V4IndexerWeights& indexer = weights.indexer;
        const at::Tensor index_keys =
            v4_compress(apply_linear(input, indexer.compressor.kv), apply_linear(input, indexer.compressor.gate),
                        indexer.compressor.ape, indexer.compressor.norm, rate, /*overlapping=*/true, entry_tables, eps);
        at::Tensor index_q = apply_linear(q_latent, indexer.q_b).reshape({tokens, config_.index_n_heads, config_.index_head_dim});
        index_q = v4_rotate(index_q, table_rows(tables, 0, tokens), 0);
        const at::Tensor head_weights = apply_linear(input, indexer.head_weights).to(at::kFloat) *
                                        std::pow(static_cast<double>(config_.index_n_heads), -0.5);
        topk_out = v4_indexer_select(index_q, index_keys, head_weights, config_.index_topk, rate, 0);
      }
      selection = topk_out.narrow(0, first_row, queries);
    }
  }
  const at::Tensor mask = v4_attention_mask(first_row, queries, tokens, entries, config_.sliding_window, rate, selection,
                                            options_.dtype, options_.device);
  at::Tensor output = v4_sink_attention(q.transpose(0, 1), keys, mask, weights.sinks, std::pow(static_cast<double>(dim), -0.5));
  // Values are the keys, so they carry the keys' rotation: undo it at the query's position.
  output = v4_rotate(output, query_tables, 0, /*inverse=*/true);
  return v4_grouped_output(output.reshape({queries, heads * dim}), weights.o_a, weights.o_b, config_.o_groups);
}

at::Tensor DeepseekV4Model::moe(const V4LayerWeights& weights, const at::Tensor& input, const std::vector<int64_t>& ids,
                                int64_t first_row) {
  const at::Tensor scores = sqrt_softplus(apply_linear(input, weights.router));  // [Q, experts]
  at::Tensor experts;
  if (weights.token_experts.defined()) {
    const std::vector<int64_t> row_ids(ids.begin() + first_row, ids.end());
    experts = weights.token_experts.index_select(0, ids_tensor(row_ids, options_.device));
  } else {
    experts = std::get<1>(at::topk(scores + weights.router_bias, config_.num_experts_per_tok, -1, true, false));
  }
  at::Tensor gates = scores.gather(1, experts);
  gates = gates / (gates.sum(-1, /*keepdim=*/true) + 1e-20) * config_.routed_scaling_factor;

  // Experts in ascending order, each adding its weighted output to its tokens' rows (the order
  // transformers sums them in).
  at::Tensor routed = at::zeros_like(input);
  const at::Tensor hits = at::bincount(experts.flatten(), {}, config_.n_routed_experts).cpu();
  for (int64_t e = 0; e < config_.n_routed_experts; ++e) {
    if (hits[e].item<int64_t>() == 0) continue;
    const auto where = at::where(experts.eq(e));
    const at::Tensor& token = where[0];
    const at::Tensor& slot = where[1];
    const V4ExpertWeights& expert = weights.experts[static_cast<std::size_t>(e)];
    const at::Tensor output = v4_clamped_swiglu(input.index_select(0, token), expert.gate, expert.up, expert.down,
                                                config_.swiglu_limit) *
                              gates.flatten().index_select(0, token * config_.num_experts_per_tok + slot).unsqueeze(-1);
    routed.index_add_(0, token, output.to(routed.scalar_type()));
  }
  const V4ExpertWeights& shared = weights.shared_expert;
  return routed + v4_clamped_swiglu(input, shared.gate, shared.up, shared.down, config_.swiglu_limit);
}

V4LayerOutput DeepseekV4Model::forward_layer(int64_t layer, const at::Tensor& hidden, const std::vector<int64_t>& ids,
                                             const at::Tensor& shared_topk, int64_t first_row) {
  if (layer < 0 || layer >= config_.num_hidden_layers) throw std::out_of_range("DeepseekV4Model: layer out of range");
  const int64_t tokens = hidden.size(0);
  if (hidden.dim() != 3 || hidden.size(1) != config_.hc_mult || hidden.size(2) != config_.hidden_size ||
      static_cast<int64_t>(ids.size()) != tokens || first_row < 0 || first_row >= tokens) {
    throw std::invalid_argument("DeepseekV4Model::forward_layer: hidden must be [tokens, hc_mult, hidden] for the ids");
  }
  const V4Attention type = config_.layer_types[static_cast<std::size_t>(layer)];
  const bool runs_indexer = type == V4Attention::Compressed && !shared_topk.defined();
  const V4LayerWeights& weights = layer_weights(layer, runs_indexer);
  const double eps = config_.rms_norm_eps;
  const int64_t queries = tokens - first_row;

  // Attention reads every row (keys, compressors, the indexer); only the query rows go on.
  const HyperMix attn_mix = v4_hyper_mix(hidden, weights.attn_hc_fn, weights.attn_hc_base, weights.attn_hc_scale, eps,
                                         config_.hc_eps, config_.hc_sinkhorn_iters);
  V4LayerOutput out;
  const at::Tensor attended =
      attention(layer, weights, rms_norm(attn_mix.collapsed, weights.attn_norm, eps), shared_topk, first_row, out.topk);
  const HyperMix query_mix{attn_mix.post.narrow(0, first_row, queries), attn_mix.comb.narrow(0, first_row, queries), {}};
  const at::Tensor streams = v4_hyper_combine(query_mix, attended, hidden.narrow(0, first_row, queries));

  const HyperMix ffn_mix = v4_hyper_mix(streams, weights.ffn_hc_fn, weights.ffn_hc_base, weights.ffn_hc_scale, eps,
                                        config_.hc_eps, config_.hc_sinkhorn_iters);
  const at::Tensor mixed = moe(weights, rms_norm(ffn_mix.collapsed, weights.ffn_norm, eps), ids, first_row);
  out.hidden = v4_hyper_combine(ffn_mix, mixed, streams);
  return out;
}

int64_t DeepseekV4Model::pattern_invariant_rows(int64_t tokens) const {
  return std::min(tokens, config_.csa_compress_rate * (config_.index_topk + 1) - 1);
}

double DeepseekV4Model::sequence_nll_range(const at::Tensor& rows, const std::vector<int64_t>& ids, int64_t first,
                                           int64_t end) {
  const int64_t tokens = static_cast<int64_t>(ids.size());
  const int64_t last = std::min(end, tokens - 1);  // the last token predicts nothing
  if (last <= first) return 0.0;
  const V4HeadWeights& head = head_weights();
  const double eps = config_.rms_norm_eps;
  const at::Tensor predicting = rows.narrow(0, 0, last - first);
  const at::Tensor collapsed = v4_hyper_head(predicting, head.hc_fn, head.hc_base, head.hc_scale, eps, config_.hc_eps);
  const at::Tensor logits = apply_linear(rms_norm(collapsed, head.norm, eps), head.lm_head).to(at::kFloat);
  const std::vector<int64_t> next(ids.begin() + first + 1, ids.begin() + last + 1);
  const at::Tensor targets = ids_tensor(next, options_.device).unsqueeze(1);
  return -at::log_softmax(logits, -1).gather(1, targets).sum().to(at::kDouble).item<double>();
}

double DeepseekV4Model::sequence_nll(const at::Tensor& hidden, const std::vector<int64_t>& ids) {
  const int64_t tokens = hidden.size(0);
  const int64_t split = pattern_invariant_rows(tokens);
  return sequence_nll_range(hidden.narrow(0, 0, split), ids, 0, split) +
         sequence_nll_range(hidden.narrow(0, split, tokens - split), ids, split, tokens);
}

V4SequenceResult DeepseekV4Model::run_sequence(const std::vector<int64_t>& ids, const LayerPattern& pattern) {
  const std::vector<int64_t> csa = config_.csa_layers();
  if (pattern.layers() != static_cast<int64_t>(csa.size())) {
    throw std::invalid_argument("DeepseekV4Model::run_sequence: the pattern needs one character per CSA layer");
  }
  V4SequenceResult result;
  at::Tensor hidden = embed(ids);
  at::Tensor last_full;
  std::size_t csa_index = 0;
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    const bool is_csa = csa_index < csa.size() && csa[csa_index] == layer;
    at::Tensor shared;
    if (is_csa && !pattern.is_full(static_cast<int64_t>(csa_index))) shared = last_full;
    V4LayerOutput out = forward_layer(layer, hidden, ids, shared);
    if (is_csa) {
      if (!shared.defined()) last_full = out.topk;
      result.topk[layer] = out.topk;
      ++csa_index;
    }
    hidden = out.hidden;
  }
  result.nll = sequence_nll(hidden, ids);
  return result;
}

}  // namespace indexcache
