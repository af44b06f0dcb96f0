// `indexcache-calibrate --eval`: the all-F baseline loss and the loss of each given pattern on
// the session's calibration data, as JSON and as a terminal table. "All F" is every indexer the
// model has (its family's fixed-S layers stay S); a pattern asking F where no indexer exists is
// an InputError naming the layer (ModelFamily::check_pattern).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "layer_pattern.h"
#include "progress.h"
#include "session.h"

namespace indexcache {

struct PatternLoss {
  LayerPattern pattern;
  double loss = 0.0;
};

struct EvaluationReport {
  LayerPattern baseline_pattern;  // every indexer F (the model family's fixed-S layers S)
  double baseline_loss = 0.0;
  std::vector<PatternLoss> evaluations;
  double seconds = 0.0;
};

EvaluationReport evaluate_patterns(Session& session, const std::vector<LayerPattern>& patterns, Progress& progress);

// {"model", "model_type", "tokens", "sequences", "predicted_positions", "device", "dtype",
//  "baseline_pattern", "baseline_loss", "evaluations": [{"pattern", "kept", "loss", "relative_increase"}]}
nlohmann::ordered_json evaluation_json(const EvaluationReport& report, const Session& session);

// Pattern, kept layers, loss and change against the baseline, one row each.
std::string evaluation_table(const EvaluationReport& report);

// Common description of the model and data for JSON outputs.
nlohmann::ordered_json session_json(const Session& session);

}  // namespace indexcache
