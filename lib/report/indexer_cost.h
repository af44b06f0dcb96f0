// A cost model of the lightning indexer, from the model's indexer dimensions (the app fills
// IndexerCostModel from config.json): how many operations
// the indexers of a prefill take with all layers F and with a layer plan, at long contexts. It
// is a model, not a measurement: it counts arithmetic, not time, and ignores memory traffic,
// kernels and overlap with other work. Reports say so next to every number it gives.
//
// Per F layer, for a prefill of T tokens:
//   scores: causal (query, key) pairs x index_n_heads x index_head_dim x 2 (multiply and add of
//           the q.k products; the ReLU and per-head weighting add under 5% and are left out)
//   top-k:  causal pairs x ceil(log2 index_topk) (selecting k of each query's candidates with a
//           heap: one comparison per candidate per heap level)
// causal pairs = T (T + 1) / 2. S layers run no indexer. The q/k projections grow only linearly
// with T and are left out; at 32K tokens and beyond they are a fraction of a percent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace indexcache {

struct IndexerCostModel {
  int64_t layers = 0;
  int64_t heads = 0;     // index_n_heads
  int64_t head_dim = 0;  // index_head_dim
  int64_t topk = 0;      // index_topk
};


// T (T + 1) / 2, as a double (exact up to T ~ 9e7).
double causal_pairs(int64_t tokens);

// Operations of one F layer's indexer over a prefill of `tokens` tokens (scores + top-k).
double indexer_layer_operations(const IndexerCostModel& model, int64_t tokens);

struct IndexerCostProjection {
  int64_t tokens = 0;
  double all_full = 0.0;  // every layer F
  double plan = 0.0;      // `kept` F layers
  double saved = 0.0;
  double saved_fraction = 0.0;
};

// The contexts the reports use: 32K, 128K and 200K tokens.
std::vector<int64_t> report_contexts();

std::vector<IndexerCostProjection> project_indexer_cost(const IndexerCostModel& model, int64_t kept,
                                                        const std::vector<int64_t>& contexts);

// "12.3 TFLOP"-style text with an SI prefix (k, M, G, T, P, E).
std::string format_operations(double operations);

// "32K", "128K", "200K".
std::string format_context(int64_t tokens);

// The model in one sentence, for reports.
std::string indexer_cost_description(const IndexerCostModel& model);

}  // namespace indexcache
