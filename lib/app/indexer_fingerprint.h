// The indexer fingerprint a layer plan records, read off a checkpoint: names, dtypes, shapes
// and SHA-256 of the stored bytes of every indexer tensor (and FP8 scale).
#pragma once

#include <vector>

#include "checkpoint.h"
#include "layer_plan.h"
#include "model_config.h"

namespace indexcache {

std::vector<TensorFingerprint> fingerprint_indexer(const Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace indexcache
