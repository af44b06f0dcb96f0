// config.json of a DSA checkpoint (deepseek_v32, glm_moe_dsa), read into the fields the forward
// pass needs, and the per-layer facts model families build on (declared indexer sharing, the
// attention kind of each layer, MTP layers). Defaults follow transformers' configuration classes for each model type, so a
// config.json that omits an optional field means what it means to transformers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace indexcache {

enum class ModelType { DeepseekV32, GlmMoeDsa, DeepseekV4 };

// The attention of one decoder layer. DSA: MLA with a lightning indexer over tokens
// (deepseek_v32, glm_moe_dsa: every layer). DeepSeek-V4 (transformers' `layer_types`):
// sliding_attention (a local window, no indexer), compressed_sparse_attention (CSA: keys and
// values compressed 4x, a lightning indexer picks the top-k compressed entries) and
// heavily_compressed_attention (HCA: 128x, no indexer).
enum class AttentionKind { Dsa, Sliding, CompressedSparse, HeavilyCompressed };

// The config.json name of a V4 attention kind ("sliding_attention", ...); "dsa" for Dsa.
const char* attention_kind_name(AttentionKind kind);

// Rows x columns of weights that share one FP8 scale (quantization_config.weight_block_size).
struct Fp8BlockSize {
  int64_t rows = 128;
  int64_t cols = 128;
};

// How the indexer lays out its rotary dimensions: deepseek_v32 rotates the two halves
// (x[:d/2], x[d/2:]), glm_moe_dsa rotates interleaved pairs (x[2i], x[2i+1]). The main MLA
// attention is interleaved in both.
enum class RopeLayout { HalfSplit, Interleaved };

// `rope_parameters` (or the older `rope_scaling` + top-level `rope_theta`).
struct RopeParameters {
  std::string type = "default";  // "default" or "yarn"
  double theta = 10000.0;
  // YaRN only:
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  std::optional<double> attention_factor;
  bool truncate = true;
};

struct ModelConfig {
  std::string config_path;  // the config.json that was read
  ModelType model_type = ModelType::DeepseekV32;
  std::string model_type_name;             // "deepseek_v32" / "glm_moe_dsa"
  std::vector<std::string> architectures;  // as given

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;      // dense MLP layers
  int64_t moe_intermediate_size = 0;  // each routed expert; shared experts use x n_shared_experts
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;

  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;

  int64_t index_topk = 0;
  int64_t index_head_dim = 0;
  int64_t index_n_heads = 0;

  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::string hidden_act = "silu";

  std::vector<bool> layer_is_moe;  // [num_hidden_layers]: MoE block (true) or dense MLP
  RopeParameters rope;

  // [num_hidden_layers] the attention of each layer; empty means every layer is Dsa (deepseek_v32,
  // glm_moe_dsa). A DeepSeek-V4 reader fills it from its layer types (deepseek_v4_config.h), so
  // the model family (lib/model/model_family.h) knows which layers are CSA.
  std::vector<AttentionKind> attention_kinds;

  // Layers the config itself declares "shared" (run no indexer, reuse the top-k of the nearest
  // full layer before them), read the way transformers' glm_moe_dsa and the engines read it:
  // `indexer_types`, else `index_topk_pattern`, else `index_topk_freq` / `index_skip_topk_offset`
  // (layer i full iff max(i - offset + 1, 0) % freq == 0; defaults 1 and 2). GLM-5.2 ships
  // freq 4, offset 3 (21 full of 78). A declared-shared layer may have no indexer tensors in the
  // checkpoint. Empty when the config states none of these fields (every layer full).
  std::vector<bool> declared_shared;
  std::string declared_sharing_field;  // the field declared_shared came from; empty when none
  std::optional<int64_t> index_topk_freq;         // as given in config.json
  std::optional<int64_t> index_skip_topk_offset;  // as given in config.json

  // MTP / next-n layers (`num_nextn_predict_layers`): stored at layer ids >= num_hidden_layers,
  // never part of the decoder forward or the search; engines always run their indexer.
  int64_t num_nextn_predict_layers = 0;

  bool declares_shared(int64_t layer) const {
    return !declared_shared.empty() && declared_shared[static_cast<std::size_t>(layer)];
  }
  AttentionKind attention_kind(int64_t layer) const {
    return attention_kinds.empty() ? AttentionKind::Dsa : attention_kinds[static_cast<std::size_t>(layer)];
  }

  // FP8 block size from quantization_config.weight_block_size, when the checkpoint is FP8.
  std::optional<Fp8BlockSize> fp8_block;
  // The one place the block size for Checkpoint::open comes from: the config's, else the
  // released checkpoints' 128 x 128 (only used if FP8 tensors turn up without a config entry).
  Fp8BlockSize fp8_block_size() const { return fp8_block.value_or(Fp8BlockSize{}); }

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  RopeLayout indexer_rope_layout() const {
    return model_type == ModelType::GlmMoeDsa ? RopeLayout::Interleaved : RopeLayout::HalfSplit;
  }
};

// Reads `<model_dir>/config.json`. Throws InputError naming the file and the field for a
// missing directory/file, invalid JSON, an unsupported model_type (listing the supported ones),
// a field of the wrong JSON type, a missing required field, or inconsistent values.
ModelConfig load_model_config(const std::string& model_dir);

// The same, from an already parsed JSON text (`where` names it in errors). Used by tests.
ModelConfig parse_model_config(const std::string& json_text, const std::string& where);


}  // namespace indexcache
