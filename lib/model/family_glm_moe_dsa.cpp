// GLM-5 / GLM-5.1 / GLM-5.2 (`glm_moe_dsa`): every decoder layer is MLA with a lightning indexer
// over tokens (indexer RoPE interleaved); the pattern has one character per decoder layer.
// GLM-5.1/5.2 configs declare sharing themselves (`indexer_types`, or `index_topk_freq` with
// `index_skip_topk_offset`: GLM-5.2 keeps 21 of 78), and the checkpoint holds no indexer tensors
// for the declared-shared layers: those are fixed S. transformers, vLLM and SGLang all apply it.
#include "model_family.h"

namespace indexcache {

namespace {
bool every_dsa_layer(AttentionKind kind) { return kind == AttentionKind::Dsa; }
}  // namespace

const FamilyDefinition& glm_moe_dsa_family() {
  static const FamilyDefinition family{
      "glm_moe_dsa",           "GLM-5",
      "GlmMoeDsaForCausalLM",  "GlmMoeDsaForCausalLM",
      "GlmMoeDsaForCausalLM",  /*transformers_reads_pattern=*/true,
      "layer",                 every_dsa_layer,
      /*honours_declared_sharing=*/true,
  };
  return family;
}

}  // namespace indexcache
