#include "plan_fingerprint.h"

#include <algorithm>

#include "model_weights.h"
#include "sha256.h"

namespace indexcache {


std::vector<TensorFingerprint> fingerprint_indexer(const Checkpoint& checkpoint, const ModelConfig& config) {
  std::vector<TensorFingerprint> result;
  auto add = [&](const std::string& name) {
    const TensorInfo& info = checkpoint.info(name);
    auto bytes = checkpoint.raw_bytes(name);
    result.push_back({name, dtype_name(info.dtype), info.shape, sha256_hex(bytes.first, bytes.second)});
  };
  for (const std::string& name : indexer_tensor_names(config)) {
    add(name);
    if (checkpoint.has(name + "_scale_inv")) add(name + "_scale_inv");
  }
  return result;
}

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

}  // namespace indexcache
