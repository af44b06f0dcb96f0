#include "serving_engines.h"

#include <stdexcept>

#include "error.h"

namespace indexcache {

namespace {

using nlohmann::json;

const char* kIndexerTypes = "indexer_types";
const char* kPattern = "index_topk_pattern";
const char* kFrequency = "index_topk_freq";
const char* kOffset = "index_skip_topk_offset";

// A field that is absent or JSON null means "not given" to every engine (Python's None).
bool given(const json& config, const char* key) { return config.contains(key) && !config.at(key).is_null(); }

std::string field(const std::string& where, const char* key) { return where + ": " + key; }

int64_t integer_field(const json& config, const char* key, int64_t fallback, const std::string& where) {
  if (!given(config, key)) return fallback;
  const json& value = config.at(key);
  if (!value.is_number_integer()) throw InputError(field(where, key), "must be an integer");
  return value.get<int64_t>();
}

void check_length(std::size_t length, int64_t layers, const std::string& where, const char* key) {
  if (static_cast<int64_t>(length) != layers) {
    throw InputError(field(where, key), "has " + std::to_string(length) + " entries, the model has " +
                                            std::to_string(layers) + " layers");
  }
}

// ["full", "shared", ...] (what transformers and SGLang store) as an F/S pattern.
std::string pattern_from_types(const json& types, int64_t layers, const std::string& where, const char* key) {
  if (!types.is_array()) throw InputError(field(where, key), "must be a list of \"full\"/\"shared\"");
  check_length(types.size(), layers, where, key);
  std::string pattern;
  for (const json& entry : types) {
    if (entry == "full") {
      pattern += 'F';
    } else if (entry == "shared") {
      pattern += 'S';
    } else {
      throw InputError(field(where, key), "entry " + entry.dump() + " is neither \"full\" nor \"shared\"");
    }
  }
  return pattern;
}

// index_topk_pattern: a string of F/S (transformers also takes a full/shared list).
std::string pattern_from_text(const json& value, int64_t layers, const std::string& where) {
  if (value.is_array()) return pattern_from_types(value, layers, where, kPattern);
  if (!value.is_string()) throw InputError(field(where, kPattern), "must be a string of F and S");
  const std::string text = value.get<std::string>();
  check_length(text.size(), layers, where, kPattern);
  if (text.find_first_not_of("FS") != std::string::npos) {
    throw InputError(field(where, kPattern), "\"" + text + "\" holds a character other than F and S");
  }
  return text;
}

EngineReading schedule_reading(const json& config, int64_t layers, const std::string& where) {
  if (!given(config, kFrequency) && !given(config, kOffset)) return {std::string(static_cast<std::size_t>(layers), 'F'), "default"};
  int64_t frequency = integer_field(config, kFrequency, 1, where);
  if (frequency < 1) throw InputError(field(where, kFrequency), "must be at least 1, got " + std::to_string(frequency));
  int64_t offset = integer_field(config, kOffset, 2, where);
  return {frequency_pattern(layers, frequency, offset), std::string(kFrequency) + "/" + kOffset};
}

// The order transformers' glm_moe_dsa and SGLang consult the fields in.
EngineReading types_first_reading(const json& config, int64_t layers, const std::string& where) {
  if (given(config, kIndexerTypes)) return {pattern_from_types(config.at(kIndexerTypes), layers, where, kIndexerTypes), kIndexerTypes};
  if (given(config, kPattern)) return {pattern_from_text(config.at(kPattern), layers, where), kPattern};
  return schedule_reading(config, layers, where);
}

std::string possessive(const std::string& name) { return name + (name.back() == 's' ? "'" : "'s"); }

}  // namespace

const char* engine_name(Engine engine) {
  switch (engine) {
    case Engine::Transformers: return "transformers";
    case Engine::Vllm: return "vLLM";
    case Engine::Sglang: return "SGLang";
  }
  return "?";
}

bool engine_applies_patterns(Engine engine, const std::string& model_type) {
  return engine != Engine::Transformers || model_type == "glm_moe_dsa";
}

std::string frequency_pattern(int64_t layers, int64_t frequency, int64_t offset) {
  // One formula for the engines' rule and the search's uniform baselines (layer_pattern.h).
  return LayerPattern::from_frequency(layers, frequency, offset).text();
}

EngineReading engine_reading(Engine engine, const json& config, const std::string& model_type, int64_t layers,
                             const std::string& where) {
  if (!config.is_object()) throw InputError(where, "is not a JSON object");
  switch (engine) {
    case Engine::Transformers:
      // transformers' deepseek_v32 builds an indexer in every layer and reads no pattern field.
      if (!engine_applies_patterns(engine, model_type)) {
        return {std::string(static_cast<std::size_t>(layers), 'F'), "not read by this model", false};
      }
      return types_first_reading(config, layers, where);
    case Engine::Sglang:
      return types_first_reading(config, layers, where);
    case Engine::Vllm:
      if (given(config, kPattern)) return {pattern_from_text(config.at(kPattern), layers, where), kPattern};
      return schedule_reading(config, layers, where);
  }
  throw std::logic_error("unknown engine");
}

json indexer_types_for(const std::string& pattern) {
  json types = json::array();
  for (char layer : pattern) types.push_back(layer == 'F' ? "full" : "shared");
  return types;
}

bool config_states_pattern(const json& config) {
  return given(config, kIndexerTypes) || given(config, kPattern) || given(config, kFrequency) || given(config, kOffset);
}

std::string vllm_hf_overrides(const LayerPattern& pattern) {
  return "{\"use_index_cache\": true, \"index_topk_pattern\": \"" + pattern.text() + "\"}";
}

std::string sglang_override_args(const LayerPattern& pattern) {
  std::string types;
  for (char layer : pattern.text()) types += std::string(types.empty() ? "" : ", ") + (layer == 'F' ? "\"full\"" : "\"shared\"");
  return "{\"index_topk_pattern\": \"" + pattern.text() + "\", \"indexer_types\": [" + types + "]}";
}

ConfigExport config_with_pattern(const std::string& config_json_text, const LayerPattern& layer_pattern,
                                 const std::string& model_type, const std::string& where) {
  const std::string& pattern = layer_pattern.text();  // this function compares the engines' readings as text
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(config_json_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) throw InputError(where, "is not a JSON object");
  const int64_t layers = static_cast<int64_t>(pattern.size());
  ConfigExport result;
  const json as_given = json::parse(config.dump());
  if (given(as_given, kFrequency) || given(as_given, kOffset)) {
    EngineReading schedule = schedule_reading(as_given, layers, where);
    if (schedule.pattern != pattern) {
      std::string removed;
      for (const char* key : {kFrequency, kOffset}) {
        if (!config.contains(key)) continue;
        removed += (removed.empty() ? "" : " and ") + std::string(key) + "=" + config.at(key).dump();
        config.erase(key);
      }
      result.notes.push_back("removed " + removed + " from the config: they describe " + schedule.pattern +
                             ", not the plan's " + pattern);
    }
  }
  config[kPattern] = pattern;
  config[kIndexerTypes] = indexer_types_for(pattern);
  config["use_index_cache"] = true;  // vLLM's documentation asks for it next to the pattern
  result.text = config.dump(2) + "\n";

  // Every engine must now read the plan's pattern, or say that it reads none.
  const json written = json::parse(result.text);
  for (Engine engine : kEngines) {
    EngineReading reading = engine_reading(engine, written, model_type, layers, where);
    if (!reading.honours_pattern) {
      result.notes.push_back(possessive(engine_name(engine)) + " " + model_type +
                             " model does not read index_topk_pattern or indexer_types: loading this directory in " +
                             engine_name(engine) + " runs every indexer (the all-F model); vLLM and SGLang read it");
    } else if (reading.pattern != pattern) {
      throw std::logic_error(std::string("exported config reads as ") + reading.pattern + " in " + engine_name(engine));
    }
  }
  return result;
}

std::vector<std::string> config_conflicts(const json& config, const LayerPattern& layer_pattern,
                                          const std::string& model_type, const std::string& where) {
  const std::string& pattern = layer_pattern.text();
  std::vector<std::string> lines;
  if (!config_states_pattern(config)) return lines;
  const int64_t layers = static_cast<int64_t>(pattern.size());
  for (Engine engine : kEngines) {
    EngineReading reading = engine_reading(engine, config, model_type, layers, where);
    if (!reading.honours_pattern || reading.pattern == pattern) continue;
    std::string origin = reading.source == "default" ? "it reads none of the fields this config gives: every layer F"
                                                     : "from " + reading.source;
    lines.push_back(std::string(engine_name(engine)) + " would run " + reading.pattern + " (" + origin + ")");
  }
  return lines;
}

std::string transformers_instructions(const std::string& model_type) {
  if (engine_applies_patterns(Engine::Transformers, model_type)) {
    return "config.json with indexer_types (read first) and index_topk_pattern: indexcache-calibrate --export hf-config";
  }
  return "not applied: transformers' " + model_type +
         " model runs every indexer whatever config.json says; serve the plan with vLLM or SGLang";
}

}  // namespace indexcache
