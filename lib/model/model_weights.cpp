#include "model_weights.h"

#include <string>

#include "error.h"
#include "model_family.h"

namespace indexcache {
namespace {

// Loads tensors under one name prefix with expected shapes. In check-only mode it verifies
// names, shapes and FP8 scales from the headers alone and returns undefined tensors, so one
// description of the layout serves both loading and the up-front check.
class LayerLoader {
 public:
  LayerLoader(const Checkpoint& checkpoint, std::string prefix, at::ScalarType dtype, at::Device device,
              bool check_only = false)
      : checkpoint_(checkpoint), prefix_(std::move(prefix)), dtype_(dtype), device_(device), check_only_(check_only) {}

  at::Tensor get(const std::string& name, const std::vector<int64_t>& shape) const {
    if (check_only_) return check(prefix_ + name, shape);
    return checkpoint_.load(prefix_ + name, dtype_, device_, shape);
  }
  at::Tensor get_float(const std::string& name, const std::vector<int64_t>& shape) const {
    if (check_only_) return check(prefix_ + name, shape);
    return checkpoint_.load(prefix_ + name, at::kFloat, device_, shape);
  }
  // The router runs in float32 from the model-dtype weight (transformers: weight.type(float32)),
  // so round through the compute dtype first.
  at::Tensor get_rounded_float(const std::string& name, const std::vector<int64_t>& shape) const {
    at::Tensor value = get(name, shape);
    return value.defined() ? value.to(at::kFloat) : value;
  }

 private:
  at::Tensor check(const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorInfo& info = checkpoint_.info(name);  // throws when missing
    if (info.shape != shape) {
      throw InputError(checkpoint_.dir(), "tensor " + name + " has shape " + shape_text(info.shape) +
                                              " but the config implies " + shape_text(shape));
    }
    if (info.dtype == DType::F8_E4M3 && !checkpoint_.has(name + "_scale_inv")) {
      throw InputError(checkpoint_.dir(), "tensor " + name + " is F8_E4M3 but " + name + "_scale_inv is missing");
    }
    return {};
  }
  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
  }

  const Checkpoint& checkpoint_;
  std::string prefix_;
  at::ScalarType dtype_;
  at::Device device_;
  bool check_only_;
};

DenseMlpWeights load_mlp(const LayerLoader& loader, const std::string& prefix, int64_t hidden, int64_t inner) {
  DenseMlpWeights mlp;
  mlp.gate = loader.get(prefix + "gate_proj.weight", {inner, hidden});
  mlp.up = loader.get(prefix + "up_proj.weight", {inner, hidden});
  mlp.down = loader.get(prefix + "down_proj.weight", {hidden, inner});
  return mlp;
}

AttentionWeights load_attention(const LayerLoader& loader, const ModelConfig& c) {
  const std::string p = "self_attn.";
  AttentionWeights a;
  a.q_a_proj = loader.get(p + "q_a_proj.weight", {c.q_lora_rank, c.hidden_size});
  a.q_a_norm = loader.get(p + "q_a_layernorm.weight", {c.q_lora_rank});
  a.q_b_proj = loader.get(p + "q_b_proj.weight", {c.num_attention_heads * c.qk_head_dim(), c.q_lora_rank});
  a.kv_a_proj = loader.get(p + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, c.hidden_size});
  a.kv_a_norm = loader.get(p + "kv_a_layernorm.weight", {c.kv_lora_rank});
  a.kv_b_proj =
      loader.get(p + "kv_b_proj.weight", {c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
  a.o_proj = loader.get(p + "o_proj.weight", {c.hidden_size, c.num_attention_heads * c.v_head_dim});
  if (c.attention_bias) {
    a.q_a_bias = loader.get(p + "q_a_proj.bias", {c.q_lora_rank});
    a.kv_a_bias = loader.get(p + "kv_a_proj_with_mqa.bias", {c.kv_lora_rank + c.qk_rope_head_dim});
    a.o_bias = loader.get(p + "o_proj.bias", {c.hidden_size});
  }
  return a;
}

MoeWeights load_moe(const LayerLoader& loader, const ModelConfig& c) {
  MoeWeights moe;
  moe.router = loader.get_rounded_float("mlp.gate.weight", {c.n_routed_experts, c.hidden_size});
  moe.correction_bias = loader.get_float("mlp.gate.e_score_correction_bias", {c.n_routed_experts});
  moe.experts.reserve(static_cast<std::size_t>(c.n_routed_experts));
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    moe.experts.push_back(
        load_mlp(loader, "mlp.experts." + std::to_string(e) + ".", c.hidden_size, c.moe_intermediate_size));
  }
  if (c.n_shared_experts > 0) {
    moe.shared = load_mlp(loader, "mlp.shared_experts.", c.hidden_size, c.moe_intermediate_size * c.n_shared_experts);
    moe.has_shared = true;
  }
  return moe;
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

const char* const kIndexerTensors[] = {"wq_b.weight", "wk.weight", "k_norm.weight", "k_norm.bias",
                                       "weights_proj.weight"};

// Whether the checkpoint stores any of layer `layer`'s indexer tensors. A layer with none is one
// the model family makes fixed S (GLM-5.2's declared-shared layers ship without an indexer); a
// layer with some but not all is reported by read_indexer, naming the missing tensor.
bool indexer_stored(const Checkpoint& checkpoint, int64_t layer) {
  for (const char* tensor : kIndexerTensors) {
    if (checkpoint.has(layer_prefix(layer) + "self_attn.indexer." + tensor)) return true;
  }
  return false;
}

}  // namespace

namespace {

IndexerWeights read_indexer(const Checkpoint& checkpoint, const ModelConfig& c, int64_t layer, at::ScalarType dtype,
                            at::Device device, bool check_only) {
  LayerLoader loader(checkpoint, layer_prefix(layer) + "self_attn.indexer.", dtype, device, check_only);
  IndexerWeights w;
  w.wq_b = loader.get("wq_b.weight", {c.index_n_heads * c.index_head_dim, c.q_lora_rank});
  w.wk = loader.get("wk.weight", {c.index_head_dim, c.hidden_size});
  w.k_norm_weight = loader.get("k_norm.weight", {c.index_head_dim});
  w.k_norm_bias = loader.get("k_norm.bias", {c.index_head_dim});
  w.weights_proj = loader.get_float("weights_proj.weight", {c.index_n_heads, c.hidden_size});
  return w;
}

LayerWeights read_layer(const Checkpoint& checkpoint, const ModelConfig& c, int64_t layer, at::ScalarType dtype,
                        at::Device device, bool with_indexer, bool check_only) {
  LayerLoader loader(checkpoint, layer_prefix(layer), dtype, device, check_only);
  LayerWeights w;
  w.input_norm = loader.get("input_layernorm.weight", {c.hidden_size});
  w.post_attention_norm = loader.get("post_attention_layernorm.weight", {c.hidden_size});
  w.attention = load_attention(loader, c);
  if (with_indexer && indexer_stored(checkpoint, layer)) w.indexer = read_indexer(checkpoint, c, layer, dtype, device, check_only);
  w.is_moe = c.layer_is_moe[static_cast<std::size_t>(layer)];
  if (w.is_moe) {
    w.moe = load_moe(loader, c);
  } else {
    w.mlp = load_mlp(loader, "mlp.", c.hidden_size, c.intermediate_size);
  }
  return w;
}

}  // namespace

IndexerWeights load_indexer_weights(const Checkpoint& checkpoint, const ModelConfig& config, int64_t layer,
                                    at::ScalarType dtype, at::Device device) {
  return read_indexer(checkpoint, config, layer, dtype, device, /*check_only=*/false);
}

void for_each_tensor(LayerWeights& w, const std::function<void(at::Tensor&)>& visit) {
  auto each = [&](std::initializer_list<at::Tensor*> tensors) {
    for (at::Tensor* t : tensors) {
      if (t->defined()) visit(*t);
    }
  };
  auto mlp = [&](DenseMlpWeights& m) { each({&m.gate, &m.up, &m.down}); };
  each({&w.input_norm, &w.post_attention_norm});
  AttentionWeights& a = w.attention;
  each({&a.q_a_proj, &a.q_a_norm, &a.q_b_proj, &a.kv_a_proj, &a.kv_a_norm, &a.kv_b_proj, &a.o_proj, &a.q_a_bias,
        &a.kv_a_bias, &a.o_bias});
  IndexerWeights& i = w.indexer;
  each({&i.wq_b, &i.wk, &i.k_norm_weight, &i.k_norm_bias, &i.weights_proj});
  mlp(w.mlp);
  each({&w.moe.router, &w.moe.correction_bias});
  for (DenseMlpWeights& expert : w.moe.experts) mlp(expert);
  mlp(w.moe.shared);
}

LayerWeights load_layer_weights(const Checkpoint& checkpoint, const ModelConfig& config, int64_t layer,
                                at::ScalarType dtype, at::Device device, bool with_indexer) {
  return read_layer(checkpoint, config, layer, dtype, device, with_indexer, /*check_only=*/false);
}

void check_model_tensors(const Checkpoint& checkpoint, const ModelConfig& config) {
  // Which layers may lack their indexer (and that the first indexer layer has one): the family's.
  ModelFamily::describe(config, checkpoint);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    read_layer(checkpoint, config, layer, at::kFloat, at::kCPU, /*with_indexer=*/true, /*check_only=*/true);
  }
  LayerLoader loader(checkpoint, "", at::kFloat, at::kCPU, /*check_only=*/true);
  loader.get("model.embed_tokens.weight", {config.vocab_size, config.hidden_size});
  loader.get("model.norm.weight", {config.hidden_size});
  if (!config.tie_word_embeddings) loader.get("lm_head.weight", {config.vocab_size, config.hidden_size});
}

EmbeddingWeights load_embedding_weights(const Checkpoint& checkpoint, const ModelConfig& c, at::ScalarType dtype,
                                        at::Device embedding_device, at::Device head_device) {
  EmbeddingWeights w;
  w.embed = checkpoint.load("model.embed_tokens.weight", dtype, embedding_device, {c.vocab_size, c.hidden_size});
  w.final_norm = checkpoint.load("model.norm.weight", dtype, head_device, {c.hidden_size});
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed.to(head_device);
  } else {
    w.lm_head = checkpoint.load("lm_head.weight", dtype, head_device, {c.vocab_size, c.hidden_size});
  }
  return w;
}

std::vector<std::string> indexer_tensor_names(const ModelConfig& c, const Checkpoint& checkpoint) {
  std::vector<std::string> names;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    if (!indexer_stored(checkpoint, layer)) continue;  // fixed S: no indexer to fingerprint
    for (const char* tensor : kIndexerTensors) {
      names.push_back(layer_prefix(layer) + "self_attn.indexer." + tensor);
    }
  }
  return names;
}

}  // namespace indexcache
