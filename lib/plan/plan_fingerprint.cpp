#include "plan_fingerprint.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "error.h"
#include "sha256.h"

namespace indexcache {

std::string fingerprint_difference(const std::vector<TensorFingerprint>& plan,
                                   const std::vector<TensorFingerprint>& model) {
  for (std::size_t i = 0; i < std::min(plan.size(), model.size()); ++i) {
    const TensorFingerprint& a = plan[i];
    const TensorFingerprint& b = model[i];
    if (a.name != b.name) return "indexer tensor " + std::to_string(i) + " is " + a.name + " in the plan but " + b.name + " in the model";
    if (a.dtype != b.dtype) return a.name + ": dtype " + a.dtype + " in the plan, " + b.dtype + " in the model";
    if (a.shape != b.shape) return a.name + ": shape differs between the plan and the model";
    if (a.sha256 != b.sha256) return a.name + ": sha256 differs (the plan was made for other weights)";
  }
  if (plan.size() != model.size()) {
    return "the plan lists " + std::to_string(plan.size()) + " indexer tensors, the model has " +
           std::to_string(model.size());
  }
  return "";
}

std::string config_fields_sha256(const std::string& config_json_text, const std::string& where) {
  nlohmann::json config = nlohmann::json::parse(config_json_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) throw InputError(where, "is not a JSON object");
  for (const char* key : {"indexer_types", "index_topk_pattern", "use_index_cache", "index_topk_freq",
                          "index_skip_topk_offset"}) {
    config.erase(key);
  }
  const std::string canonical = config.dump();  // nlohmann::json keeps object keys sorted
  return sha256_hex(canonical.data(), canonical.size());
}

ConfigMatch compare_config(const LayerPlan& plan, const std::string& config_json_text, const std::string& where) {
  if (sha256_hex(config_json_text.data(), config_json_text.size()) == plan.config_sha256) return ConfigMatch::SameBytes;
  if (!plan.config_fields_sha256.empty() && config_fields_sha256(config_json_text, where) == plan.config_fields_sha256) {
    return ConfigMatch::SameFieldsButPattern;
  }
  return ConfigMatch::Different;
}

}  // namespace indexcache
