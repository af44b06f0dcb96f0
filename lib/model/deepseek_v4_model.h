// The DeepSeek-V4 decoder run layer by layer, with the public surface of DsaModel (model.h) so
// the search and the overlap can drive it: embed, forward_layer (F: the CSA layer runs its
// indexer; S: it attends with a given top-k), sequence NLL. Differences a caller must know:
//  - the hidden state is [tokens, hc_mult, hidden] (the hyper-connection streams),
//  - forward_layer needs the token ids (the first layers route experts by token id),
//  - only CSA layers select (sliding and HCA layers return an undefined topk); a V4 pattern
//    has one character per CSA layer, and an S CSA layer reuses the top-k of the nearest F CSA
//    layer before it, in compressed-entry index space (docs/ARCHITECTURE.md, DeepSeek-V4).
// Semantics: transformers 5.17's deepseek_v4 with eager attention.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <vector>

#include "checkpoint.h"
#include "deepseek_v4_config.h"
#include "deepseek_v4_ops.h"
#include "deepseek_v4_weights.h"
#include "layer_pattern.h"

namespace indexcache {

struct V4ModelOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // compute dtype: float32 or bfloat16
  bool keep_weights = true;           // keep each layer's weights once loaded
};

struct V4LayerOutput {
  at::Tensor hidden;  // [tokens - first_row, hc_mult, hidden] entering the next layer
  // CSA layers: [tokens, min(index_topk, entries)] int64 compressed-entry indices attended with,
  // -1 for picks past the query's visible entries (entries = tokens / csa_compress_rate).
  // Undefined for sliding and HCA layers.
  at::Tensor topk;
};

// One whole sequence under a pattern: the NLL sum and each CSA layer's selection.
struct V4SequenceResult {
  double nll = 0.0;                   // sum over the tokens - 1 predictions
  std::map<int64_t, at::Tensor> topk;  // CSA layer -> [tokens, k] as V4LayerOutput::topk
};

class DeepseekV4Model {
 public:
  DeepseekV4Model(DeepseekV4Config config, Checkpoint checkpoint, V4ModelOptions options = {});

  const DeepseekV4Config& config() const { return config_; }
  const Checkpoint& checkpoint() const { return checkpoint_; }
  const V4ModelOptions& options() const { return options_; }

  // Token embeddings copied onto every stream: [tokens, hc_mult, hidden] for ids in [0, vocab).
  at::Tensor embed(const std::vector<int64_t>& ids);

  // Runs decoder layer `layer` on `hidden` [tokens, hc_mult, hidden] of the sequence `ids`.
  // A CSA layer with `shared_topk` undefined runs its indexer (F); otherwise it attends with
  // `shared_topk` [tokens, k] (S; must come from a CSA layer of the same sequence). With
  // `first_row` > 0 only rows [first_row, tokens) are computed (earlier rows serve as keys and
  // feed the compressors); `topk` still covers every row.
  V4LayerOutput forward_layer(int64_t layer, const at::Tensor& hidden, const std::vector<int64_t>& ids,
                              const at::Tensor& shared_topk = {}, int64_t first_row = 0);

  // Sum over positions t < T-1 of -log p(ids[t+1] | ids[..t]) from the last layer's output
  // [T, hc_mult, hidden]; summed as sequence_nll_range(0, pattern_invariant_rows) +
  // sequence_nll_range(pattern_invariant_rows, T), like DsaModel.
  double sequence_nll(const at::Tensor& hidden, const std::vector<int64_t>& ids);
  // The same over positions [first, end); `rows` [end - first, hc_mult, hidden].
  double sequence_nll_range(const at::Tensor& rows, const std::vector<int64_t>& ids, int64_t first, int64_t end);

  // Rows whose hidden states no pattern changes: a query at t sees (t + 1) / rate compressed
  // entries and selects all of them while that is <= index_topk, i.e. for
  // t < rate * (index_topk + 1) - 1.
  int64_t pattern_invariant_rows(int64_t tokens) const;

  // Every layer under `pattern` (one character per CSA layer; S reuses the nearest F CSA
  // layer's selection).
  V4SequenceResult run_sequence(const std::vector<int64_t>& ids, const LayerPattern& pattern);

 private:
  const V4LayerWeights& layer_weights(int64_t layer, bool need_indexer);
  const V4HeadWeights& head_weights();
  // Rotary tables for positions [0, length) of the main / compressed RoPE.
  const V4RopeTables& rope(bool compressed, int64_t length);
  at::Tensor attention(int64_t layer, const V4LayerWeights& weights, const at::Tensor& input, const at::Tensor& shared_topk,
                       int64_t first_row, at::Tensor& topk_out);
  at::Tensor moe(const V4LayerWeights& weights, const at::Tensor& input, const std::vector<int64_t>& ids, int64_t first_row);

  DeepseekV4Config config_;
  Checkpoint checkpoint_;
  V4ModelOptions options_;
  std::vector<std::unique_ptr<V4LayerWeights>> layers_;
  std::unique_ptr<V4LayerWeights> streamed_;  // keep_weights false: the one layer held
  int64_t streamed_layer_ = -1;
  std::unique_ptr<V4HeadWeights> head_;
  at::Tensor main_inverse_frequencies_, compress_inverse_frequencies_;
  double main_attention_factor_ = 1.0, compress_attention_factor_ = 1.0;
  V4RopeTables main_tables_, compress_tables_;
};

}  // namespace indexcache
