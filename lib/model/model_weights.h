// The tensors of one DSA decoder layer (and the embedding/head), loaded from a checkpoint with
// the shapes the config implies. Linear weights keep the checkpoint's [out, in] layout.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "checkpoint.h"
#include "model_config.h"

namespace indexcache {

struct DenseMlpWeights {
  at::Tensor gate;  // [intermediate, hidden]
  at::Tensor up;    // [intermediate, hidden]
  at::Tensor down;  // [hidden, intermediate]
};

struct MoeWeights {
  at::Tensor router;           // [experts, hidden], float32 (the router runs in float32)
  at::Tensor correction_bias;  // [experts], float32 (e_score_correction_bias)
  std::vector<DenseMlpWeights> experts;
  DenseMlpWeights shared;  // the shared experts, concatenated (intermediate x n_shared)
  bool has_shared = false;
};

struct AttentionWeights {
  at::Tensor q_a_proj;       // [q_lora, hidden]
  at::Tensor q_a_norm;       // [q_lora]
  at::Tensor q_b_proj;       // [heads * qk_head_dim, q_lora]
  at::Tensor kv_a_proj;      // [kv_lora + rope_dim, hidden]
  at::Tensor kv_a_norm;      // [kv_lora]
  at::Tensor kv_b_proj;      // [heads * (nope_dim + v_dim), kv_lora]
  at::Tensor o_proj;         // [hidden, heads * v_dim]
  at::Tensor q_a_bias, kv_a_bias, o_bias;  // defined only when attention_bias
};

struct IndexerWeights {
  at::Tensor wq_b;          // [index_heads * index_dim, q_lora]
  at::Tensor wk;            // [index_dim, hidden]
  at::Tensor k_norm_weight; // [index_dim] (LayerNorm)
  at::Tensor k_norm_bias;   // [index_dim]
  at::Tensor weights_proj;  // [index_heads, hidden], float32 (transformers keeps it in float32)
};

struct LayerWeights {
  at::Tensor input_norm;           // [hidden]
  at::Tensor post_attention_norm;  // [hidden]
  AttentionWeights attention;
  IndexerWeights indexer;  // undefined tensors when loaded without the indexer
  bool is_moe = false;
  DenseMlpWeights mlp;  // dense layers
  MoeWeights moe;       // MoE layers
};

struct EmbeddingWeights {
  at::Tensor embed;       // [vocab, hidden]
  at::Tensor final_norm;  // [hidden]
  at::Tensor lm_head;     // [vocab, hidden]
};

// Loads layer `layer` in `dtype` on `device`. `with_indexer` false skips the indexer tensors
// (an S layer never runs its indexer); a layer whose checkpoint holds none of them (a fixed-S
// layer of its model family, e.g. GLM-5.2's declared-shared layers) loads without one either
// way. Missing tensors or wrong shapes throw InputError.
// Calls `visit` on every defined tensor of `weights`.
void for_each_tensor(LayerWeights& weights, const std::function<void(at::Tensor&)>& visit);

LayerWeights load_layer_weights(const Checkpoint& checkpoint, const ModelConfig& config, int64_t layer,
                                at::ScalarType dtype, at::Device device, bool with_indexer = true);

IndexerWeights load_indexer_weights(const Checkpoint& checkpoint, const ModelConfig& config, int64_t layer,
                                    at::ScalarType dtype, at::Device device);

// The embedding goes to `embedding_device`, the final norm and lm_head to `head_device`.
EmbeddingWeights load_embedding_weights(const Checkpoint& checkpoint, const ModelConfig& config,
                                        at::ScalarType dtype, at::Device embedding_device, at::Device head_device);

// Checks, from the tensor headers alone, that every tensor the model needs is present with the
// shape the config implies (and FP8 weights have their scales). Indexer tensors are needed where
// the model family (model_family.h) gives the layer an indexer of its own: a layer with none of
// them stored is fixed S, a layer with some of them must have all. Tensors of MTP / next-n layers
// (ids >= num_hidden_layers) are not read. Throws InputError.
void check_model_tensors(const Checkpoint& checkpoint, const ModelConfig& config);

// The checkpoint names of the indexer tensors of every decoder layer that stores them (for plan
// fingerprints; fixed-S layers without an indexer and MTP layers are not included).
std::vector<std::string> indexer_tensor_names(const ModelConfig& config, const Checkpoint& checkpoint);

}  // namespace indexcache
