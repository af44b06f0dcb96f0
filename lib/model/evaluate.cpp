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

namespace {

// One sequence's forward between layers (in two parts, like every loss: sequence_forward.h).
struct SequenceRun {
  SequenceHead head;
  at::Tensor tail;
  at::Tensor last_full_topk;
  SequenceEvaluation result;
};

SequenceRun start_sequence(DsaModel& model, const std::vector<int64_t>& ids) {
  SequenceRun run;
  run.head = start_head(model, ids);
  run.tail = embed_tail(model, ids, run.head.rows);
  return run;
}

void run_layer(DsaModel& model, SequenceRun& run, int64_t layer, const std::vector<int64_t>& ids,
               const LayerPattern& pattern, bool capture_topk, int64_t sequence_index) {
  LayerOutput out = forward_tail_step(model, layer, run.head.hidden[static_cast<std::size_t>(layer)], run.tail,
                                      pattern.is_full(layer), run.last_full_topk, sequence_index);
  advance_head(model, run.head, layer, ids, sequence_index);
  if (capture_topk) run.result.topk.push_back(out.topk);
  run.tail = out.hidden;
}

SequenceEvaluation finish_sequence(DsaModel& model, SequenceRun& run, const std::vector<int64_t>& ids,
                                   int64_t sequence_index) {
  run.result.nll_sum = run.head.nll + tail_nll(model, run.tail, ids, run.head.rows);
  check_finite_loss(run.result.nll_sum, sequence_index);
  run.result.predictions = static_cast<int64_t>(ids.size()) - 1;
  return std::move(run.result);
}

}  // namespace

SequenceEvaluation evaluate_sequence(DsaModel& model, const std::vector<int64_t>& ids, const LayerPattern& pattern,
                                     bool capture_topk, int64_t sequence_index) {
  SequenceRun run = start_sequence(model, ids);
  for (int64_t layer = 0; layer < pattern.layers(); ++layer) {
    run_layer(model, run, layer, ids, pattern, capture_topk, sequence_index);
  }
  return finish_sequence(model, run, ids, sequence_index);
}

// Sequences grouped and layer-major (run_grouped_forwards), in order.
PatternEvaluation evaluate_pattern(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences,
                                   const LayerPattern& pattern, bool capture_topk, const SequenceProgress& progress) {
  PatternEvaluation result;
  const auto total = static_cast<int64_t>(sequences.size());
  std::vector<SequenceRun> runs(sequences.size());
  GroupedForwards forwards;
  forwards.count = sequences.size();
  forwards.tokens = [&](std::size_t i) { return static_cast<int64_t>(sequences[i].size()); };
  forwards.first_layer = [](std::size_t) { return int64_t{0}; };
  forwards.run_layer = [&](std::size_t i, int64_t layer) {
    if (layer == 0) runs[i] = start_sequence(model, sequences[i]);
    run_layer(model, runs[i], layer, sequences[i], pattern, capture_topk, static_cast<int64_t>(i));
  };
  forwards.finish = [&](std::size_t i) {
    SequenceEvaluation one = finish_sequence(model, runs[i], sequences[i], static_cast<int64_t>(i));
    runs[i] = SequenceRun();
    result.nll_sum += one.nll_sum;
    result.predictions += one.predictions;
    if (capture_topk) result.topk.push_back(std::move(one.topk));
    if (progress) progress(static_cast<int64_t>(i) + 1, total);
  };
  run_grouped_forwards(model, forwards);
  result.loss = result.predictions > 0 ? result.nll_sum / static_cast<double>(result.predictions) : 0.0;
  return result;
}

}  // namespace indexcache
