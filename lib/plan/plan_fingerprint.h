// Comparing the indexer fingerprint a layer plan records (which weights it was made for) with a
// model's. Reading the fingerprint off a checkpoint needs libtorch and lives in the app wing
// (indexer_fingerprint.h); the plan wing only compares.
#pragma once

#include <string>
#include <vector>

#include "layer_plan.h"

namespace indexcache {

// The first difference between a plan's fingerprint and the model's, as a readable phrase
// ("model.layers.3.self_attn.indexer.wk.weight: sha256 differs"); empty when they match.
std::string fingerprint_difference(const std::vector<TensorFingerprint>& plan,
                                   const std::vector<TensorFingerprint>& model);

}  // namespace indexcache
