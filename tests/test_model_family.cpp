// Model families (lib/model/model_family.h): which layers have an indexer, how the pattern maps to
// layer ids, which layers are fixed, and the config fields they come from (indexer_types,
// index_topk_pattern, index_topk_freq / index_skip_topk_offset, num_nextn_predict_layers); the
// engines' uniform schedule (lib/base/layer_pattern.h, docs/SERVING.md).
#include <algorithm>
#include <functional>
#include <set>

#include "catch_shim.h"
#include "error.h"
#include "golden_fixture.h"
#include "input_error.h"
#include "layer_pattern.h"
#include "model_config.h"
#include "model_family.h"
#include "serving_engines.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// The InputError message of `action`, or a text no CHECK finds a fragment in.
template <typename Action>
std::string error_of(Action&& action) {
  return input_error_message(std::forward<Action>(action)).value_or("(no InputError)");
}

// The glm_moe_dsa golden fixture's config.json with `edit` applied, parsed.
ModelConfig glm_config(const std::function<void(nlohmann::json&)>& edit = {}) {
  nlohmann::json config = read_json_file(golden_dir("glm_dsa") + "/config.json");
  if (edit) edit(config);
  return parse_model_config(config.dump(), "config.json");
}

ModelConfig glm_config_with_layers(int64_t layers, const std::function<void(nlohmann::json&)>& edit = {}) {
  return glm_config([&](nlohmann::json& config) {
    config["num_hidden_layers"] = layers;
    config.erase("mlp_layer_types");
    config["first_k_dense_replace"] = 1;
    if (edit) edit(config);
  });
}

std::vector<std::string> types_of(const std::string& pattern) {
  std::vector<std::string> types;
  for (char c : pattern) types.push_back(c == 'F' ? "full" : "shared");
  return types;
}

// The engines' rule as vLLM states it (vllm/models/deepseek_v32/attention.py, commit 00859a52):
// a layer skips its top-k iff max(layer_id - offset + 1, 0) % freq != 0.
bool vllm_skips(int64_t layer, int64_t frequency, int64_t offset) {
  return std::max<int64_t>(layer - offset + 1, 0) % frequency != 0;
}

}  // namespace

TEST_CASE("uniform schedule: from_frequency is the engines' freq/offset rule", "[family][pattern]") {
  for (int64_t layers : {1, 6, 43, 61, 78}) {
    for (int64_t frequency = 1; frequency <= 9; ++frequency) {
      for (int64_t offset = 0; offset <= 5; ++offset) {
        const LayerPattern pattern = LayerPattern::from_frequency(layers, frequency, offset);
        REQUIRE(pattern.layers() == layers);
        for (int64_t layer = 0; layer < layers; ++layer) {
          INFO("layers " << layers << " freq " << frequency << " offset " << offset << " layer " << layer);
          CHECK(pattern.is_full(layer) == !vllm_skips(layer, frequency, offset));
        }
        // The plan wing's engine reading uses the same formula.
        CHECK(frequency_pattern(layers, frequency, offset) == pattern.text());
      }
    }
  }
  // Default offset 2: layers 0, 1, then every freq-th (the off-by-one users expect as 0, 4, 8).
  CHECK(LayerPattern::from_frequency(8, 4).text() == "FFSSSFSS");
  CHECK(LayerPattern::from_frequency(8, 4, 2).text() == "FFSSSFSS");
  CHECK(LayerPattern::from_frequency(8, 4, 1).text() == "FSSSFSSS");
  // GLM-5.2: freq 4, offset 3 keeps 21 of 78 layers: 0, 1, 2, 6, 10, ..., 74.
  const LayerPattern glm52 = LayerPattern::from_frequency(78, 4, 3);
  CHECK(glm52.kept() == 21);
  std::vector<int64_t> expected = {0, 1, 2};
  for (int64_t layer = 6; layer <= 74; layer += 4) expected.push_back(layer);
  CHECK(glm52.full_layers() == expected);
}

TEST_CASE("evenly spaced over the layers that have an indexer", "[family][pattern]") {
  const LayerPattern all = LayerPattern::all_full(8);
  for (int64_t kept = 1; kept <= 8; ++kept) {
    CHECK(LayerPattern::evenly_spaced_over(all, kept) == LayerPattern::evenly_spaced(8, kept));
  }
  const LayerPattern glm52 = LayerPattern::from_frequency(78, 4, 3);
  const LayerPattern spread = LayerPattern::evenly_spaced_over(glm52, 5);
  CHECK(spread.kept() == 5);
  for (int64_t layer : spread.full_layers()) CHECK(glm52.is_full(layer));
  CHECK(spread.is_full(0));
}

TEST_CASE("config.json: declared indexer sharing read as transformers' glm_moe_dsa reads it", "[family][config]") {
  SECTION("none declared: every layer full") {
    const ModelConfig config = glm_config();
    CHECK(config.declared_shared.empty());
    CHECK(config.declared_sharing_field.empty());
    CHECK(config.num_nextn_predict_layers == 0);
  }
  SECTION("indexer_types wins over the pattern and freq/offset") {
    const ModelConfig config = glm_config([](nlohmann::json& c) {
      c["indexer_types"] = types_of("FFSFSS");
      c["index_topk_pattern"] = "FSSSSS";
      c["index_topk_freq"] = 2;
    });
    CHECK(config.declared_sharing_field == "indexer_types");
    CHECK(config.declared_shared == std::vector<bool>{false, false, true, false, true, true});
    CHECK(config.index_topk_freq == std::optional<int64_t>(2));
  }
  SECTION("index_topk_pattern, then freq/offset with offset default 2") {
    CHECK(glm_config([](nlohmann::json& c) { c["index_topk_pattern"] = "FSFFSS"; }).declared_shared ==
          std::vector<bool>{false, true, false, false, true, true});
    const ModelConfig frequency = glm_config([](nlohmann::json& c) { c["index_topk_freq"] = 2; });
    CHECK(frequency.declared_sharing_field == "index_topk_freq/index_skip_topk_offset");
    CHECK(frequency.declared_shared == std::vector<bool>{false, false, true, false, true, false});  // FFSFSF
    const ModelConfig glm52 = glm_config_with_layers(78, [](nlohmann::json& c) {
      c["index_topk_freq"] = 4;
      c["index_skip_topk_offset"] = 3;
    });
    CHECK(std::count(glm52.declared_shared.begin(), glm52.declared_shared.end(), false) == 21);
  }
  SECTION("MTP layers") {
    CHECK(glm_config([](nlohmann::json& c) { c["num_nextn_predict_layers"] = 1; }).num_nextn_predict_layers == 1);
  }
  SECTION("bad values are input errors naming the field") {
    auto message = [](const std::function<void(nlohmann::json&)>& edit) {
      return error_of([&] { glm_config(edit); });
    };
    CHECK(message([](nlohmann::json& c) { c["indexer_types"] = types_of("FFS"); }).find("indexer_types has 3 entries") !=
          std::string::npos);
    CHECK(message([](nlohmann::json& c) { c["indexer_types"] = {"full", "full", "half", "full", "full", "full"}; })
              .find("indexer_types[2]") != std::string::npos);
    CHECK(message([](nlohmann::json& c) { c["indexer_types"] = types_of("SFFFFF"); }).find("layer 0 shared") !=
          std::string::npos);
    CHECK(message([](nlohmann::json& c) { c["index_topk_pattern"] = "FFXFFF"; }).find("index_topk_pattern") !=
          std::string::npos);
    CHECK(message([](nlohmann::json& c) { c["index_topk_freq"] = 0; }).find("index_topk_freq must be at least 1") !=
          std::string::npos);
    CHECK(message([](nlohmann::json& c) { c["index_skip_topk_offset"] = 0; c["index_topk_freq"] = 2; })
              .find("layer 0 shared") != std::string::npos);
    CHECK(message([](nlohmann::json& c) { c["num_nextn_predict_layers"] = -1; }).find("num_nextn_predict_layers") !=
          std::string::npos);
  }
}

TEST_CASE("family deepseek_v32 / glm_moe_dsa: one pattern character per decoder layer", "[family]") {
  const ModelFamily family = ModelFamily::describe(glm_config([](nlohmann::json& c) { c["num_nextn_predict_layers"] = 1; }));
  CHECK(family.definition().display_name == std::string("GLM-5"));
  CHECK(family.definition().vllm_class == std::string("GlmMoeDsaForCausalLM"));
  REQUIRE(family.positions() == 6);
  for (int64_t layer = 0; layer < 6; ++layer) {
    CHECK(family.layer_of(layer) == layer);
    CHECK(family.position_of(layer) == layer);
  }
  CHECK(family.role(0) == LayerRole::FixedFull);
  CHECK(family.role(1) == LayerRole::Searchable);
  CHECK(family.full_pattern().text() == "FFFFFF");
  CHECK(family.indexer_count() == 6);
  // Layer 0 and pinned layers are never candidates.
  CHECK(family.candidates(family.full_pattern(), {3}) == std::vector<int64_t>{1, 2, 4, 5});
  // The MTP layer is listed, never a position.
  REQUIRE(family.excluded_layers().size() == 1);
  CHECK(family.excluded_layers()[0].layer == 6);
  CHECK(family.excluded_layers()[0].role == kNextNRole);
  CHECK(family.excluded_layers()[0].reason.find("MTP") != std::string::npos);
  // The same through the deepseek_v32 definition: transformers reads no pattern there.
  nlohmann::json dsv32 = read_json_file(golden_dir("dsv32_default") + "/config.json");
  const ModelFamily v32 = ModelFamily::describe(parse_model_config(dsv32.dump(), "config.json"));
  CHECK(v32.definition().model_type == std::string("deepseek_v32"));
  CHECK_FALSE(v32.definition().transformers_reads_pattern);
  CHECK(v32.excluded_layers().size() == 1);  // its num_nextn_predict_layers: 1
}

TEST_CASE("family glm_moe_dsa with declared sharing and missing indexers: fixed S layers", "[family]") {
  const ModelConfig config = glm_config([](nlohmann::json& c) { c["indexer_types"] = types_of("FFFSFF"); });
  // Layer 3 declared shared (no tensors), layer 5 not declared but without indexer tensors.
  const ModelFamily family = ModelFamily::describe(config, [](int64_t layer) { return layer != 3 && layer != 5; });
  CHECK(family.role(3) == LayerRole::FixedShared);
  CHECK(family.role(5) == LayerRole::FixedShared);
  CHECK_FALSE(family.has_indexer_weights(3));
  CHECK(family.full_pattern().text() == "FFFSFS");
  CHECK(family.indexer_count() == 4);
  CHECK(family.candidates(family.full_pattern()) == std::vector<int64_t>{1, 2, 4});
  REQUIRE(family.excluded_layers().size() == 2);
  CHECK(family.excluded_layers()[0].reason.find("declared shared by config.json indexer_types") != std::string::npos);
  CHECK(family.excluded_layers()[1].reason.find("no indexer tensors") != std::string::npos);
  // Of the indexer layers 0, 1, 2, 4: the 0th and the round(1 * 4 / 2) = 2nd.
  CHECK(family.evenly_spaced(2).text() == "FSFSSS");

  CHECK(family.parse_pattern("FSFSSS", "--eval").text() == "FSFSSS");
  const std::string message = error_of([&] { family.parse_pattern("FFFFSS", "--eval"); });
  CHECK(message.find("--eval") != std::string::npos);
  CHECK(message.find("asks F at layer 3") != std::string::npos);
  CHECK(message.find("declared shared") != std::string::npos);
  CHECK(error_of([&] { family.parse_pattern("FSSSSF", "--eval"); }).find("layer 5") != std::string::npos);

  // A pipeline stage cannot start on a fixed-S layer; elsewhere it pins its first layer.
  CHECK(family.stage_start_positions({0, 2}) == std::vector<int64_t>{0, 2});
  CHECK(error_of([&] { family.stage_start_positions({0, 3}); }).find("fixed S") != std::string::npos);

  // The forward's view, in decoder layers.
  const LayerPattern pattern = family.parse_pattern("FSFSSS", "t");
  CHECK(family.runs_indexer(pattern, 2));
  CHECK_FALSE(family.runs_indexer(pattern, 3));
  CHECK(family.last_full_layer(pattern, 5) == 2);
  CHECK(family.last_full_layer(pattern, 1) == 0);

  // The first indexer layer must have its indexer.
  CHECK(error_of([&] { ModelFamily::describe(config, [](int64_t layer) { return layer != 0; }); })
            .find("first indexer layer") != std::string::npos);
}

TEST_CASE("family deepseek_v4: one pattern character per CSA layer", "[family]") {
  // A V4 layer schedule on a parsed config: what a V4 reader fills in (ModelConfig::attention_kinds).
  ModelConfig config = glm_config([](nlohmann::json& c) { c["num_nextn_predict_layers"] = 1; });
  config.model_type_name = "deepseek_v4";
  config.model_type = ModelType::DeepseekV4;
  config.attention_kinds = {AttentionKind::Sliding,           AttentionKind::CompressedSparse,
                            AttentionKind::HeavilyCompressed, AttentionKind::CompressedSparse,
                            AttentionKind::Sliding,           AttentionKind::CompressedSparse};
  const ModelFamily family = ModelFamily::describe(config);
  CHECK(family.definition().display_name == std::string("DeepSeek-V4"));
  REQUIRE(family.positions() == 3);
  CHECK(family.layer_of(0) == 1);
  CHECK(family.layer_of(1) == 3);
  CHECK(family.layer_of(2) == 5);
  CHECK(family.position_of(0) == -1);
  CHECK(family.position_of(2) == -1);
  CHECK(family.position_of(3) == 1);
  CHECK(family.role(1) == LayerRole::FixedFull);  // the first CSA layer: vLLM's pattern starts with F
  CHECK(family.role(0) == LayerRole::NoIndexer);
  CHECK(family.full_pattern().text() == "FFF");
  CHECK(family.candidates(family.full_pattern()) == std::vector<int64_t>{1, 2});

  // Sliding / HCA layers never run an indexer; an S CSA layer reuses the nearest F CSA layer.
  const LayerPattern pattern = family.parse_pattern("FSF", "--eval");
  std::vector<bool> runs;
  for (int64_t layer = 0; layer < 6; ++layer) runs.push_back(family.runs_indexer(pattern, layer));
  CHECK(runs == std::vector<bool>{false, true, false, false, false, true});
  CHECK(family.last_full_layer(pattern, 3) == 1);
  CHECK(family.last_full_layer(pattern, 0) == -1);

  // The pattern counts CSA layers, and says so.
  const std::string message = error_of([&] { family.parse_pattern("FSFSFS", "--eval"); });
  CHECK(message.find("3 CSA layers") != std::string::npos);
  CHECK(error_of([&] { family.parse_pattern("SFF", "--eval"); }).find("starts with S") != std::string::npos);

  // Sliding and HCA layers and the MTP layer are listed as not searched.
  std::vector<std::pair<int64_t, std::string>> excluded;
  for (const ExcludedLayer& layer : family.excluded_layers()) excluded.emplace_back(layer.layer, layer.role);
  CHECK(excluded == std::vector<std::pair<int64_t, std::string>>{
                        {0, kNoIndexerRole}, {2, kNoIndexerRole}, {4, kNoIndexerRole}, {6, kNextNRole}});
  CHECK(family.excluded_layers()[1].reason.find("heavily_compressed_attention") != std::string::npos);

  // A stage starting at layer 2 (HCA) pins the first CSA layer after it, layer 3 (position 1).
  CHECK(family.stage_start_positions({0, 2}) == std::vector<int64_t>{0, 1});
  // V4 does not take GLM's declared sharing.
  config.declared_shared = {false, true, false, true, false, true};
  CHECK(ModelFamily::describe(config).full_pattern().text() == "FFF");
}

TEST_CASE("families: every known family has its names, and an unknown model_type is refused", "[family]") {
  std::set<std::string> types;
  for (const FamilyDefinition* family : known_families()) {
    types.insert(family->model_type);
    CHECK(std::string(family->display_name).size() > 0);
    CHECK(std::string(family->vllm_class).find("ForCausalLM") != std::string::npos);
  }
  CHECK(types == std::set<std::string>{"deepseek_v32", "glm_moe_dsa", "deepseek_v4"});
  ModelConfig config = glm_config();
  config.model_type_name = "llama";
  CHECK(error_of([&] { family_definition(config); }).find("deepseek_v32, glm_moe_dsa, deepseek_v4") !=
        std::string::npos);
}
