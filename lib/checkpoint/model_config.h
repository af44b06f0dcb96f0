// config.json of a DSA checkpoint (deepseek_v32, glm_moe_dsa), read into the fields the forward
// pass needs. Defaults follow transformers' configuration classes for each model type, so a
// config.json that omits an optional field means what it means to transformers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace indexcache {

enum class ModelType { DeepseekV32, GlmMoeDsa };

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
