#include "evaluate.h"

namespace indexcache {

SequenceEvaluation evaluate_sequence(DsaModel& model, const std::vector<int64_t>& ids, const LayerPattern& pattern,
                                     bool capture_topk, int64_t sequence_index) {
  SequenceEvaluation result;
  PatternForward forward(model, ids, pattern, sequence_index);
  while (forward.layer() < pattern.layers()) {
    LayerOutput out = forward.step();
    if (capture_topk) result.topk.push_back(out.topk);
  }
  result.nll_sum = forward.finish();
  result.predictions = static_cast<int64_t>(ids.size()) - 1;
  return result;
}

// Sequences grouped and layer-major (run_pattern_forwards), in order.
PatternEvaluation evaluate_pattern(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences,
                                   const LayerPattern& pattern, bool capture_topk, const SequenceProgress& progress) {
  PatternEvaluation result;
  const auto total = static_cast<int64_t>(sequences.size());
  std::vector<PlannedForward> forwards;
  for (std::size_t i = 0; i < sequences.size(); ++i) forwards.push_back({&sequences[i], pattern, static_cast<int64_t>(i), 0});
  std::vector<std::vector<at::Tensor>> topk(sequences.size());
  ForwardHooks hooks;
  if (capture_topk) {
    hooks.after_layer = [&](std::size_t i, int64_t, const at::Tensor&, const LayerOutput& out) { topk[i].push_back(out.topk); };
  }
  hooks.finished = [&](std::size_t i, double nll, PatternForward&) {
    result.nll_sum += nll;
    result.predictions += static_cast<int64_t>(sequences[i].size()) - 1;
    if (capture_topk) result.topk.push_back(std::move(topk[i]));
    if (progress) progress(static_cast<int64_t>(i) + 1, total);
  };
  run_pattern_forwards(model, forwards, hooks);
  result.loss = result.predictions > 0 ? result.nll_sum / static_cast<double>(result.predictions) : 0.0;
  return result;
}

}  // namespace indexcache
