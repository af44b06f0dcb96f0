#include "deepseek_v4_config.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "error.h"
#include "file_system.h"

namespace indexcache {
namespace {

using nlohmann::json;

constexpr const char* kSliding = "sliding_attention";
constexpr const char* kCompressed = "compressed_sparse_attention";
constexpr const char* kHeavilyCompressed = "heavily_compressed_attention";
constexpr int64_t kMostLayers = 1 << 16;

// Reads fields of one JSON object; every error names the file and the field (dotted path).
class Fields {
 public:
  Fields(const json& object, std::string where, std::string prefix = "")
      : object_(object), where_(std::move(where)), prefix_(std::move(prefix)) {}

  bool has(const std::string& field) const {
    auto it = object_.find(field);
    return it != object_.end() && !it->is_null();
  }
  const json& at(const std::string& field) const { return object_.at(field); }
  [[noreturn]] void fail(const std::string& field, const std::string& message) const {
    throw InputError(where_, prefix_ + field + " " + message);
  }
  int64_t integer(const std::string& field, std::optional<int64_t> fallback = std::nullopt) const {
    if (!has(field)) {
      if (!fallback) fail(field, "is missing");
      return *fallback;
    }
    const json& value = at(field);
    if (value.is_number_integer()) return value.get<int64_t>();
    if (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>() &&
        std::abs(value.get<double>()) < 9e15) {
      return static_cast<int64_t>(value.get<double>());
    }
    fail(field, "must be an integer, got " + value.dump());
  }
  int64_t positive(const std::string& field, std::optional<int64_t> fallback = std::nullopt) const {
    int64_t value = integer(field, fallback);
    if (value <= 0) fail(field, "must be > 0, got " + std::to_string(value));
    return value;
  }
  double number(const std::string& field, double fallback) const {
    if (!has(field)) return fallback;
    const json& value = at(field);
    if (!value.is_number()) fail(field, "must be a number, got " + value.dump());
    double result = value.get<double>();
    if (!std::isfinite(result)) fail(field, "must be finite");
    return result;
  }
  std::optional<double> optional_number(const std::string& field) const {
    if (!has(field)) return std::nullopt;
    return number(field, 0.0);
  }
  bool boolean(const std::string& field, bool fallback) const {
    if (!has(field)) return fallback;
    if (!at(field).is_boolean()) fail(field, "must be true or false, got " + at(field).dump());
    return at(field).get<bool>();
  }
  std::string text(const std::string& field, const std::string& fallback) const {
    if (!has(field)) return fallback;
    if (!at(field).is_string()) fail(field, "must be a string, got " + at(field).dump());
    return at(field).get<std::string>();
  }
  // A list of length `count` (when >= 0) of the JSON type `check` accepts.
  const json& list(const std::string& field, int64_t count) const {
    const json& value = at(field);
    if (!value.is_array()) fail(field, "must be a list, got " + value.dump());
    if (count >= 0 && static_cast<int64_t>(value.size()) < count) {
      fail(field, "has " + std::to_string(value.size()) + " entries but num_hidden_layers is " +
                      std::to_string(count));
    }
    return value;
  }
  Fields object(const std::string& field) const {
    if (!at(field).is_object()) fail(field, "must be an object, got " + at(field).dump());
    return Fields(at(field), where_, prefix_ + field + ".");
  }
  const std::string& where() const { return where_; }

 private:
  const json& object_;
  std::string where_;
  std::string prefix_;
};

V4Attention attention_from_name(const Fields& fields, const std::string& field, const json& value) {
  if (value.is_string()) {
    const std::string name = value.get<std::string>();
    if (name == kSliding) return V4Attention::Sliding;
    if (name == kCompressed) return V4Attention::Compressed;
    if (name == kHeavilyCompressed) return V4Attention::HeavilyCompressed;
  }
  fields.fail(field, "has " + value.dump() + " (expected " + kSliding + ", " + kCompressed + " or " +
                         kHeavilyCompressed + ")");
}

// transformers: `layer_types`, else the released per-layer `compress_ratios` (0 sliding, 4 CSA,
// 128 HCA), else 2 HCA layers then CSA and HCA alternating. Lists longer than the layer count
// are cut, as transformers does (the released lists carry an entry for the MTP layer).
std::vector<V4Attention> read_layer_types(const Fields& fields, int64_t layers) {
  std::vector<V4Attention> types;
  if (fields.has("layer_types")) {
    const json& list = fields.list("layer_types", layers);
    for (int64_t i = 0; i < layers; ++i) {
      types.push_back(attention_from_name(fields, "layer_types[" + std::to_string(i) + "]", list[static_cast<std::size_t>(i)]));
    }
    return types;
  }
  if (fields.has("compress_ratios")) {
    const json& list = fields.list("compress_ratios", layers);
    for (int64_t i = 0; i < layers; ++i) {
      const json& ratio = list[static_cast<std::size_t>(i)];
      const std::string field = "compress_ratios[" + std::to_string(i) + "]";
      if (!ratio.is_number_integer()) fields.fail(field, "must be an integer, got " + ratio.dump());
      switch (ratio.get<int64_t>()) {
        case 0: types.push_back(V4Attention::Sliding); break;
        case 4: types.push_back(V4Attention::Compressed); break;
        case 128: types.push_back(V4Attention::HeavilyCompressed); break;
        default: fields.fail(field, "is " + ratio.dump() + " (expected 0, 4 or 128)");
      }
    }
    return types;
  }
  for (int64_t i = 0; i < layers; ++i) {
    types.push_back(i < 2 || i % 2 == 0 ? V4Attention::HeavilyCompressed : V4Attention::Compressed);
  }
  return types;
}

// `mlp_layer_types` ("hash_moe" / "moe"), else the first `num_hash_layers` (default 3) hashed.
std::vector<V4Routing> read_mlp_layer_types(const Fields& fields, int64_t layers) {
  std::vector<V4Routing> types;
  if (fields.has("mlp_layer_types")) {
    const json& list = fields.list("mlp_layer_types", layers);
    for (int64_t i = 0; i < layers; ++i) {
      const json& value = list[static_cast<std::size_t>(i)];
      if (value == "hash_moe") {
        types.push_back(V4Routing::Hash);
      } else if (value == "moe") {
        types.push_back(V4Routing::Scores);
      } else {
        fields.fail("mlp_layer_types[" + std::to_string(i) + "]", "is " + value.dump() + " (expected hash_moe or moe)");
      }
    }
    return types;
  }
  const int64_t hashed = fields.integer("num_hash_layers", 3);
  if (hashed < 0) fields.fail("num_hash_layers", "must be >= 0");
  for (int64_t i = 0; i < layers; ++i) types.push_back(i < hashed ? V4Routing::Hash : V4Routing::Scores);
  return types;
}

// One RoPE parameter set ({rope_type, rope_theta, factor, ...}); `theta` when the set has none.
RopeParameters read_rope_set(const Fields& params, double theta, int64_t max_position_embeddings,
                             bool yarn_attention_factor_one) {
  RopeParameters rope;
  rope.type = params.text("rope_type", params.text("type", "default"));
  if (rope.type != "default" && rope.type != "yarn") {
    params.fail("rope_type", "\"" + rope.type + "\" is not supported (supported: default, yarn)");
  }
  rope.theta = params.number("rope_theta", theta);
  if (rope.theta <= 0) params.fail("rope_theta", "must be > 0");
  if (rope.type != "yarn") return rope;
  rope.factor = params.number("factor", 1.0);
  if (rope.factor <= 0) params.fail("factor", "must be > 0");
  rope.original_max_position_embeddings =
      params.positive("original_max_position_embeddings", max_position_embeddings);
  const double beta_fast = params.number("beta_fast", 0.0);
  const double beta_slow = params.number("beta_slow", 0.0);
  rope.beta_fast = beta_fast != 0.0 ? beta_fast : 32.0;
  rope.beta_slow = beta_slow != 0.0 ? beta_slow : 1.0;
  rope.mscale = params.optional_number("mscale");
  rope.mscale_all_dim = params.optional_number("mscale_all_dim");
  rope.attention_factor = params.optional_number("attention_factor");
  // V4 does not scale cos/sin by YaRN's mscale: transformers sets attention_factor 1.
  if (!rope.attention_factor && yarn_attention_factor_one) rope.attention_factor = 1.0;
  rope.truncate = params.boolean("truncate", true);
  return rope;
}

// The two RoPEs. transformers writes them nested ({"main": {...}, "compress": {...}}); a flat
// `rope_parameters` or the released `rope_scaling` is the compressed branches' YaRN, the main
// RoPE then being default with `rope_theta`.
void read_ropes(const Fields& fields, DeepseekV4Config& config) {
  const double theta = fields.number("rope_theta", 10000.0);
  const double compress_theta = fields.number("compress_rope_theta", 160000.0);
  const char* key = fields.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  if (!fields.has(key)) {
    config.main_rope.theta = theta;
    config.compress_rope.theta = compress_theta;
    return;
  }
  const Fields params = fields.object(key);
  if (params.has("main") && params.has("compress")) {
    config.main_rope = read_rope_set(params.object("main"), theta, config.max_position_embeddings, false);
    config.compress_rope = read_rope_set(params.object("compress"), compress_theta, config.max_position_embeddings, true);
    return;
  }
  config.main_rope.theta = theta;
  config.compress_rope = read_rope_set(params, compress_theta, config.max_position_embeddings, true);
  config.compress_rope.theta = compress_theta;  // the flat set's own theta is the main one
}

// partial_rotary_factor, else the released qk_rope_head_dim, else 64 of 512.
int64_t read_rope_head_dim(const Fields& fields, int64_t head_dim) {
  if (fields.has("partial_rotary_factor")) {
    const double factor = fields.number("partial_rotary_factor", 0.125);
    if (factor <= 0 || factor > 1) fields.fail("partial_rotary_factor", "must be in (0, 1]");
    return static_cast<int64_t>(static_cast<double>(head_dim) * factor);
  }
  if (fields.has("qk_rope_head_dim")) return fields.positive("qk_rope_head_dim");
  return static_cast<int64_t>(static_cast<double>(head_dim) * (64.0 / 512.0));
}

void read_compress_rates(const Fields& fields, DeepseekV4Config& config) {
  if (fields.has("compress_rates")) {
    const Fields rates = fields.object("compress_rates");
    config.csa_compress_rate = rates.positive(kCompressed, 4);
    config.hca_compress_rate = rates.positive(kHeavilyCompressed, 128);
  }
  config.csa_compress_rate = fields.positive("compress_rate_csa", config.csa_compress_rate);
  config.hca_compress_rate = fields.positive("compress_rate_hca", config.hca_compress_rate);
}

void read_quantization(const Fields& fields, DeepseekV4Config& config) {
  config.expert_dtype = fields.text("expert_dtype", "");
  if (!fields.has("quantization_config")) return;
  const Fields quant = fields.object("quantization_config");
  const std::string method = quant.text("quant_method", "");
  if (method != "fp8" && method != "deepseek_v4_fp8") {
    quant.fail("quant_method", "\"" + method + "\" is not supported (supported: fp8)");
  }
  Fp8BlockSize block;
  if (quant.has("weight_block_size")) {
    const json& sizes = quant.at("weight_block_size");
    if (!sizes.is_array() || sizes.size() != 2 || !sizes[0].is_number_integer() || !sizes[1].is_number_integer() ||
        sizes[0].get<int64_t>() <= 0 || sizes[1].get<int64_t>() <= 0) {
      quant.fail("weight_block_size", "must be two positive integers, got " + sizes.dump());
    }
    block = {sizes[0].get<int64_t>(), sizes[1].get<int64_t>()};
  }
  config.fp8_block = block;
}

void check_dimensions(const Fields& fields, const DeepseekV4Config& config) {
  if (config.qk_rope_head_dim % 2 != 0 || config.qk_rope_head_dim <= 0 || config.qk_rope_head_dim > config.head_dim) {
    fields.fail("qk_rope_head_dim", "(rotary dims " + std::to_string(config.qk_rope_head_dim) +
                                        ") must be even and in (0, head_dim]");
  }
  if (config.index_head_dim < config.qk_rope_head_dim) {
    fields.fail("index_head_dim", "is smaller than the rotary dims " + std::to_string(config.qk_rope_head_dim));
  }
  if ((config.num_attention_heads * config.head_dim) % config.o_groups != 0) {
    fields.fail("o_groups", "does not divide num_attention_heads x head_dim");
  }
  if (config.num_experts_per_tok > config.n_routed_experts) {
    fields.fail("num_experts_per_tok", "exceeds n_routed_experts");
  }
  if (config.hc_sinkhorn_iters < 1) fields.fail("hc_sinkhorn_iters", "must be >= 1");
  if (config.rms_norm_eps <= 0) fields.fail("rms_norm_eps", "must be > 0");
  // Products that size tensors must not overflow (a hostile config can claim anything).
  auto check_product = [&](const char* field, std::initializer_list<int64_t> factors) {
    int64_t product = 1;
    for (int64_t f : factors) {
      if (__builtin_mul_overflow(product, f, &product) || product > (int64_t{1} << 40)) {
        fields.fail(field, "gives a tensor too large to handle");
      }
    }
  };
  check_product("vocab_size", {config.vocab_size, config.hidden_size});
  check_product("num_attention_heads", {config.num_attention_heads, config.head_dim, config.q_lora_rank});
  check_product("index_n_heads", {config.index_n_heads, config.index_head_dim, config.q_lora_rank});
  check_product("hc_mult", {config.hc_mult, config.hc_mult + 2, config.hc_mult, config.hidden_size});
  check_product("moe_intermediate_size", {config.moe_intermediate_size, config.hidden_size, config.n_routed_experts});
}

}  // namespace

const char* v4_attention_name(V4Attention attention) {
  switch (attention) {
    case V4Attention::Sliding: return kSliding;
    case V4Attention::Compressed: return kCompressed;
    case V4Attention::HeavilyCompressed: return kHeavilyCompressed;
  }
  return "unknown";
}

std::vector<int64_t> DeepseekV4Config::csa_layers() const {
  std::vector<int64_t> layers;
  for (std::size_t i = 0; i < layer_types.size(); ++i) {
    if (layer_types[i] == V4Attention::Compressed) layers.push_back(static_cast<int64_t>(i));
  }
  return layers;
}

DeepseekV4Config parse_deepseek_v4_config(const std::string& json_text, const std::string& where) {
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) throw InputError(where, "is not valid JSON");
  if (!root.is_object()) throw InputError(where, "must be a JSON object");
  const Fields fields(root, where);
  const std::string type = fields.text("model_type", "");
  if (type != "deepseek_v4") fields.fail("model_type", "is \"" + type + "\", expected deepseek_v4");

  DeepseekV4Config config;
  config.config_path = where;
  config.vocab_size = fields.positive("vocab_size", 129280);
  config.hidden_size = fields.positive("hidden_size", 4096);
  config.num_hidden_layers = fields.positive("num_hidden_layers", 43);
  if (config.num_hidden_layers > kMostLayers) fields.fail("num_hidden_layers", "is more than indexcache supports");
  config.num_attention_heads = fields.positive("num_attention_heads", 64);
  if (fields.integer("num_key_value_heads", 1) != 1) {
    fields.fail("num_key_value_heads", "must be 1 (DeepSeek-V4 shares one key/value head)");
  }
  config.head_dim = fields.positive("head_dim", 512);
  config.qk_rope_head_dim = read_rope_head_dim(fields, config.head_dim);
  config.q_lora_rank = fields.positive("q_lora_rank", 1024);
  config.o_groups = fields.positive("o_groups", 8);
  config.o_lora_rank = fields.positive("o_lora_rank", 1024);
  config.sliding_window = fields.positive("sliding_window", 128);
  config.layer_types = read_layer_types(fields, config.num_hidden_layers);
  read_compress_rates(fields, config);
  config.index_n_heads = fields.positive("index_n_heads", 64);
  config.index_head_dim = fields.positive("index_head_dim", 128);
  config.index_topk = fields.positive("index_topk", 512);
  config.hc_mult = fields.positive("hc_mult", 4);
  config.hc_sinkhorn_iters = fields.integer("hc_sinkhorn_iters", 20);
  config.hc_eps = fields.number("hc_eps", 1e-6);
  config.mlp_layer_types = read_mlp_layer_types(fields, config.num_hidden_layers);
  config.n_routed_experts = fields.positive("n_routed_experts", 256);
  config.num_experts_per_tok = fields.positive("num_experts_per_tok", 6);
  config.moe_intermediate_size = fields.positive("moe_intermediate_size", 2048);
  config.routed_scaling_factor = fields.number("routed_scaling_factor", 1.5);
  config.swiglu_limit = fields.number("swiglu_limit", 10.0);
  const std::string scoring = fields.text("scoring_func", "sqrtsoftplus");
  if (scoring != "sqrtsoftplus") fields.fail("scoring_func", "\"" + scoring + "\" is not supported (supported: sqrtsoftplus)");
  const std::string activation = fields.text("hidden_act", "silu");
  if (activation != "silu") fields.fail("hidden_act", "\"" + activation + "\" is not supported (supported: silu)");
  if (fields.boolean("mlp_bias", false)) fields.fail("mlp_bias", "is not supported (DeepSeek-V4 has no MLP biases)");
  config.rms_norm_eps = fields.number("rms_norm_eps", 1e-6);
  config.max_position_embeddings = fields.positive("max_position_embeddings", 1048576);
  config.tie_word_embeddings = fields.boolean("tie_word_embeddings", false);
  config.num_nextn_predict_layers = fields.integer("num_nextn_predict_layers", 1);
  if (config.num_nextn_predict_layers < 0) fields.fail("num_nextn_predict_layers", "must be >= 0");
  read_ropes(fields, config);
  read_quantization(fields, config);
  check_dimensions(fields, config);
  return config;
}

DeepseekV4Config load_deepseek_v4_config(const std::string& model_dir) {
  if (!is_directory(model_dir)) throw InputError(model_dir, "model directory does not exist or is not a directory");
  const std::string path = join_path(model_dir, "config.json");
  return parse_deepseek_v4_config(read_regular_file(path, "a config.json"), path);
}

}  // namespace indexcache
