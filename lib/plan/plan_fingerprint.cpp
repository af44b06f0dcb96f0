#include "plan_fingerprint.h"

#include <algorithm>


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

}  // namespace indexcache
