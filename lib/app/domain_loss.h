// The plan's loss against all-F on each calibration domain (held-out data where the data has
// some), measured for the search report: two forwards over the evaluation data.
#pragma once

#include <string>

#include "layer_pattern.h"
#include "progress.h"
#include "report_domain_loss.h"
#include "session.h"

namespace indexcache {

DomainLossReport evaluate_domain_losses(Session& session, const SessionOptions& options, const LayerPattern& plan,
                                        Progress& progress);

}  // namespace indexcache
