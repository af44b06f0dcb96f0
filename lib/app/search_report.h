// The search report's numbers, gathered by the calibrate command after the plan is written:
// the per-domain losses (two forwards over the held-out data) and the indexer cost projection.
// The report wing renders them (report_calibrate.h).
#pragma once

#include <string>

#include "layer_plan.h"
#include "progress.h"
#include "report_calibrate.h"
#include "session.h"

namespace indexcache {

// The cost model's numbers from the model's config.
IndexerCostModel indexer_cost_model(const ModelConfig& config);

// Evaluates the per-domain losses (two forwards over the held-out or calibration data) and
// projects the indexer cost.
SearchReport build_search_report(Session& session, const SessionOptions& options, const LayerPlan& plan,
                                 const std::string& plan_path, Progress& progress);

}  // namespace indexcache
