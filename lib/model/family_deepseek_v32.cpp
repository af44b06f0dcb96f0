// DeepSeek-V3.2 (`deepseek_v32`): every decoder layer is MLA with a lightning indexer over tokens;
// the pattern has one character per decoder layer. transformers 5.17's model builds and runs every
// indexer whatever config.json says (docs/SERVING.md); vLLM and SGLang apply the pattern.
#include "model_family.h"

namespace indexcache {

namespace {
bool every_dsa_layer(AttentionKind kind) { return kind == AttentionKind::Dsa; }
}  // namespace

const FamilyDefinition& deepseek_v32_family() {
  static const FamilyDefinition family{
      "deepseek_v32",           "DeepSeek-V3.2",
      "DeepseekV32ForCausalLM", "DeepseekV32ForCausalLM",
      "DeepseekV32ForCausalLM", /*transformers_reads_pattern=*/false,
      "layer",                  every_dsa_layer,
      /*honours_declared_sharing=*/true,
  };
  return family;
}

}  // namespace indexcache
