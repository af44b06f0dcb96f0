// A layer plan checked against itself when it is read (lib/plan/layer_plan.h, read_plan and
// check_plan_consistency): every field the search derives from the pattern or from its own
// settings is derived again, and a plan whose fields contradict each other is refused naming the
// field. Also: the fields added for portable plans (model.hub, config_fields_sha256) and the path
// rules. No libtorch, no model: the plans are built in code.
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "catch_shim.h"
#include "file_system.h"
#include "input_error.h"
#include "layer_plan.h"
#include "plan_fingerprint.h"
#include "sha256.h"

using namespace indexcache;
using indexcache::test_support::input_error_message;

namespace {

// A greedy search on 6 layers keeping 2, as the search records it: layers 3, 1, 2, 4 turned S.
LayerPlan consistent_plan() {
  LayerPlan plan;
  plan.model_type = "deepseek_v32";
  plan.architectures = {"DeepseekV32ForCausalLM"};
  plan.num_hidden_layers = 6;
  plan.index_topk = 12;
  plan.model_path = "model";
  plan.config_sha256 = std::string(64, 'a');
  plan.config_fields_sha256 = std::string(64, 'b');
  plan.indexer_tensors = {TensorFingerprint{"model.layers.0.self_attn.indexer.wk.weight", "F32", {32, 64}, std::string(64, 'd')}};
  plan.data_specs = {"data.jsonl"};
  plan.seq_len = 0;
  plan.seed = 0;
  plan.sources = {DataSource{"data.jsonl", "data.jsonl", "data", 1.0, std::string(64, 'c'), 4, 300, 4}};
  plan.sequences = 4;
  plan.tokens = 300;
  plan.target_kept = 2;
  plan.stop_rule = "target-kept";
  plan.dtype = "fp32";
  plan.baseline_loss = 6.8;
  LayerPattern pattern = LayerPattern::all_full(6);
  const int64_t removed[] = {3, 1, 2, 4};
  const double losses[] = {6.81, 6.82, 6.83, 6.84};
  for (int i = 0; i < 4; ++i) {
    pattern = pattern.with_shared(removed[i]);
    plan.trajectory.push_back(SearchStep{removed[i], losses[i], pattern, {}});
  }
  plan.pattern = pattern;  // FSSSSF
  plan.final_loss = losses[3];
  plan.uniform = {{"index_topk_freq=5", LayerPattern::from_frequency(6, 5), 6.9},
                  {"evenly-spaced", LayerPattern::evenly_spaced(6, 2), 6.95}};
  plan.tool_version = "test";
  plan.created = "2026-01-01T00:00:00Z";
  plan.device = "cpu";
  return plan;
}

struct PlanFile {
  std::string directory = make_temporary_directory("indexcache-plan-test-");
  std::string path = directory + "/plan.yaml";
  ~PlanFile() { remove_tree(directory); }
  void write(const std::string& text) const { std::ofstream(path, std::ios::binary) << text; }
};

// The error read_plan gives for `text` ("" when it reads).
std::string read_error(const std::string& text) {
  PlanFile file;
  file.write(text);
  return input_error_message([&] { read_plan(file.path); }).value_or("");
}

// The plan text with the first `from` replaced by `to` (which must be there).
std::string edited(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

std::string text_of(const LayerPlan& plan) { return plan_to_yaml(plan); }

}  // namespace

TEST_CASE("a consistent plan reads back byte for byte, with and without a hub id", "[plan][consistency]") {
  LayerPlan plan = consistent_plan();
  CHECK(read_error(text_of(plan)).empty());
  PlanFile file;
  file.write(text_of(plan));
  CHECK(plan_to_yaml(read_plan(file.path)) == text_of(plan));

  plan.model_path = "acme/tiny@v1";
  plan.model_hub = ModelHub{"acme/tiny", "v1", std::string(40, 'e')};
  file.write(text_of(plan));
  const LayerPlan hub = read_plan(file.path);
  REQUIRE(hub.model_hub);
  CHECK(hub.model_hub->id == "acme/tiny");
  CHECK(hub.model_hub->revision == "v1");
  CHECK(hub.model_hub->commit == std::string(40, 'e'));
  CHECK(hub.config_fields_sha256 == std::string(64, 'b'));
  CHECK(plan_to_yaml(hub) == text_of(plan));
}

TEST_CASE("a plan written before model.hub and config_fields_sha256 still reads", "[plan][consistency]") {
  std::string text = text_of(consistent_plan());
  text = edited(text, "  hub: null\n", "");
  text = edited(text, "  config_fields_sha256: \"" + std::string(64, 'b') + "\"\n", "");
  PlanFile file;
  file.write(text);
  const LayerPlan plan = read_plan(file.path);
  CHECK_FALSE(plan.model_hub);
  CHECK(plan.config_fields_sha256.empty());
}

TEST_CASE("serving strings that say another pattern are refused", "[plan][consistency]") {
  const std::string text = text_of(consistent_plan());
  // The strings a user pastes into the server: each one edited to another pattern.
  const std::string vllm = read_error(edited(text, "\"index_topk_pattern\\\": \\\"FSSSSF\\\"}\"",
                                             "\"index_topk_pattern\\\": \\\"FFFFFF\\\"}\""));
  CHECK(vllm.find("plan.yaml: serving.vllm_hf_overrides: does not match the plan's pattern FSSSSF") != std::string::npos);
  const std::string sglang =
      read_error(edited(text, "sglang_json_model_override_args: \"{\\\"index_topk_pattern\\\": \\\"FSSSSF",
                        "sglang_json_model_override_args: \"{\\\"index_topk_pattern\\\": \\\"FSFSSF"));
  CHECK(sglang.find("serving.sglang_json_model_override_args: does not match") != std::string::npos);
  const std::string transformers = read_error(edited(text, "transformers_config: \"", "transformers_config: \"x"));
  CHECK(transformers.find("serving.transformers_config: does not match") != std::string::npos);
}

TEST_CASE("full_layers, kept and total must match the pattern", "[plan][consistency]") {
  const std::string text = text_of(consistent_plan());
  CHECK(read_error(edited(text, "full_layers: [0, 5]", "full_layers: [0, 4]")).find("full_layers") != std::string::npos);
  CHECK(read_error(edited(text, "kept: 2", "kept: 3")).find("kept") != std::string::npos);
  CHECK(read_error(edited(text, "total: 6", "total: 7")).find("total") != std::string::npos);
}

TEST_CASE("the pattern, full_layers, kept and serving edited together still contradict the trajectory", "[plan][consistency]") {
  LayerPlan plan = consistent_plan();
  const std::string honest = text_of(plan);
  plan.pattern = LayerPattern::parse("FFSSSS", 6, "test");  // every pattern-derived field follows
  std::string text = text_of(plan);
  CHECK(read_error(text).find("plan.yaml: search.trajectory: ends in FSSSSF, not in the plan's pattern FFSSSS") !=
        std::string::npos);
  CHECK(read_error(honest).empty());
}

TEST_CASE("an edited trajectory step is refused naming the step", "[plan][consistency]") {
  const std::string text = text_of(consistent_plan());
  // Step 2 says it removed layer 5, but its pattern is the one removing layer 1.
  const std::string removed = read_error(edited(text, "step: 2\n      removed: 1", "step: 2\n      removed: 5"));
  CHECK(removed.find("search.trajectory[1].pattern: is FSFSFF, but turning layer 5 of FFFSFF S gives FFFSFS") !=
        std::string::npos);
  // A step that removes an S layer again, or layer 0.
  LayerPlan plan = consistent_plan();
  plan.trajectory[2].removed = 3;
  CHECK(read_error(text_of(plan)).find("search.trajectory[2].removed: layer 3 is not one the search could turn S") !=
        std::string::npos);
  // An edited pattern inside the trajectory.
  const std::string pattern = read_error(edited(text, "pattern: \"FFFSFF\"", "pattern: \"FFSFFF\""));
  CHECK(pattern.find("search.trajectory[0].pattern") != std::string::npos);
}

TEST_CASE("final_loss and relative_increase must follow from the trajectory", "[plan][consistency]") {
  const std::string text = text_of(consistent_plan());
  const std::string final_loss = read_error(edited(text, "final_loss: 6.84", "final_loss: 0.1"));
  CHECK(final_loss.find("search.final_loss: is 0.1, but the trajectory ends at 6.84") != std::string::npos);
  const std::string increase = read_error(edited(text, "relative_increase: ", "relative_increase: 0.5 #"));
  CHECK(increase.find("search.relative_increase: is 0.5") != std::string::npos);
  // No trajectory: final_loss is the baseline.
  LayerPlan all_full = consistent_plan();
  all_full.trajectory.clear();
  all_full.pattern = LayerPattern::all_full(6);
  all_full.target_kept = 6;
  all_full.uniform.clear();
  all_full.final_loss = 6.9;
  CHECK(read_error(text_of(all_full)).find("search.final_loss: is 6.9, but the trajectory ends at 6.8 (baseline_loss)") !=
        std::string::npos);
}

TEST_CASE("the stop rule must hold for the plan's pattern and settings", "[plan][consistency]") {
  const std::string text = text_of(consistent_plan());
  CHECK(read_error(edited(text, "target_kept: 2", "target_kept: 3"))
            .find("search.stop_rule: is target-kept, but the pattern keeps 2 indexers, not target_kept 3") != std::string::npos);
  CHECK(read_error(edited(text, "stop_rule: \"target-kept\"", "stop_rule: \"no-candidates\""))
            .find("search.stop_rule: is no-candidates, but the pattern already keeps target_kept 2") != std::string::npos);
  CHECK(read_error(edited(text, "stop_rule: \"target-kept\"", "stop_rule: \"tired\"")).find("search.stop_rule") !=
        std::string::npos);

  SECTION("max-loss-increase: the step not taken is recorded and exceeds the limit") {
    LayerPlan plan = consistent_plan();
    plan.trajectory.pop_back();  // stopped before removing layer 4: FSSSFF, 3 kept
    plan.pattern = plan.trajectory.back().pattern;
    plan.final_loss = plan.trajectory.back().loss;
    plan.uniform.clear();
    plan.max_loss_increase = 0.0045;  // limit 6.8306
    plan.stop_rule = "max-loss-increase";
    plan.stopped_at = SearchStep{4, 6.84, plan.pattern.with_shared(4), {}};
    CHECK(read_error(text_of(plan)).empty());
    LayerPlan within = plan;
    within.stopped_at->loss = 6.8301;
    CHECK(read_error(text_of(within)).find("search.stopped_at.loss: is within baseline_loss x (1 + max_loss_increase)") !=
          std::string::npos);
    LayerPlan wrong_step = plan;
    wrong_step.stopped_at->pattern = plan.pattern.with_shared(5);
    CHECK(read_error(text_of(wrong_step)).find("search.stopped_at.pattern") != std::string::npos);
    LayerPlan missing = plan;
    missing.stopped_at.reset();
    CHECK(read_error(text_of(missing)).find("search.stopped_at: is null") != std::string::npos);
    LayerPlan taken_beyond = plan;
    taken_beyond.max_loss_increase = 0.002;  // limit 6.8136: step 2 (6.82) would not have been taken
    CHECK(read_error(text_of(taken_beyond)).find("search.trajectory[1].loss: exceeds") != std::string::npos);
  }
  SECTION("no-candidates: the search pins no more layers than it keeps, so F layers were left to try") {
    LayerPlan plan = consistent_plan();
    plan.stop_rule = "no-candidates";
    plan.target_kept = 1;
    plan.uniform.clear();
    CHECK(read_error(text_of(plan)).find("search.stop_rule: is no-candidates, but layer 5 is F and not pinned") !=
          std::string::npos);
    plan.pp_stages = {0, 5};
    CHECK(read_error(text_of(plan)).find("search.pp_stages: pins 2 layers as F, more than the 1 to keep") !=
          std::string::npos);
  }
}

TEST_CASE("target_kept, pipeline stages and uniform patterns follow from the settings", "[plan][consistency]") {
  LayerPlan plan = consistent_plan();
  plan.keep_fraction = 0.25;  // round(0.25 x 6) = 2 (1.5 rounds up)
  CHECK(read_error(text_of(plan)).empty());
  plan.keep_fraction = 0.5;
  CHECK(read_error(text_of(plan)).find("search.target_kept: is 2, but keep_fraction 0.5 of 6 indexers gives 3") !=
        std::string::npos);
  CHECK(kept_for_fraction(0.25, 6) == 2);
  CHECK(kept_for_fraction(0.01, 6) == 1);

  plan = consistent_plan();
  plan.pp_stages = {0, 3};  // layer 3 is S
  CHECK(read_error(text_of(plan)).find("search.pp_stages: do not fit the pattern: stage 1 starts at layer 3") !=
        std::string::npos);

  const std::string text = text_of(consistent_plan());
  CHECK(read_error(edited(text, "pattern: \"FFSSSS\"", "pattern: \"FSFSSS\"")).find("search.uniform[0].pattern") !=
        std::string::npos);
  CHECK(read_error(edited(text, "name: \"index_topk_freq=5\"", "name: \"index_topk_freq=2\"")).find("search.uniform[0]") !=
        std::string::npos);
  CHECK(read_error(edited(text, "name: \"evenly-spaced\"", "name: \"random\"")).find("search.uniform[1].name") !=
        std::string::npos);
}

TEST_CASE("calibration totals are the sums over the sources", "[plan][consistency]") {
  const std::string text = text_of(consistent_plan());
  CHECK(read_error(edited(text, "sequences: 4\n  tokens", "sequences: 5\n  tokens"))
            .find("calibration.sequences: is 5, but the sources add up to 4") != std::string::npos);
  CHECK(read_error(edited(text, "tokens: 300\n  sources", "tokens: 301\n  sources"))
            .find("calibration.tokens: is 301, but the sources add up to 300") != std::string::npos);
}

TEST_CASE("config fields hash ignores only the pattern fields", "[plan][consistency]") {
  const std::string original = R"({"model_type": "deepseek_v32", "num_hidden_layers": 6, "index_topk_freq": 2})";
  const std::string exported =
      "{\n  \"num_hidden_layers\": 6,\n  \"model_type\": \"deepseek_v32\",\n  \"index_topk_pattern\": \"FSSSSF\",\n"
      "  \"indexer_types\": [\"full\"],\n  \"use_index_cache\": true\n}\n";
  const std::string edited_config = R"({"model_type": "deepseek_v32", "num_hidden_layers": 7})";
  CHECK(config_fields_sha256(original, "a") == config_fields_sha256(exported, "b"));
  CHECK(config_fields_sha256(original, "a") != config_fields_sha256(edited_config, "c"));
  LayerPlan plan = consistent_plan();
  plan.config_sha256 = sha256_hex(original.data(), original.size());
  plan.config_fields_sha256 = config_fields_sha256(original, "a");
  CHECK(compare_config(plan, original, "a") == ConfigMatch::SameBytes);
  CHECK(compare_config(plan, exported, "b") == ConfigMatch::SameFieldsButPattern);
  CHECK(compare_config(plan, edited_config, "c") == ConfigMatch::Different);
  plan.config_fields_sha256.clear();  // an older plan: bytes only
  CHECK(compare_config(plan, exported, "b") == ConfigMatch::Different);
  CHECK(input_error_message([] { config_fields_sha256("[1]", "cfg.json"); }).value_or("").find("cfg.json") !=
        std::string::npos);
}

TEST_CASE("paths are recorded relative to the plan's folder when below it", "[plan][paths]") {
  CHECK(path_for_plan("/runs/a/model", "/runs/a/plan.yaml") == "model");
  CHECK(path_for_plan("/runs/a/data/x.jsonl", "/runs/a/plans/../plan.yaml") == "data/x.jsonl");
  CHECK(path_for_plan("/runs/a", "/runs/a/plan.yaml") == ".");
  CHECK(path_for_plan("/models/m", "/runs/a/plan.yaml") == "/models/m");  // outside: as given
  CHECK(path_for_plan("/runs/ab/m", "/runs/a/plan.yaml") == "/runs/ab/m");  // a sibling sharing a prefix
  // Relative paths are relative to the working directory: below the plan's folder they become
  // relative to it, outside they become absolute (a plan's relative paths are read against its folder).
  char buffer[4096];
  const std::string cwd = ::getcwd(buffer, sizeof buffer);
  CHECK(path_for_plan("sub/model", "plan.yaml") == "sub/model");
  CHECK(path_for_plan("./sub/model", "out/plan.yaml") == cwd + "/sub/model");
  CHECK(path_for_plan("out/data.jsonl", "out/plan.yaml") == "data.jsonl");

  CHECK(path_from_plan("model", "/runs/a/plan.yaml") == "/runs/a/model");
  CHECK(path_from_plan("/models/m", "/runs/a/plan.yaml") == "/models/m");
  CHECK(path_from_plan("data.jsonl", "plan.yaml") == "./data.jsonl");
  CHECK(is_bundled_set_name("code"));
  CHECK_FALSE(is_bundled_set_name("code.jsonl"));
  CHECK_FALSE(is_bundled_set_name("a/b"));

  LayerPlan plan = consistent_plan();
  plan.model_path = "/runs/a/model";
  plan.data_specs = {"code", "/runs/a/d/x.jsonl", "/elsewhere/y.txt"};
  plan.sources[0].spec = "/runs/a/d/x.jsonl";
  plan.sources[0].path = "/runs/a/d/x.jsonl";
  plan.sources.push_back(plan.sources[0]);  // a mix entry: its spec is relative to the mix file
  plan.sources[1].spec = "../d/x.jsonl";
  record_paths_relative_to(plan, "/runs/a/plan.yaml");
  CHECK(plan.sources[0].spec == "d/x.jsonl");
  CHECK(plan.sources[1].spec == "../d/x.jsonl");
  CHECK(plan.sources[1].path == "d/x.jsonl");
  CHECK(plan.model_path == "model");
  CHECK(plan.data_specs == std::vector<std::string>{"code", "d/x.jsonl", "/elsewhere/y.txt"});
  CHECK(plan.sources[0].path == "d/x.jsonl");
  plan.model_path = "acme/tiny";  // a hub id stays as it is
  plan.model_hub = ModelHub{"acme/tiny", "main", std::string(40, 'f')};
  record_paths_relative_to(plan, "/runs/acme/plan.yaml");
  CHECK(plan.model_path == "acme/tiny");
}
