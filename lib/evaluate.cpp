#include "evaluate.h"

#include <cmath>

#include "error.h"
#include "sequence_forward.h"

namespace indexcache {

void check_finite(const at::Tensor& hidden, int64_t layer, int64_t sequence_index) {
  if (!at::isfinite(hidden).all().item<bool>()) {
    throw InputError("calibration sequence " + std::to_string(sequence_index),
                     "layer " + std::to_string(layer) +
                         " produced NaN or Inf activations (weights or inputs out of range); no result is written");
  }
}

void check_finite_loss(double nll_sum, int64_t sequence_index) {
  if (!std::isfinite(nll_sum)) {
    throw InputError("calibration sequence " + std::to_string(sequence_index),
                     "the output head gave a NaN or Inf loss (lm_head or final norm weights out of range); "
                     "no result is written");
  }
}

SequenceEvaluation evaluate_sequence(DsaModel& model, const std::vector<int64_t>& ids, const LayerPattern& pattern,
                                     bool capture_topk, int64_t sequence_index) {
  SequenceEvaluation result;
  // In two parts, like every loss (sequence_forward.h): the pattern-invariant head and the tail,
  // layer by layer.
  SequenceHead head = start_head(model, ids);
  at::Tensor tail = embed_tail(model, ids, head.rows);
  at::Tensor last_full_topk;
  for (int64_t layer = 0; layer < pattern.layers(); ++layer) {
    LayerOutput out = forward_tail_layer(model, layer, head.hidden[static_cast<std::size_t>(layer)], tail,
                                         pattern.is_full(layer) ? at::Tensor() : last_full_topk);
    advance_head(model, head, layer, ids, sequence_index);
    check_finite(out.hidden, layer, sequence_index);
    if (pattern.is_full(layer)) last_full_topk = out.topk;
    if (capture_topk) result.topk.push_back(out.topk);
    tail = out.hidden;
  }
  result.nll_sum = head.nll + tail_nll(model, tail, ids, head.rows);
  check_finite_loss(result.nll_sum, sequence_index);
  result.predictions = static_cast<int64_t>(ids.size()) - 1;
  return result;
}

PatternEvaluation evaluate_pattern(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences,
                                   const LayerPattern& pattern, bool capture_topk, const SequenceProgress& progress) {
  PatternEvaluation result;
  const int64_t total = static_cast<int64_t>(sequences.size());
  for (int64_t i = 0; i < total; ++i) {
    SequenceEvaluation one = evaluate_sequence(model, sequences[static_cast<std::size_t>(i)], pattern, capture_topk, i);
    result.nll_sum += one.nll_sum;
    result.predictions += one.predictions;
    if (capture_topk) result.topk.push_back(std::move(one.topk));
    if (progress) progress(i + 1, total);
  }
  result.loss = result.predictions > 0 ? result.nll_sum / static_cast<double>(result.predictions) : 0.0;
  return result;
}

}  // namespace indexcache
