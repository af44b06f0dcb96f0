#include "indexer_cost.h"

#include <cmath>
#include <cstdio>

namespace indexcache {

double causal_pairs(int64_t tokens) {
  const double t = static_cast<double>(tokens);
  return t * (t + 1.0) / 2.0;
}

double indexer_layer_operations(const IndexerCostModel& model, int64_t tokens) {
  const double pairs = causal_pairs(tokens);
  const double scores = pairs * static_cast<double>(model.heads) * static_cast<double>(model.head_dim) * 2.0;
  const double heap_levels = model.topk > 1 ? std::ceil(std::log2(static_cast<double>(model.topk))) : 1.0;
  return scores + pairs * heap_levels;
}

std::vector<int64_t> report_contexts() { return {32768, 131072, 200000}; }

std::vector<IndexerCostProjection> project_indexer_cost(const IndexerCostModel& model, int64_t kept,
                                                        const std::vector<int64_t>& contexts) {
  std::vector<IndexerCostProjection> projections;
  for (int64_t tokens : contexts) {
    const double per_layer = indexer_layer_operations(model, tokens);
    IndexerCostProjection projection;
    projection.tokens = tokens;
    projection.all_full = per_layer * static_cast<double>(model.layers);
    projection.plan = per_layer * static_cast<double>(kept);
    projection.saved = projection.all_full - projection.plan;
    projection.saved_fraction = projection.all_full > 0 ? projection.saved / projection.all_full : 0.0;
    projections.push_back(projection);
  }
  return projections;
}

std::string format_operations(double operations) {
  static const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  int index = 0;
  while (std::abs(operations) >= 1000.0 && index < 6) {
    operations /= 1000.0;
    ++index;
  }
  char buffer[48];
  const int decimals = std::abs(operations) >= 100 ? 0 : std::abs(operations) >= 10 ? 1 : 2;
  std::snprintf(buffer, sizeof buffer, "%.*f %sFLOP", decimals, operations, prefixes[index]);
  return buffer;
}

std::string format_context(int64_t tokens) {
  if (tokens % 1024 == 0) return std::to_string(tokens / 1024) + "K";
  if (tokens % 1000 == 0) return std::to_string(tokens / 1000) + "K";
  return std::to_string(tokens);
}

std::string indexer_cost_description(const IndexerCostModel& model) {
  return "per F layer and prefill of T tokens: T(T+1)/2 causal pairs x " + std::to_string(model.heads) +
         " index heads x " + std::to_string(model.head_dim) + " head dim x 2 (q.k scores) + T(T+1)/2 x ceil(log2 " +
         std::to_string(model.topk) + ") (top-k selection); S layers run no indexer; projections and memory traffic "
         "left out";
}

}  // namespace indexcache
