// The serving engines' rules for the per-layer indexer mode (lib/plan/serving_engines.h,
// docs/SERVING.md): which field each engine reads first, the freq/offset schedule, the errors for
// fields an engine would reject, and what the hf-config export keeps. No libtorch, no model.
#include <algorithm>
#include <optional>

#include "catch_shim.h"
#include "error.h"
#include "input_error.h"
#include "layer_pattern.h"
#include "serving_engines.h"

using namespace indexcache;
using indexcache::test_support::input_error_message;
using nlohmann::json;

namespace {

std::string reading(Engine engine, const json& config, const std::string& type = "glm_moe_dsa", int64_t layers = 6) {
  return engine_reading(engine, config, type, layers, "config.json").pattern;
}

}  // namespace

TEST_CASE("engines read the pattern fields in their own order", "[serving]") {
  const json all_fields = {{"indexer_types", {"full", "full", "full", "full", "full", "full"}},
                           {"index_topk_pattern", "FSFSFS"},
                           {"index_topk_freq", 3}};
  CHECK(reading(Engine::Transformers, all_fields) == "FFFFFF");  // indexer_types first
  CHECK(reading(Engine::Sglang, all_fields) == "FFFFFF");
  CHECK(reading(Engine::Vllm, all_fields) == "FSFSFS");  // vLLM never reads indexer_types
  EngineReading v32 = engine_reading(Engine::Transformers, all_fields, "deepseek_v32", 6, "config.json");
  CHECK_FALSE(v32.honours_pattern);
  CHECK(v32.pattern == "FFFFFF");

  const json pattern_and_frequency = {{"index_topk_pattern", "FFSFSS"}, {"index_topk_freq", 2}};
  for (Engine engine : kEngines) CHECK(reading(engine, pattern_and_frequency) == "FFSFSS");

  // freq/offset: layer i is F iff max(i - offset + 1, 0) % freq == 0; offset 2 by default, so
  // freq 4 keeps layers 0 and 1 (the off-by-one users trip over), as LayerPattern does.
  const json frequency = {{"index_topk_freq", 4}};
  for (Engine engine : kEngines) CHECK(reading(engine, frequency, "glm_moe_dsa", 8) == "FFSSSFSS");
  CHECK(LayerPattern::from_frequency(8, 4).text() == "FFSSSFSS");
  // GLM-5.2 ships freq 4, offset 3: 21 F layers of 78, layers 0, 1, 2, 6, 10, ..., 74.
  std::string glm52 = frequency_pattern(78, 4, 3);
  CHECK(std::count(glm52.begin(), glm52.end(), 'F') == 21);
  CHECK(glm52.substr(0, 11) == "FFFSSSFSSSF");
  CHECK(glm52[74] == 'F');
  CHECK(glm52[77] == 'S');

  EngineReading none = engine_reading(Engine::Vllm, json::object(), "glm_moe_dsa", 4, "config.json");
  CHECK(none.pattern == "FFFF");
  CHECK(none.source == "default");
  CHECK_FALSE(config_states_pattern(json::object()));
  CHECK(config_states_pattern({{"index_skip_topk_offset", 3}}));

  SECTION("fields an engine would reject or misread are input errors naming the field") {
    auto message = [](const json& config) {
      return input_error_message([&] { engine_reading(Engine::Sglang, config, "glm_moe_dsa", 6, "m/config.json"); });
    };
    auto bad_character = message({{"index_topk_pattern", "FSXSSS"}});
    REQUIRE(bad_character);
    CHECK(bad_character->find("m/config.json: index_topk_pattern") == 0);
    auto short_list = message({{"indexer_types", {"full", "shared"}}});
    REQUIRE(short_list);
    CHECK(short_list->find("has 2 entries, the model has 6 layers") != std::string::npos);
    CHECK(message({{"indexer_types", {"full", "sparse", "full", "full", "full", "full"}}}));
    CHECK(message({{"index_topk_freq", 0}}));
    CHECK(message({{"index_topk_freq", "4"}}));
  }
}

TEST_CASE("freq/offset that describe the plan's pattern stay in the exported config", "[serving]") {
  const std::string text = "{\"index_topk_freq\": 4, \"num_hidden_layers\": 8}";
  ConfigExport same = config_with_pattern(text, LayerPattern::parse("FFSSSFSS", 8, "test"), "glm_moe_dsa", "config.json");
  CHECK(same.notes.empty());
  CHECK(json::parse(same.text)["index_topk_freq"] == 4);
  ConfigExport other = config_with_pattern(text, LayerPattern::parse("FSSSSFSS", 8, "test"), "glm_moe_dsa", "config.json");
  REQUIRE(other.notes.size() == 1);
  CHECK(other.notes[0] == "removed index_topk_freq=4 from the config: they describe FFSSSFSS, not the plan's FSSSSFSS");
}

