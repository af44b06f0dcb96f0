// Issue 16 item 3: --validate and --check check a plan against itself (every field derived from
// the pattern or the search), config_sha256 against the model's config.json when a model is
// given, and --check reports a loss that moved beyond the tolerance as drift with both numbers.
// Through the real tools, on a plan a real search wrote.
#include <cstdio>

#include "calibrate_run.h"
#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "layer_plan.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// A 6-layer golden model, its data and the plan of a --keep-layers 2 search (FSSSSF) beside them.
struct SearchedPlan {
  TempDir temp;
  std::string model = temp.file("model");
  std::string data = temp.file("data.jsonl");
  std::string plan = temp.file("p.yaml");
  std::string text;
  SearchedPlan() {
    copy_tree(golden_dir("dsv32_default"), model);
    write_text(data, read_text(golden_dir("dsv32_default") + "/data.jsonl"));
    const ToolResult search = run_tool("indexcache-calibrate", {"--model", model, "--data", data, "--keep-layers", "2",
                                                                "--out", plan, "--no-report"});
    INFO(search.err);
    REQUIRE(search.status == 0);
    text = read_text(plan);
  }
  // Writes `contents` as tampered.yaml and returns its path.
  std::string tampered(const std::string& contents) const {
    write_text(temp.file("tampered.yaml"), contents);
    return temp.file("tampered.yaml");
  }
  std::string edited(const std::string& from, const std::string& to) const {
    std::string copy = text;
    const std::size_t at = copy.find(from);
    REQUIRE(at != std::string::npos);
    return tampered(copy.replace(at, from.size(), to));
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// --validate and --check of `plan` both exit 2 with one line naming the plan file and `field`.
void both_refuse(const std::string& plan, const std::string& field) {
  for (const std::vector<std::string>& arguments :
       std::vector<std::vector<std::string>>{{"--validate", plan}, {"--check", plan}}) {
    const ToolResult result = run_tool("indexcache-calibrate", arguments);
    INFO(arguments[0] << " " << field << ": " << result.out << result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(contains(result.err, "error: " + plan + ": " + field));
  }
}

}  // namespace

TEST_CASE("plan consistency: --validate and --check refuse fields that contradict the pattern", "[plan][consistency]") {
  SearchedPlan searched;
  REQUIRE(contains(searched.text, "pattern: \"FSSSSF\""));
  REQUIRE(run_tool("indexcache-calibrate", {"--validate", searched.plan}).status == 0);

  // The serving strings users paste into their servers.
  both_refuse(searched.edited("\\\"index_topk_pattern\\\": \\\"FSSSSF\\\"}", "\\\"index_topk_pattern\\\": \\\"FFFFFF\\\"}"),
              "serving.vllm_hf_overrides: does not match the plan's pattern FSSSSF");
  both_refuse(searched.edited("shared\\\", \\\"full\\\"]}", "shared\\\", \\\"shared\\\"]}"),
              "serving.sglang_json_model_override_args: does not match");
  both_refuse(searched.edited("full_layers: [0, 5]", "full_layers: [0, 4]"), "full_layers");
  both_refuse(searched.edited("kept: 2", "kept: 3"), "kept");

  LayerPlan plan = read_plan(searched.plan);
  SECTION("the pattern and everything written from it changed, the trajectory not") {
    LayerPlan edited = plan;
    edited.pattern = LayerPattern::parse("FFSSSS", 6, "test");
    both_refuse(searched.tampered(plan_to_yaml(edited)), "search.trajectory: ends in FSSSSF, not in the plan's pattern FFSSSS");
  }
  SECTION("a trajectory step edited") {
    LayerPlan edited = plan;
    edited.trajectory[1].removed = edited.trajectory[0].removed;  // removes an S layer again
    both_refuse(searched.tampered(plan_to_yaml(edited)), "search.trajectory[1].removed");
  }
  SECTION("final_loss of 0.1 alone") {
    both_refuse(searched.edited("final_loss: ", "final_loss: 0.1 #"), "search.final_loss: is 0.1, but the trajectory ends at");
  }
  SECTION("the stop rule") {
    both_refuse(searched.edited("stop_rule: \"target-kept\"", "stop_rule: \"max-loss-increase\""), "search.stop_rule");
    both_refuse(searched.edited("target_kept: 2", "target_kept: 1"), "search.stop_rule: is target-kept, but the pattern keeps 2");
  }
}

TEST_CASE("plan consistency: config_sha256 is compared with the model's config.json", "[plan][consistency]") {
  SearchedPlan searched;
  const std::string config = searched.model + "/config.json";
  const std::string original = read_text(config);
  REQUIRE(run_tool("indexcache-calibrate", {"--validate", searched.plan, "--model", searched.model}).status == 0);

  SECTION("a config edited in another field: --validate exit 2, --check drift") {
    std::string edited = original;
    edited.insert(edited.find('{') + 1, "\n  \"edited_by\": \"someone\",");
    write_text(config, edited);
    const ToolResult validate = run_tool("indexcache-calibrate", {"--validate", searched.plan, "--model", searched.model});
    INFO(validate.err);
    CHECK(validate.status == 2);
    CHECK(validate.error_lines() == 1);
    CHECK(contains(validate.err, searched.plan + ": is for another model: model.config_sha256 is "));
    CHECK(contains(validate.err, "(the model's config.json changed)"));
    const ToolResult check = run_tool("indexcache-calibrate", {"--check", searched.plan});
    INFO(check.out << check.err);
    CHECK(check.status == 1);
    CHECK(contains(check.out, "drift: "));
    CHECK(contains(check.out, "  model.config_sha256 is "));
    CHECK_FALSE(contains(check.out, "regenerated: "));  // the pattern itself did not move
  }
  SECTION("a config written by --export hf-config still matches, with a note") {
    const ToolResult exported = run_tool("indexcache-calibrate", {"--plan", searched.plan, "--export", "hf-config",
                                                                  "--export-out", config});
    REQUIRE(exported.status == 0);
    REQUIRE(read_text(config) != original);
    const ToolResult validate = run_tool("indexcache-calibrate", {"--validate", searched.plan, "--model", searched.model});
    INFO(validate.out << validate.err);
    CHECK(validate.status == 0);
    CHECK(contains(validate.out, "note: " + config + " differs from the config.json the plan was made from only in its "
                                 "pattern fields"));
  }
}

TEST_CASE("plan consistency: --check reports a loss beyond the tolerance as drift with both numbers", "[plan][consistency]") {
  SearchedPlan searched;
  LayerPlan plan = read_plan(searched.plan);
  REQUIRE(plan.dtype == "fp32");
  CHECK(check_loss_tolerance("fp32") == Approx(1e-4));
  CHECK(check_loss_tolerance("bf16") == Approx(1e-3));

  SECTION("final_loss 0.1, with the trajectory edited to match") {
    LayerPlan edited = plan;
    edited.final_loss = 0.1;
    edited.trajectory.back().loss = 0.1;
    const ToolResult check = run_tool("indexcache-calibrate", {"--check", searched.tampered(plan_to_yaml(edited))});
    INFO(check.out << check.err);
    CHECK(check.status == 1);
    char expected[128];
    std::snprintf(expected, sizeof expected, "search.final_loss: 0.100000 in the plan, %.6f now", plan.final_loss);
    CHECK(contains(check.out, expected));
    CHECK(contains(check.out, "beyond the 1e-04 tolerance for fp32"));
  }
  SECTION("baseline_loss moved by 5e-5 (inside) and by 1e-3 (beyond)") {
    LayerPlan inside = plan;
    inside.baseline_loss *= 1.0 + 5e-5;
    const ToolResult same = run_tool("indexcache-calibrate", {"--check", searched.tampered(plan_to_yaml(inside))});
    INFO(same.out << same.err);
    CHECK(same.status == 0);
    CHECK(contains(same.out, "up to date"));
    LayerPlan beyond = plan;
    beyond.baseline_loss *= 1.0 + 1e-3;
    const ToolResult moved = run_tool("indexcache-calibrate", {"--check", searched.tampered(plan_to_yaml(beyond))});
    INFO(moved.out << moved.err);
    CHECK(moved.status == 1);
    CHECK(contains(moved.out, "search.baseline_loss: "));
    CHECK(contains(moved.out, "relative change 1.0e-03"));
  }
}
