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

// SHA-256 of a config.json's fields other than the ones that state a layer pattern
// (indexer_types, index_topk_pattern, use_index_cache, index_topk_freq, index_skip_topk_offset),
// as canonical JSON (keys sorted, numbers in shortest round-trip form). A config written by
// `--export hf-config` keeps this hash while its bytes change. Throws InputError(where, ...) when
// the text is not a JSON object.
std::string config_fields_sha256(const std::string& config_json_text, const std::string& where);

// How a model's config.json compares with the one a plan was made from: the same bytes; the same
// fields apart from the pattern ones (as after --export hf-config; needs the plan's
// config_fields_sha256); or different.
enum class ConfigMatch { SameBytes, SameFieldsButPattern, Different };
ConfigMatch compare_config(const LayerPlan& plan, const std::string& config_json_text, const std::string& where);

}  // namespace indexcache
