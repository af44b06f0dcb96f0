// How the serving engines decide, layer by layer, whether a DSA layer runs its lightning indexer
// (F, "full") or reuses the top-k of the nearest F layer before it (S, "shared"), and the exports
// that make every one of them apply a plan's pattern. No libtorch: config.json is JSON.
//
// The rules, as read from the engines' sources (docs/SERVING.md names the versions):
//   transformers glm_moe_dsa  indexer_types, else index_topk_pattern, else freq/offset
//   transformers deepseek_v32 none: every layer runs its indexer whatever the config says
//   vLLM                      index_topk_pattern, else freq/offset (indexer_types is not read)
//   SGLang                    indexer_types, else index_topk_pattern, else freq/offset
// freq/offset: layer i is F iff max(i - offset + 1, 0) % freq == 0 (freq default 1, offset 2).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "layer_pattern.h"

namespace indexcache {

enum class Engine { Transformers, Vllm, Sglang };
inline constexpr Engine kEngines[] = {Engine::Transformers, Engine::Vllm, Engine::Sglang};
const char* engine_name(Engine engine);

// Whether `engine` applies a pattern at all to a model of `model_type` (transformers' deepseek_v32
// runs every indexer whatever the config says; the others do).
bool engine_applies_patterns(Engine engine, const std::string& model_type);

// What an engine makes of a config: the F/S pattern it runs and the field it took it from.
// `honours_pattern` is false where the engine runs every indexer whatever the config says.
struct EngineReading {
  std::string pattern;  // one F/S character per decoder layer
  std::string source;   // "indexer_types", "index_topk_pattern", "index_topk_freq/index_skip_topk_offset",
                        // "default" (no field given) or "not read by this model"
  bool honours_pattern = true;
};

// `config` is a config.json object with any override arguments merged in; `where` names it in
// errors. Throws InputError for a pattern field an engine would reject or misread (a character
// other than F/S, a list of the wrong length, an entry other than full/shared, freq < 1).
EngineReading engine_reading(Engine engine, const nlohmann::json& config, const std::string& model_type,
                             int64_t layers, const std::string& where);

// The engines' uniform schedule: layer i is F iff max(i - offset + 1, 0) % freq == 0.
std::string frequency_pattern(int64_t layers, int64_t frequency, int64_t offset);

// ["full", "shared", ...] for an F/S pattern.
nlohmann::json indexer_types_for(const std::string& pattern);

// True when the config states a pattern of its own (indexer_types, index_topk_pattern,
// index_topk_freq or index_skip_topk_offset).
bool config_states_pattern(const nlohmann::json& config);

// Exports. Written out by hand to give exactly the documented form (key order, spacing); the
// pattern holds only F and S, so it needs no escaping.
//   vLLM --hf-overrides: {"use_index_cache": true, "index_topk_pattern": "..."}; vLLM reads the
//     pattern before freq/offset and never reads indexer_types, so this decides every layer.
//   SGLang --json-model-override-args: {"index_topk_pattern": "...", "indexer_types": [...]};
//     indexer_types is what SGLang (and transformers) prefer, so a config's own list cannot win.
std::string vllm_hf_overrides(const LayerPattern& pattern);
std::string sglang_override_args(const LayerPattern& pattern);

// config.json with the pattern in every form an engine reads: indexer_types, index_topk_pattern,
// use_index_cache; index_topk_freq / index_skip_topk_offset are removed when they describe
// another pattern. `notes` says what was removed and, for a model whose transformers class does
// not read the pattern, that loading the directory in transformers ignores it.
struct ConfigExport {
  std::string text;
  std::vector<std::string> notes;
};
ConfigExport config_with_pattern(const std::string& config_json_text, const LayerPattern& pattern,
                                 const std::string& model_type, const std::string& where);

// Where a model's config.json, as it stands, makes an engine run another pattern than the plan's:
// one line per engine that disagrees ("vLLM uses index_topk_freq/...: FFSS..."). Empty when every
// engine would run the plan's pattern or the config states no pattern of its own.
std::vector<std::string> config_conflicts(const nlohmann::json& config, const LayerPattern& pattern,
                                          const std::string& model_type, const std::string& where);

// How to apply the plan in transformers, for the plan's `serving` section.
std::string transformers_instructions(const std::string& model_type);

}  // namespace indexcache
