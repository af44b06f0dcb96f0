#include "deepseek_v4_weights.h"

#include "error.h"

namespace indexcache {
namespace {

// Loads weights of one layer (or the head) under both spellings of their names.
class V4Loader {
 public:
  V4Loader(const Checkpoint& checkpoint, at::ScalarType dtype, at::Device device)
      : checkpoint_(checkpoint), dtype_(dtype), device_(device) {}

  // In the compute dtype.
  at::Tensor weight(const std::string& upstream, const std::string& module, std::vector<int64_t> shape) const {
    return checkpoint_.load(name(upstream, module), dtype_, device_, shape);
  }
  // Kept in float32 whatever the compute dtype (transformers' _keep_in_fp32_modules_strict).
  at::Tensor float32(const std::string& upstream, const std::string& module, std::vector<int64_t> shape) const {
    return checkpoint_.load(name(upstream, module), at::kFloat, device_, shape);
  }
  at::Tensor integer(const std::string& upstream, const std::string& module, std::vector<int64_t> shape) const {
    return checkpoint_.load_integer(name(upstream, module), device_, shape);
  }
  bool has(const std::string& upstream, const std::string& module) const {
    return !find_v4_tensor(checkpoint_, upstream, module).empty();
  }
  const Checkpoint& checkpoint() const { return checkpoint_; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }

 private:
  std::string name(const std::string& upstream, const std::string& module) const {
    std::string found = find_v4_tensor(checkpoint_, upstream, module);
    if (found.empty()) {
      throw InputError(checkpoint_.dir(), "tensor " + upstream + " is missing (nor is it stored as " + module + ")");
    }
    return found;
  }
  const Checkpoint& checkpoint_;
  at::ScalarType dtype_;
  at::Device device_;
};

V4CompressorWeights load_compressor(const V4Loader& load, const std::string& up, const std::string& mod, int64_t hidden,
                                    int64_t dim, int64_t rate, bool overlapping) {
  const int64_t channels = overlapping ? 2 * dim : dim;
  V4CompressorWeights weights;
  weights.kv = load.weight(up + "wkv.weight", mod + "kv_proj.weight", {channels, hidden});
  weights.gate = load.weight(up + "wgate.weight", mod + "gate_proj.weight", {channels, hidden});
  weights.ape = load.float32(up + "ape", mod + "position_bias", {rate, channels});
  weights.norm = load.weight(up + "norm.weight", mod + "kv_norm.weight", {dim});
  return weights;
}

V4IndexerWeights load_indexer(const V4Loader& load, const DeepseekV4Config& config, const std::string& up,
                              const std::string& mod) {
  V4IndexerWeights weights;
  weights.compressor = load_compressor(load, up + "compressor.", mod, config.hidden_size, config.index_head_dim,
                                       config.csa_compress_rate, /*overlapping=*/true);
  weights.q_b = load.weight(up + "wq_b.weight", mod + "q_b_proj.weight",
                            {config.index_n_heads * config.index_head_dim, config.q_lora_rank});
  // transformers keeps the head weights on a `scorer` submodule; older layouts did not.
  const std::vector<int64_t> shape = {config.index_n_heads, config.hidden_size};
  weights.head_weights = load.has(up + "weights_proj.weight", mod + "scorer.weights_proj.weight")
                             ? load.weight(up + "weights_proj.weight", mod + "scorer.weights_proj.weight", shape)
                             : load.weight(up + "weights_proj.weight", mod + "weights_proj.weight", shape);
  return weights;
}

void load_attention(const V4Loader& load, const DeepseekV4Config& config, int64_t layer, bool with_indexer,
                    V4LayerWeights& weights) {
  const std::string up = "layers." + std::to_string(layer) + ".attn.";
  const std::string mod = "model.layers." + std::to_string(layer) + ".self_attn.";
  const int64_t hidden = config.hidden_size;
  const int64_t heads = config.num_attention_heads;
  const int64_t dim = config.head_dim;
  weights.q_a = load.weight(up + "wq_a.weight", mod + "q_a_proj.weight", {config.q_lora_rank, hidden});
  weights.q_norm = load.weight(up + "q_norm.weight", mod + "q_a_norm.weight", {config.q_lora_rank});
  weights.q_b = load.weight(up + "wq_b.weight", mod + "q_b_proj.weight", {heads * dim, config.q_lora_rank});
  weights.kv = load.weight(up + "wkv.weight", mod + "kv_proj.weight", {dim, hidden});
  // transformers 5.17's save_pretrained writes this norm as `attn.norm.weight` (its reverse of
  // the compressor's norm rename also matches it); the released name is `attn.kv_norm.weight`.
  weights.kv_norm = load.has(up + "kv_norm.weight", mod + "kv_norm.weight")
                        ? load.weight(up + "kv_norm.weight", mod + "kv_norm.weight", {dim})
                        : load.weight(up + "norm.weight", mod + "kv_norm.weight", {dim});
  weights.o_a = load.weight(up + "wo_a.weight", mod + "o_a_proj.weight",
                            {config.o_groups * config.o_lora_rank, heads * dim / config.o_groups});
  weights.o_b = load.weight(up + "wo_b.weight", mod + "o_b_proj.weight", {hidden, config.o_groups * config.o_lora_rank});
  weights.sinks = load.float32(up + "attn_sink", mod + "sinks", {heads});
  const V4Attention type = config.layer_types[static_cast<std::size_t>(layer)];
  if (type == V4Attention::Sliding) return;
  weights.has_compressor = true;
  weights.compressor = load_compressor(load, up + "compressor.", mod + "compressor.", hidden, dim,
                                       config.compress_rate(type), type == V4Attention::Compressed);
  if (type == V4Attention::Compressed && with_indexer) {
    weights.has_indexer = true;
    weights.indexer = load_indexer(load, config, up + "indexer.", mod + "compressor.indexer.");
  }
}

void load_experts(const V4Loader& load, const DeepseekV4Config& config, int64_t layer, V4LayerWeights& weights) {
  const std::string up = "layers." + std::to_string(layer) + ".ffn.";
  const std::string mod = "model.layers." + std::to_string(layer) + ".mlp.";
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.moe_intermediate_size;
  const int64_t experts = config.n_routed_experts;
  // A transformers state dict fuses the experts: gate_up_proj [E, 2I, H] (gate rows first) and
  // down_proj [E, H, I]; the released layout names each expert's w1 (gate), w3 (up), w2 (down).
  const std::string fused = find_v4_tensor(load.checkpoint(), mod + "experts.gate_up_proj", mod + "experts.gate_up_proj");
  if (!fused.empty()) {
    const at::Tensor gate_up = load.weight(mod + "experts.gate_up_proj", mod + "experts.gate_up_proj",
                                           {experts, 2 * inter, hidden});
    const at::Tensor down = load.weight(mod + "experts.down_proj", mod + "experts.down_proj", {experts, hidden, inter});
    for (int64_t e = 0; e < experts; ++e) {
      weights.experts.push_back({gate_up[e].narrow(0, 0, inter), gate_up[e].narrow(0, inter, inter), down[e]});
    }
  } else {
    for (int64_t e = 0; e < experts; ++e) {
      const std::string u = up + "experts." + std::to_string(e) + ".";
      const std::string m = mod + "experts." + std::to_string(e) + ".";
      weights.experts.push_back({load.weight(u + "w1.weight", m + "gate_proj.weight", {inter, hidden}),
                                 load.weight(u + "w3.weight", m + "up_proj.weight", {inter, hidden}),
                                 load.weight(u + "w2.weight", m + "down_proj.weight", {hidden, inter})});
    }
  }
  weights.shared_expert = {load.weight(up + "shared_experts.w1.weight", mod + "shared_experts.gate_proj.weight", {inter, hidden}),
                           load.weight(up + "shared_experts.w3.weight", mod + "shared_experts.up_proj.weight", {inter, hidden}),
                           load.weight(up + "shared_experts.w2.weight", mod + "shared_experts.down_proj.weight", {hidden, inter})};
}

void load_moe(const V4Loader& load, const DeepseekV4Config& config, int64_t layer, V4LayerWeights& weights) {
  const std::string up = "layers." + std::to_string(layer) + ".ffn.gate.";
  const std::string mod = "model.layers." + std::to_string(layer) + ".mlp.gate.";
  weights.router = load.weight(up + "weight", mod + "weight", {config.n_routed_experts, config.hidden_size});
  if (config.mlp_layer_types[static_cast<std::size_t>(layer)] == V4Routing::Hash) {
    weights.token_experts = load.integer(up + "tid2eid", mod + "tid2eid", {config.vocab_size, config.num_experts_per_tok});
    const bool in_range = weights.token_experts.ge(0).logical_and(weights.token_experts.lt(config.n_routed_experts))
                              .all()
                              .item<bool>();
    if (!in_range) {
      throw InputError(load.checkpoint().dir(), "tensor " + up + "tid2eid names experts outside [0, " +
                                                    std::to_string(config.n_routed_experts) + ")");
    }
  } else {
    weights.router_bias = load.float32(up + "bias", mod + "e_score_correction_bias", {config.n_routed_experts});
  }
  load_experts(load, config, layer, weights);
}

}  // namespace

std::string find_v4_tensor(const Checkpoint& checkpoint, const std::string& upstream, const std::string& module) {
  const std::string bare_module = module.rfind("model.", 0) == 0 ? module.substr(6) : module;
  for (const std::string& name : {upstream, "model." + upstream, module, bare_module}) {
    if (checkpoint.has(name)) return name;
  }
  return "";
}

V4LayerWeights load_v4_layer(const Checkpoint& checkpoint, const DeepseekV4Config& config, int64_t layer,
                             bool with_indexer, at::ScalarType dtype, at::Device device) {
  const V4Loader load(checkpoint, dtype, device);
  const std::string up = "layers." + std::to_string(layer) + ".";
  const std::string mod = "model.layers." + std::to_string(layer) + ".";
  const int64_t mixes = (2 + config.hc_mult) * config.hc_mult;
  const int64_t streams_width = config.hc_mult * config.hidden_size;
  V4LayerWeights weights;
  weights.attn_hc_fn = load.float32(up + "hc_attn_fn", mod + "attn_hc.fn", {mixes, streams_width});
  weights.attn_hc_base = load.float32(up + "hc_attn_base", mod + "attn_hc.base", {mixes});
  weights.attn_hc_scale = load.float32(up + "hc_attn_scale", mod + "attn_hc.scale", {3});
  weights.ffn_hc_fn = load.float32(up + "hc_ffn_fn", mod + "ffn_hc.fn", {mixes, streams_width});
  weights.ffn_hc_base = load.float32(up + "hc_ffn_base", mod + "ffn_hc.base", {mixes});
  weights.ffn_hc_scale = load.float32(up + "hc_ffn_scale", mod + "ffn_hc.scale", {3});
  weights.attn_norm = load.weight(up + "attn_norm.weight", mod + "input_layernorm.weight", {config.hidden_size});
  weights.ffn_norm = load.weight(up + "ffn_norm.weight", mod + "post_attention_layernorm.weight", {config.hidden_size});
  load_attention(load, config, layer, with_indexer, weights);
  load_moe(load, config, layer, weights);
  return weights;
}

V4HeadWeights load_v4_head(const Checkpoint& checkpoint, const DeepseekV4Config& config, at::ScalarType dtype,
                           at::Device device) {
  const V4Loader load(checkpoint, dtype, device);
  const int64_t hidden = config.hidden_size;
  V4HeadWeights weights;
  weights.embed = load.weight("embed.weight", "model.embed_tokens.weight", {config.vocab_size, hidden});
  weights.hc_fn = load.float32("hc_head_fn", "model.hc_head.hc_fn", {config.hc_mult, config.hc_mult * hidden});
  weights.hc_base = load.float32("hc_head_base", "model.hc_head.hc_base", {config.hc_mult});
  weights.hc_scale = load.float32("hc_head_scale", "model.hc_head.hc_scale", {1});
  weights.norm = load.weight("norm.weight", "model.norm.weight", {hidden});
  weights.lm_head = config.tie_word_embeddings ? weights.embed
                                               : load.weight("head.weight", "lm_head.weight", {config.vocab_size, hidden});
  return weights;
}

}  // namespace indexcache
