// DeepSeek-V4 weights read from a checkpoint. Tensor names: transformers' save_pretrained writes
// the released (upstream) names, e.g. `layers.3.attn.wq_a.weight`, `layers.3.attn.compressor.ape`,
// `layers.3.attn.indexer.compressor.wkv.weight`, `layers.3.ffn.experts.7.w1.weight`,
// `layers.3.hc_attn_fn`, `embed.weight`, `head.weight`, `hc_head_fn`; a state dict of the
// transformers module names (`model.layers.3.self_attn.q_a_proj.weight`, fused
// `mlp.experts.gate_up_proj` [experts, 2 x inter, hidden]) is read too. Each weight is looked
// up under every spelling; the first present wins. MTP tensors (`mtp.*`) are never read.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "checkpoint.h"
#include "deepseek_v4_config.h"

namespace indexcache {

struct V4CompressorWeights {
  at::Tensor kv;     // [C, hidden]: C = 2 x D overlapping (CSA) or D (HCA)
  at::Tensor gate;   // [C, hidden]
  at::Tensor ape;    // [rate, C] float32: the learned position bias of the gates
  at::Tensor norm;   // [D]
};

struct V4IndexerWeights {
  V4CompressorWeights compressor;  // at index_head_dim, overlapping
  at::Tensor q_b;                  // [index_n_heads x index_head_dim, q_lora_rank]
  at::Tensor head_weights;         // [index_n_heads, hidden] (weights_proj)
};

struct V4ExpertWeights {
  at::Tensor gate;  // [inter, hidden] (w1)
  at::Tensor up;    // [inter, hidden] (w3)
  at::Tensor down;  // [hidden, inter] (w2)
};

struct V4LayerWeights {
  // Hyper-connections around attention and around the MoE block (float32).
  at::Tensor attn_hc_fn, attn_hc_base, attn_hc_scale;
  at::Tensor ffn_hc_fn, ffn_hc_base, ffn_hc_scale;
  at::Tensor attn_norm, ffn_norm;  // [hidden]
  // Attention.
  at::Tensor q_a, q_norm, q_b;  // [q_lora, hidden], [q_lora], [heads x D, q_lora]
  at::Tensor kv, kv_norm;       // [D, hidden], [D]
  at::Tensor o_a, o_b;          // [groups x o_lora, heads x D / groups], [hidden, groups x o_lora]
  at::Tensor sinks;             // [heads] float32
  bool has_compressor = false;  // CSA and HCA layers
  V4CompressorWeights compressor;
  bool has_indexer = false;  // CSA layers whose indexer was loaded (F layers)
  V4IndexerWeights indexer;
  // Mixture of experts.
  at::Tensor router;             // [experts, hidden]
  at::Tensor router_bias;        // [experts] float32 (score layers only)
  at::Tensor token_experts;      // [vocab, experts_per_token] int64 (hash layers only)
  std::vector<V4ExpertWeights> experts;
  V4ExpertWeights shared_expert;
};

struct V4HeadWeights {
  at::Tensor embed;                     // [vocab, hidden]
  at::Tensor hc_fn, hc_base, hc_scale;  // final stream collapse (float32)
  at::Tensor norm;                      // [hidden]
  at::Tensor lm_head;                   // [vocab, hidden]
};

// Loads layer `layer` in `dtype` on `device` (hyper-connection parameters, sinks, position
// biases and the router bias stay float32, as transformers keeps them). `with_indexer` false
// skips the CSA indexer's weights (an S layer never runs it). Missing tensors: InputError naming
// the checkpoint and the upstream name.
V4LayerWeights load_v4_layer(const Checkpoint& checkpoint, const DeepseekV4Config& config, int64_t layer,
                             bool with_indexer, at::ScalarType dtype, at::Device device);
V4HeadWeights load_v4_head(const Checkpoint& checkpoint, const DeepseekV4Config& config, at::ScalarType dtype,
                           at::Device device);

// The checkpoint's name of a weight given its upstream name (`layers.3.attn.wq_a.weight`) and
// its transformers module name (`model.layers.3.self_attn.q_a_proj.weight`), "" when neither
// spelling (with or without the `model.` prefix) is present.
std::string find_v4_tensor(const Checkpoint& checkpoint, const std::string& upstream, const std::string& module);

}  // namespace indexcache
