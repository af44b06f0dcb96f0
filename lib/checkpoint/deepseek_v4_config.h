// config.json of a DeepSeek-V4 checkpoint (`model_type: deepseek_v4`), read into the fields its
// forward pass needs. Both spellings are accepted: the released one (`compress_ratios` per
// layer, `num_hash_layers`, `qk_rope_head_dim`, a flat `rope_scaling`) and the one transformers
// writes (`layer_types`, `mlp_layer_types`, `compress_rates`, `partial_rotary_factor`,
// `rope_parameters` nested as {main, compress}). Defaults follow transformers 5.17's
// DeepseekV4Config, so an omitted field means what it means there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model_config.h"

namespace indexcache {

// Attention of one layer: a sliding window over the raw keys, plus for CSA the top-k of the keys
// compressed 4x picked by a lightning indexer, for HCA every causal key compressed 128x.
enum class V4Attention { Sliding, Compressed, HeavilyCompressed };
// The routed experts of a layer: chosen by a fixed token-id table (hash) or by router scores.
enum class V4Routing { Hash, Scores };

// "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention".
const char* v4_attention_name(V4Attention attention);

struct DeepseekV4Config {
  std::string config_path;  // the config.json that was read

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t head_dim = 512;            // one shared key/value head of this size, queries per head
  int64_t qk_rope_head_dim = 64;     // the trailing rotary slice of each head (and indexer head)
  int64_t q_lora_rank = 1024;
  int64_t o_groups = 8;              // grouped output projection: heads in o_groups groups ...
  int64_t o_lora_rank = 1024;        // ... each projected to o_lora_rank, then to hidden
  int64_t sliding_window = 128;      // a query sees raw keys t - sliding_window < s <= t

  std::vector<V4Attention> layer_types;  // [num_hidden_layers]
  int64_t csa_compress_rate = 4;         // raw positions per compressed entry, CSA
  int64_t hca_compress_rate = 128;       // the same, HCA

  int64_t index_n_heads = 64;
  int64_t index_head_dim = 128;
  int64_t index_topk = 512;  // compressed entries each query of a CSA layer attends to

  int64_t hc_mult = 4;  // residual streams of the hyper-connections
  int64_t hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6;

  std::vector<V4Routing> mlp_layer_types;  // [num_hidden_layers]; every layer is a MoE block
  int64_t n_routed_experts = 256;
  int64_t num_experts_per_tok = 6;
  int64_t moe_intermediate_size = 2048;  // each routed expert and the one shared expert
  double routed_scaling_factor = 1.5;
  double swiglu_limit = 10.0;  // experts clamp gate to <= limit and up to [-limit, limit]

  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 1048576;
  bool tie_word_embeddings = false;
  int64_t num_nextn_predict_layers = 1;  // MTP layers in the checkpoint (`mtp.*`), never run

  RopeParameters main_rope;      // sliding layers: default RoPE, rope_theta
  RopeParameters compress_rope;  // CSA/HCA layers, their compressors and indexers: compress_rope_theta (+ YaRN)

  // FP8 block size when quantization_config says fp8; `expert_dtype` "fp4" marks MXFP4 experts.
  std::optional<Fp8BlockSize> fp8_block;
  std::string expert_dtype;

  // Layers whose attention is CSA, in order: the layers a V4 pattern names, one character each.
  std::vector<int64_t> csa_layers() const;
  int64_t compress_rate(V4Attention attention) const {
    return attention == V4Attention::Compressed ? csa_compress_rate
           : attention == V4Attention::HeavilyCompressed ? hca_compress_rate
                                                          : 0;
  }
};

// Reads `<model_dir>/config.json`; InputError naming the file and the field for a missing file,
// invalid JSON, another model_type, a field of the wrong type or inconsistent values.
DeepseekV4Config load_deepseek_v4_config(const std::string& model_dir);

// The same from JSON text (`where` names it in errors).
DeepseekV4Config parse_deepseek_v4_config(const std::string& json_text, const std::string& where);

}  // namespace indexcache
