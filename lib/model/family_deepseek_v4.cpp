// DeepSeek-V4 (`deepseek_v4`, V4-Flash 43 layers, V4-Pro 61): each decoder layer's attention is
// sliding_attention, compressed_sparse_attention (CSA) or heavily_compressed_attention (HCA)
// (ModelConfig::attention_kinds). Only CSA layers have a lightning indexer, over 4x-compressed
// entries, so the pattern has one character per CSA layer (vLLM's form: 21 characters on
// V4-Flash, starting with F). An S CSA layer reuses the top-k compressed-entry indices of the
// nearest preceding F CSA layer; sliding and HCA layers are outside the pattern.
#include "model_family.h"

namespace indexcache {

namespace {
bool compressed_sparse_only(AttentionKind kind) { return kind == AttentionKind::CompressedSparse; }
}  // namespace

const FamilyDefinition& deepseek_v4_family() {
  static const FamilyDefinition family{
      "deepseek_v4",           "DeepSeek-V4",
      "DeepseekV4ForCausalLM", "DeepseekV4ForCausalLM",
      "DeepseekV4ForCausalLM", /*transformers_reads_pattern=*/false,
      "CSA layer",             compressed_sparse_only,
      /*honours_declared_sharing=*/false,
  };
  return family;
}

}  // namespace indexcache
