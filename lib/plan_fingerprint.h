// The indexer fingerprint a layer plan records: which weights the plan was made for. Kept out
// of layer_plan.cpp because it reads the checkpoint (libtorch); the plan reader and writer do
// not, so they can be fuzzed and tested without it.
#pragma once

#include <string>
#include <vector>

#include "checkpoint.h"
#include "layer_plan.h"
#include "model_config.h"

namespace indexcache {

// Names, dtypes, shapes and SHA-256 of the stored bytes of every indexer tensor (and FP8 scale).
std::vector<TensorFingerprint> fingerprint_indexer(const Checkpoint& checkpoint, const ModelConfig& config);

// The first difference between a plan's fingerprint and the model's, as a readable phrase
// ("model.layers.3.self_attn.indexer.wk.weight: sha256 differs"); empty when they match.
std::string fingerprint_difference(const std::vector<TensorFingerprint>& plan,
                                   const std::vector<TensorFingerprint>& model);

}  // namespace indexcache
