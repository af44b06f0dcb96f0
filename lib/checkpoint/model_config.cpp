#include "model_config.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "error.h"
#include "layer_pattern.h"

namespace indexcache {
namespace {

using nlohmann::json;

// transformers' defaults for the fields a config.json may omit, per model type.
struct TypeDefaults {
  const char* name;
  ModelType type;
  const char* architecture;
  int64_t n_group;
  int64_t topk_group;
  double rms_norm_eps;
  int64_t max_position_embeddings;
};

constexpr TypeDefaults kSupportedTypes[] = {
    {"deepseek_v32", ModelType::DeepseekV32, "DeepseekV32ForCausalLM", 8, 4, 1e-6, 163840},
    {"glm_moe_dsa", ModelType::GlmMoeDsa, "GlmMoeDsaForCausalLM", 1, 1, 1e-5, 202752},
};

// Real DSA models have tens of layers; the cap keeps per-layer tables small for any config.
constexpr int64_t kMostLayers = 1 << 16;

std::string supported_type_list() {
  std::string names;
  for (const auto& t : kSupportedTypes) names += (names.empty() ? "" : ", ") + std::string(t.name);
  return names;
}

// Field readers: each names the field in its error and refuses values of the wrong JSON type.
class FieldReader {
 public:
  FieldReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  bool has(const char* field) const {
    auto it = object_.find(field);
    return it != object_.end() && !it->is_null();
  }

  int64_t integer(const char* field) const {
    if (!has(field)) fail(field, "is missing");
    return as_integer(field, object_.at(field));
  }
  int64_t integer(const char* field, int64_t fallback) const {
    return has(field) ? as_integer(field, object_.at(field)) : fallback;
  }
  int64_t positive(const char* field) const {
    int64_t value = integer(field);
    if (value <= 0) fail(field, "must be > 0, got " + std::to_string(value));
    return value;
  }
  double number(const char* field, double fallback) const {
    if (!has(field)) return fallback;
    const json& value = object_.at(field);
    if (!value.is_number()) fail(field, "must be a number, got " + type_of(value));
    double result = value.get<double>();
    if (!std::isfinite(result)) fail(field, "must be finite");
    return result;
  }
  std::optional<double> optional_number(const char* field) const {
    if (!has(field)) return std::nullopt;
    return number(field, 0.0);
  }
  bool boolean(const char* field, bool fallback) const {
    if (!has(field)) return fallback;
    const json& value = object_.at(field);
    if (!value.is_boolean()) fail(field, "must be true or false, got " + type_of(value));
    return value.get<bool>();
  }
  std::string string(const char* field, const std::string& fallback) const {
    if (!has(field)) return fallback;
    const json& value = object_.at(field);
    if (!value.is_string()) fail(field, "must be a string, got " + type_of(value));
    return value.get<std::string>();
  }
  std::vector<std::string> string_list(const char* field) const {
    std::vector<std::string> result;
    if (!has(field)) return result;
    const json& value = object_.at(field);
    if (!value.is_array()) fail(field, "must be a list of strings, got " + type_of(value));
    for (const json& item : value) {
      if (!item.is_string()) fail(field, "must be a list of strings, has " + type_of(item));
      result.push_back(item.get<std::string>());
    }
    return result;
  }
  const json& object(const char* field) const {
    const json& value = object_.at(field);
    if (!value.is_object()) fail(field, "must be an object, got " + type_of(value));
    return value;
  }

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw InputError(where_, field + " " + problem);
  }
  const std::string& where() const { return where_; }

 private:
  static std::string type_of(const json& value) {
    if (value.is_number_float()) return "a float (" + value.dump() + ")";
    if (value.is_number()) return "a number";
    return std::string("a ") + value.type_name();
  }
  // Every integer of a config is a count or a size far below 2^31 in any real model. The cap
  // keeps sums and pairwise products of fields (head dims, expert counts) inside int64, so later
  // arithmetic on a hostile config cannot overflow.
  static constexpr int64_t kLargestInteger = int64_t{1} << 31;
  int64_t as_integer(const char* field, const json& value) const {
    if (!value.is_number_integer()) fail(field, "must be an integer, got " + type_of(value));
    if (value.is_number_unsigned() ? value.get<uint64_t>() >= static_cast<uint64_t>(kLargestInteger)
                                   : value.get<int64_t>() >= kLargestInteger || value.get<int64_t>() < -kLargestInteger) {
      fail(field, value.dump() + " is out of range (|value| < 2^31)");
    }
    return value.get<int64_t>();
  }

  const json& object_;
  std::string where_;
};

const TypeDefaults& model_type_of(const FieldReader& fields) {
  std::string type = fields.string("model_type", "");
  if (type.empty()) fields.fail("model_type", "is missing (supported: " + supported_type_list() + ")");
  for (const auto& t : kSupportedTypes) {
    if (type == t.name) return t;
  }
  fields.fail("model_type", "\"" + type + "\" is not supported (supported: " + supported_type_list() + ")");
}

RopeParameters read_rope(const FieldReader& fields, int64_t max_position_embeddings) {
  RopeParameters rope;
  // transformers: `rope_scaling` (older name) wins over `rope_parameters`; `rope_theta` inside the
  // dict wins over the top-level one; theta defaults to 10000.
  const char* key = fields.has("rope_scaling") ? "rope_scaling" : "rope_parameters";
  double top_level_theta = fields.number("rope_theta", 10000.0);
  if (!fields.has(key)) {
    rope.theta = top_level_theta;
    return rope;
  }
  FieldReader params(fields.object(key), fields.where());
  auto field = [&](const char* name) { return std::string(key) + "." + name; };
  std::string type = params.string("rope_type", params.string("type", "default"));
  if (type != "default" && type != "yarn") {
    fields.fail(field("rope_type"), "\"" + type + "\" is not supported (supported: default, yarn)");
  }
  rope.type = type;
  rope.theta = params.number("rope_theta", top_level_theta);
  if (rope.theta <= 0) fields.fail(field("rope_theta"), "must be > 0");
  if (type == "yarn") {
    if (!params.has("factor")) fields.fail(field("factor"), "is required for yarn");
    rope.factor = params.number("factor", 1.0);
    if (rope.factor <= 0) fields.fail(field("factor"), "must be > 0");
    // transformers: a top-level original_max_position_embeddings wins, then the dict's, then
    // max_position_embeddings.
    rope.original_max_position_embeddings =
        fields.integer("original_max_position_embeddings",
                       params.integer("original_max_position_embeddings", max_position_embeddings));
    if (rope.original_max_position_embeddings <= 0) {
      fields.fail(field("original_max_position_embeddings"), "must be > 0");
    }
    // transformers uses `or`: a 0 or missing beta falls back to the paper's values.
    double beta_fast = params.number("beta_fast", 0.0);
    double beta_slow = params.number("beta_slow", 0.0);
    rope.beta_fast = beta_fast != 0.0 ? beta_fast : 32.0;
    rope.beta_slow = beta_slow != 0.0 ? beta_slow : 1.0;
    rope.mscale = params.optional_number("mscale");
    rope.mscale_all_dim = params.optional_number("mscale_all_dim");
    rope.attention_factor = params.optional_number("attention_factor");
    rope.truncate = params.boolean("truncate", true);
  }
  return rope;
}

std::vector<bool> read_layer_kinds(const FieldReader& fields, int64_t layers) {
  std::vector<bool> is_moe(static_cast<std::size_t>(layers), false);
  std::vector<std::string> kinds = fields.string_list("mlp_layer_types");
  if (!kinds.empty()) {
    if (static_cast<int64_t>(kinds.size()) != layers) {
      fields.fail("mlp_layer_types", "has " + std::to_string(kinds.size()) + " entries but num_hidden_layers is " +
                                         std::to_string(layers));
    }
    for (std::size_t i = 0; i < kinds.size(); ++i) {
      if (kinds[i] != "dense" && kinds[i] != "sparse") {
        fields.fail("mlp_layer_types", "[" + std::to_string(i) + "] is \"" + kinds[i] + "\" (expected dense or sparse)");
      }
      is_moe[i] = kinds[i] == "sparse";
    }
    return is_moe;
  }
  int64_t dense = fields.integer("first_k_dense_replace", 3);
  if (dense < 0) fields.fail("first_k_dense_replace", "must be >= 0");
  for (int64_t i = std::min(dense, layers); i < layers; ++i) is_moe[static_cast<std::size_t>(i)] = true;
  return is_moe;
}

std::optional<Fp8BlockSize> read_fp8_block(const FieldReader& fields) {
  if (!fields.has("quantization_config")) return std::nullopt;
  FieldReader quant(fields.object("quantization_config"), fields.where());
  std::string method = quant.string("quant_method", "");
  if (method != "fp8") {
    fields.fail("quantization_config.quant_method", "\"" + method + "\" is not supported (supported: fp8)");
  }
  std::string format = quant.string("fmt", "e4m3");
  if (format != "e4m3") fields.fail("quantization_config.fmt", "\"" + format + "\" is not supported (supported: e4m3)");
  Fp8BlockSize block;
  if (quant.has("weight_block_size")) {
    const json& sizes = fields.object("quantization_config").at("weight_block_size");
    if (!sizes.is_array() || sizes.size() != 2 || !sizes[0].is_number_integer() || !sizes[1].is_number_integer() ||
        sizes[0].get<int64_t>() <= 0 || sizes[1].get<int64_t>() <= 0) {
      fields.fail("quantization_config.weight_block_size", "must be two positive integers, got " + sizes.dump());
    }
    block = {sizes[0].get<int64_t>(), sizes[1].get<int64_t>()};
  }
  return block;
}

void read_moe(const FieldReader& fields, const TypeDefaults& defaults, ModelConfig& config) {
  config.n_shared_experts = fields.integer("n_shared_experts", 1);
  config.routed_scaling_factor = fields.number("routed_scaling_factor", 2.5);
  config.norm_topk_prob = fields.boolean("norm_topk_prob", true);
  config.n_group = fields.integer("n_group", defaults.n_group);
  config.topk_group = fields.integer("topk_group", defaults.topk_group);
  bool any_moe = false;
  for (bool moe : config.layer_is_moe) any_moe = any_moe || moe;
  if (!any_moe) return;
  config.n_routed_experts = fields.positive("n_routed_experts");
  config.num_experts_per_tok = fields.positive("num_experts_per_tok");
  config.moe_intermediate_size = fields.positive("moe_intermediate_size");
  if (config.n_shared_experts < 0) fields.fail("n_shared_experts", "must be >= 0");
  if (config.n_group <= 0) fields.fail("n_group", "must be > 0");
  if (config.n_routed_experts % config.n_group != 0) {
    fields.fail("n_routed_experts", std::to_string(config.n_routed_experts) + " is not divisible by n_group " +
                                        std::to_string(config.n_group));
  }
  if (config.n_routed_experts / config.n_group < 2) {
    fields.fail("n_group", "leaves fewer than 2 experts per group (the router scores a group by its best two)");
  }
  if (config.topk_group <= 0 || config.topk_group > config.n_group) {
    fields.fail("topk_group", "must be in [1, n_group=" + std::to_string(config.n_group) + "]");
  }
  int64_t selectable = config.topk_group * (config.n_routed_experts / config.n_group);
  if (config.num_experts_per_tok > selectable) {
    fields.fail("num_experts_per_tok", std::to_string(config.num_experts_per_tok) + " exceeds the " +
                                           std::to_string(selectable) + " experts in topk_group groups");
  }
}

void check_dimensions(const FieldReader& fields, const ModelConfig& config) {
  if (config.qk_rope_head_dim % 2 != 0) fields.fail("qk_rope_head_dim", "must be even");
  if (config.index_head_dim < config.qk_rope_head_dim) {
    fields.fail("index_head_dim", std::to_string(config.index_head_dim) + " is smaller than qk_rope_head_dim " +
                                      std::to_string(config.qk_rope_head_dim));
  }
  if (config.hidden_act != "silu") {
    fields.fail("hidden_act", "\"" + config.hidden_act + "\" is not supported (supported: silu)");
  }
  if (config.rms_norm_eps <= 0) fields.fail("rms_norm_eps", "must be > 0");
  // Products used to size tensors must not overflow int64 (a hostile config can claim anything).
  auto check_product = [&](const char* field, std::initializer_list<int64_t> factors) {
    int64_t product = 1;
    for (int64_t f : factors) {
      if (__builtin_mul_overflow(product, f, &product) || product > (int64_t{1} << 40)) {
        fields.fail(field, "gives a tensor too large to handle");
      }
    }
  };
  check_product("vocab_size", {config.vocab_size, config.hidden_size});
  check_product("num_attention_heads", {config.num_attention_heads, config.qk_head_dim() + config.v_head_dim,
                                        std::max(config.q_lora_rank, config.kv_lora_rank)});
  check_product("index_n_heads", {config.index_n_heads, config.index_head_dim, config.q_lora_rank});
  check_product("intermediate_size", {config.intermediate_size, config.hidden_size});
  check_product("moe_intermediate_size", {std::max<int64_t>(config.moe_intermediate_size, 1), config.hidden_size,
                                          std::max<int64_t>(config.n_routed_experts, 1)});
}

// Per layer: declared shared (true) or full, from a list of "full"/"shared".
std::vector<bool> shared_from_types(const FieldReader& fields, const json& types, int64_t layers, const char* field) {
  if (!types.is_array()) fields.fail(field, "must be a list of \"full\"/\"shared\"");
  if (static_cast<int64_t>(types.size()) != layers) {
    fields.fail(field, "has " + std::to_string(types.size()) + " entries but num_hidden_layers is " +
                           std::to_string(layers));
  }
  std::vector<bool> shared;
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (types[i] != "full" && types[i] != "shared") {
      fields.fail(std::string(field) + "[" + std::to_string(i) + "]", "is " + types[i].dump() + " (expected \"full\" or \"shared\")");
    }
    shared.push_back(types[i] == "shared");
  }
  return shared;
}

// The config's own indexer sharing, in the order transformers' glm_moe_dsa (and SGLang) reads it
// (model_config.h, declared_shared). vLLM reads the pattern and freq/offset only; a config whose
// indexer_types disagrees with them is served differently by the engines, which --validate reports.
void read_declared_sharing(const FieldReader& fields, const json& root, ModelConfig& config) {
  const int64_t layers = config.num_hidden_layers;
  if (fields.has("index_topk_freq")) config.index_topk_freq = fields.integer("index_topk_freq");
  if (fields.has("index_skip_topk_offset")) config.index_skip_topk_offset = fields.integer("index_skip_topk_offset");
  std::vector<bool> shared;
  std::string field;
  if (fields.has("indexer_types")) {
    field = "indexer_types";
    shared = shared_from_types(fields, root.at(field), layers, "indexer_types");
  } else if (fields.has("index_topk_pattern")) {
    field = "index_topk_pattern";
    const json& value = root.at(field);
    if (value.is_array()) {
      shared = shared_from_types(fields, value, layers, "index_topk_pattern");
    } else {
      const std::string text = fields.string("index_topk_pattern", "");
      if (static_cast<int64_t>(text.size()) != layers) {
        fields.fail(field, "has " + std::to_string(text.size()) + " characters but num_hidden_layers is " +
                               std::to_string(layers));
      }
      for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != 'F' && text[i] != 'S') {
          fields.fail(field, "has '" + std::string(1, text[i]) + "' at layer " + std::to_string(i) + " (only F and S)");
        }
        shared.push_back(text[i] == 'S');
      }
    }
  } else if (config.index_topk_freq || config.index_skip_topk_offset) {
    field = "index_topk_freq/index_skip_topk_offset";
    const int64_t frequency = config.index_topk_freq.value_or(1);
    if (frequency < 1) fields.fail("index_topk_freq", "must be at least 1, got " + std::to_string(frequency));
    const LayerPattern schedule = LayerPattern::from_frequency(layers, frequency, config.index_skip_topk_offset.value_or(2));
    for (int64_t i = 0; i < layers; ++i) shared.push_back(!schedule.is_full(i));
  } else {
    return;
  }
  if (shared.front()) {
    fields.fail(field, "declares layer 0 shared, but layer 0 has no earlier layer to share from");
  }
  config.declared_shared = std::move(shared);
  config.declared_sharing_field = field;
}

}  // namespace

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::Dsa: return "dsa";
    case AttentionKind::Sliding: return "sliding_attention";
    case AttentionKind::CompressedSparse: return "compressed_sparse_attention";
    case AttentionKind::HeavilyCompressed: return "heavily_compressed_attention";
  }
  return "?";
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& where) {
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) throw InputError(where, "is not valid JSON");
  if (!root.is_object()) throw InputError(where, "must be a JSON object");
  FieldReader fields(root, where);
  const TypeDefaults& defaults = model_type_of(fields);

  ModelConfig config;
  config.config_path = where;
  config.model_type = defaults.type;
  config.model_type_name = defaults.name;
  config.architectures = fields.string_list("architectures");
  for (const std::string& architecture : config.architectures) {
    if (architecture != defaults.architecture) {
      fields.fail("architectures", "names " + architecture + " but model_type " + defaults.name + " is " +
                                       defaults.architecture);
    }
  }
  config.vocab_size = fields.positive("vocab_size");
  config.hidden_size = fields.positive("hidden_size");
  config.num_hidden_layers = fields.positive("num_hidden_layers");
  if (config.num_hidden_layers > kMostLayers) {
    fields.fail("num_hidden_layers", std::to_string(config.num_hidden_layers) + " is more than the " +
                                         std::to_string(kMostLayers) + " layers indexcache supports");
  }
  config.num_attention_heads = fields.positive("num_attention_heads");
  if (!fields.has("q_lora_rank")) {
    fields.fail("q_lora_rank", "is missing (the DSA indexer reads the query LoRA latent, so it is required)");
  }
  config.q_lora_rank = fields.positive("q_lora_rank");
  config.kv_lora_rank = fields.positive("kv_lora_rank");
  config.qk_rope_head_dim = fields.positive("qk_rope_head_dim");
  config.qk_nope_head_dim = fields.positive("qk_nope_head_dim");
  config.v_head_dim = fields.positive("v_head_dim");
  config.index_topk = fields.positive("index_topk");
  config.index_head_dim = fields.positive("index_head_dim");
  config.index_n_heads = fields.positive("index_n_heads");
  config.rms_norm_eps = fields.number("rms_norm_eps", defaults.rms_norm_eps);
  config.max_position_embeddings = fields.integer("max_position_embeddings", defaults.max_position_embeddings);
  config.tie_word_embeddings = fields.boolean("tie_word_embeddings", false);
  config.attention_bias = fields.boolean("attention_bias", false);
  config.hidden_act = fields.string("hidden_act", "silu");

  config.layer_is_moe = read_layer_kinds(fields, config.num_hidden_layers);
  bool any_dense = false;
  for (bool moe : config.layer_is_moe) any_dense = any_dense || !moe;
  config.intermediate_size = any_dense ? fields.positive("intermediate_size") : fields.integer("intermediate_size", 0);
  read_moe(fields, defaults, config);
  config.rope = read_rope(fields, config.max_position_embeddings);
  config.fp8_block = read_fp8_block(fields);
  read_declared_sharing(fields, root, config);
  config.num_nextn_predict_layers = fields.integer("num_nextn_predict_layers", 0);
  if (config.num_nextn_predict_layers < 0) fields.fail("num_nextn_predict_layers", "must be >= 0");
  check_dimensions(fields, config);
  return config;
}

ModelConfig load_model_config(const std::string& model_dir) {
  struct stat info {};
  if (stat(model_dir.c_str(), &info) != 0) throw InputError(model_dir, "model directory does not exist");
  if (!S_ISDIR(info.st_mode)) throw InputError(model_dir, "is not a directory (--model takes a checkpoint directory)");
  std::string path = model_dir + "/config.json";
  if (stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) throw InputError(path, "is missing");
    throw InputError(path, std::string("cannot be read: ") + std::strerror(errno));
  }
  if (S_ISDIR(info.st_mode)) throw InputError(path, "is a directory, expected a file");
  // A FIFO or device would block or never end; only regular files are read.
  if (!S_ISREG(info.st_mode)) throw InputError(path, "is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, std::string("cannot be read: ") + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return parse_model_config(text.str(), path);
}

}  // namespace indexcache
