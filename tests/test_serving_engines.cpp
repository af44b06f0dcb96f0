// Exported plans as the serving engines read them: each engine's precedence between
// indexer_types, index_topk_pattern and index_topk_freq/offset (docs/SERVING.md; the rules
// themselves: tests/plan/test_serving_rules.cpp), applied to the config.json a user would serve,
// must give the plan's pattern for every export the tool writes.
#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "layer_plan.h"
#include "safetensors_writer.h"
#include "serving_engines.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;
using nlohmann::json;

namespace {

std::string reading(Engine engine, const json& config) {
  return engine_reading(engine, config, "glm_moe_dsa", 6, "config.json").pattern;
}

// A golden model copied into a temporary folder, its data, and a searched plan (3 of 6 kept).
struct ServedModel {
  TempDir temp;
  std::string model, data, plan_path;
  LayerPlan plan;
  explicit ServedModel(const std::string& name) {
    model = temp.file("model");
    copy_tree(golden_dir(name), model);
    data = model + "/data.jsonl";
    plan_path = temp.file("plan.yaml");
    ToolResult search = run_tool("indexcache-calibrate", {"--model", model, "--data", data, "--keep-layers", "3", "--out",
                                                          plan_path, "--no-report", "--quiet"});
    INFO(search.err);
    REQUIRE(search.status == 0);
    plan = read_plan(plan_path);
  }
  json config() const { return json::parse(read_text(model + "/config.json")); }
  void set_config(const json& config) const { write_text(model + "/config.json", config.dump(2)); }
  ToolResult run(std::vector<std::string> arguments) const { return run_tool("indexcache-calibrate", arguments); }
  ToolResult export_as(const std::string& format) const {
    return run({"--plan", plan_path, "--export", format, "--model", model});
  }
};

json merged(json config, const std::string& overrides) {
  config.update(json::parse(overrides));
  return config;
}

}  // namespace

TEST_CASE("every export makes every engine run the plan's pattern on a GLM config", "[serving]") {
  ServedModel glm("glm_dsa");
  const std::string pattern = glm.plan.pattern.text();
  REQUIRE(pattern != "FFFFFF");
  const json original = glm.config();

  // The configs users have: as saved by older tools, by transformers 5.x (indexer_types all
  // full), a GLM-5.2-like schedule (freq 2, offset 2 here: FFSFSF), and an earlier pattern.
  std::vector<std::pair<std::string, json>> variants;
  variants.push_back({"no pattern fields", original});
  json saved = original;
  saved["indexer_types"] = indexer_types_for("FFFFFF");
  variants.push_back({"indexer_types all full", saved});
  json schedule = original;
  schedule["index_topk_freq"] = 2;
  schedule["index_skip_topk_offset"] = 2;
  schedule["indexer_types"] = indexer_types_for(frequency_pattern(6, 2, 2));
  REQUIRE(frequency_pattern(6, 2, 2) != pattern);
  variants.push_back({"GLM-5.2 schedule", schedule});
  json earlier = saved;
  earlier["index_topk_pattern"] = "FSFSFS";
  variants.push_back({"an earlier pattern", earlier});

  for (const auto& [name, config] : variants) {
    INFO(name);
    glm.set_config(config);
    ToolResult hf = glm.export_as("hf-config");
    INFO(hf.err);
    REQUIRE(hf.status == 0);
    const json exported = json::parse(hf.out);
    const json vllm = merged(config, glm.export_as("vllm").out);
    const json sglang = merged(config, glm.export_as("sglang").out);
    for (Engine engine : kEngines) {
      INFO(engine_name(engine));
      CHECK(reading(engine, exported) == pattern);
    }
    CHECK(reading(Engine::Vllm, vllm) == pattern);
    CHECK(reading(Engine::Sglang, sglang) == pattern);
    CHECK(exported["use_index_cache"] == true);
    CHECK(exported["hidden_size"] == original["hidden_size"]);  // the rest of the config is kept
    CHECK_FALSE(exported.contains("index_topk_freq"));          // it said something else, or nothing
    if (name == "GLM-5.2 schedule") {
      CHECK(hf.err.find("note: removed index_topk_freq=2 and index_skip_topk_offset=2") != std::string::npos);
    }
    // What the export wrote before: the pattern alone, which a config's own indexer_types beats.
    const json pattern_only = merged(config, "{\"index_topk_pattern\": \"" + pattern + "\"}");
    if (config.contains("indexer_types")) CHECK(reading(Engine::Transformers, pattern_only) != pattern);
    if (config.contains("indexer_types")) CHECK(reading(Engine::Sglang, pattern_only) != pattern);
  }
}

TEST_CASE("a DeepSeek-V3.2 export says that transformers does not read the pattern", "[serving]") {
  ServedModel v32("dsv32_default");
  ToolResult hf = v32.export_as("hf-config");
  REQUIRE(hf.status == 0);
  CHECK(hf.err.find("note: transformers' deepseek_v32 model does not read index_topk_pattern or indexer_types") !=
        std::string::npos);
  CHECK(json::parse(hf.out)["index_topk_pattern"] == v32.plan.pattern.text());  // vLLM and SGLang still read it
  const std::string plan_text = read_text(v32.plan_path);
  CHECK(plan_text.find("transformers_config: \"not applied: transformers' deepseek_v32 model runs every indexer") !=
        std::string::npos);
  ToolResult validate = v32.run({"--validate", v32.plan_path, "--model", v32.model});
  CHECK(validate.status == 0);
  CHECK(validate.out.find("note: transformers: not applied") != std::string::npos);
}

TEST_CASE("validate warns (exit 1) when the model's config states another pattern", "[serving]") {
  ServedModel glm("glm_dsa");
  ToolResult clean = glm.run({"--validate", glm.plan_path, "--model", glm.model});
  INFO(clean.out);
  CHECK(clean.status == 0);  // no pattern fields: every engine takes the plan from its override
  CHECK(clean.out.find("warning") == std::string::npos);

  json saved = glm.config();
  saved["indexer_types"] = indexer_types_for("FFFFFF");
  glm.set_config(saved);
  ToolResult warned = glm.run({"--validate", glm.plan_path, "--model", glm.model});
  INFO(warned.out);
  CHECK(warned.status == 1);
  CHECK(warned.out.find("warning: " + glm.model + "/config.json states a pattern of its own") != std::string::npos);
  CHECK(warned.out.find("  transformers would run FFFFFF (from indexer_types)") != std::string::npos);
  CHECK(warned.out.find("  SGLang would run FFFFFF (from indexer_types)") != std::string::npos);
  CHECK(warned.out.find("  vLLM would run FFFFFF (it reads none of the fields this config gives") != std::string::npos);

  // The exported config states the plan in every form: nothing to warn about.
  ToolResult hf = glm.export_as("hf-config");
  REQUIRE(hf.status == 0);
  write_text(glm.model + "/config.json", hf.out);
  CHECK(glm.run({"--validate", glm.plan_path, "--model", glm.model}).status == 0);
}
