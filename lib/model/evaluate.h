// Calibration loss of a layer pattern: every sequence through the model with S layers reusing
// the nearest earlier F layer's selection (docs/ARCHITECTURE.md "Pattern semantics", "Calibration loss").
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "layer_pattern.h"
#include "model.h"
#include "sequence_forward.h"

namespace indexcache {

struct SequenceEvaluation {
  double nll_sum = 0.0;         // summed over the sequence's predicted positions
  int64_t predictions = 0;      // tokens - 1
  std::vector<at::Tensor> topk; // [layers] of [tokens, index_topk] when captured
};

struct PatternEvaluation {
  double loss = 0.0;  // mean NLL over every predicted position of every sequence
  double nll_sum = 0.0;
  int64_t predictions = 0;
  std::vector<std::vector<at::Tensor>> topk;  // [sequences][layers] when captured
};

// Reports (sequences done, sequences total) after each sequence.
using SequenceProgress = std::function<void(int64_t, int64_t)>;

// One sequence, every layer. `sequence_index` only names the sequence in errors: non-finite
// activations stop the run with a message naming the layer and the sequence.
SequenceEvaluation evaluate_sequence(DsaModel& model, const std::vector<int64_t>& ids, const LayerPattern& pattern,
                                     bool capture_topk, int64_t sequence_index);

PatternEvaluation evaluate_pattern(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences,
                                   const LayerPattern& pattern, bool capture_topk,
                                   const SequenceProgress& progress = {});

}  // namespace indexcache
