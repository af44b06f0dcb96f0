#include "indexer_fingerprint.h"

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
  for (const std::string& name : indexer_tensor_names(config, checkpoint)) {
    add(name);
    if (checkpoint.has(name + "_scale_inv")) add(name + "_scale_inv");
  }
  return result;
}

}  // namespace indexcache
