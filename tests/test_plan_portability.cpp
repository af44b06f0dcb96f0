// Issue 16 item 9: portable plans. Paths below the plan file's folder are recorded relative to
// it (others as given, relative ones made absolute), so a plan and its model and data moved
// together still check; `--check --model DIR --data ...` replace what the plan recorded; data is
// matched by SHA-256, not by path.
#include <cstdio>

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

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string golden_data() { return read_text(golden_dir("dsv32_default") + "/data.jsonl"); }

// A run folder: `folder`/model, `folder`/data.jsonl and the plan `folder`/p.yaml of a search.
void search_in(const std::string& folder) {
  REQUIRE(make_directories(folder));
  REQUIRE(copy_tree(golden_dir("dsv32_default"), folder + "/model"));
  write_text(folder + "/data.jsonl", golden_data());
  const ToolResult search = run_tool("indexcache-calibrate", {"--model", folder + "/model", "--data", folder + "/data.jsonl",
                                                              "--keep-layers", "2", "--out", folder + "/p.yaml", "--no-report"});
  INFO(search.err);
  REQUIRE(search.status == 0);
}

}  // namespace

TEST_CASE("portable plan: paths below the plan's folder are relative, and the folder can move", "[plan][paths]") {
  TempDir temp;
  search_in(temp.file("run"));
  const std::string text = read_text(temp.file("run/p.yaml"));
  CHECK(contains(text, "  path: \"model\"\n"));
  CHECK(contains(text, "  data: [\"data.jsonl\"]\n"));
  CHECK(contains(text, "    path: \"data.jsonl\"\n"));  // the source's path
  CHECK_FALSE(contains(text, temp.path()));              // nothing of this machine's layout

  // The whole folder moved: --check finds the model and the data next to the plan.
  REQUIRE(copy_tree(temp.file("run"), temp.file("moved")));
  remove_tree(temp.file("run"));
  const ToolResult check = run_tool("indexcache-calibrate", {"--check", temp.file("moved/p.yaml")});
  INFO(check.out << check.err);
  CHECK(check.status == 0);
  CHECK(contains(check.out, "up to date"));
}

TEST_CASE("portable plan: paths outside the plan's folder are recorded as given, relative ones made absolute", "[plan][paths]") {
  TempDir temp;
  REQUIRE(copy_tree(golden_dir("dsv32_default"), temp.file("model")));
  write_text(temp.file("data.jsonl"), golden_data());
  REQUIRE(make_directories(temp.file("plans")));
  // Given relative to the working directory, outside plans/: recorded absolute.
  const ToolResult search = run_tool("indexcache-calibrate",
                                     {"--model", "model", "--data", "./data.jsonl", "--keep-layers", "2", "--out",
                                      "plans/p.yaml", "--no-report"},
                                     "cd " + shell_quote(temp.path()) + " &&");
  INFO(search.err);
  REQUIRE(search.status == 0);
  const LayerPlan plan = read_plan(temp.file("plans/p.yaml"));
  CHECK(plan.model_path.front() == '/');
  CHECK(plan.model_path.size() > 6);
  CHECK(plan.model_path.compare(plan.model_path.size() - 6, 6, "/model") == 0);
  REQUIRE(plan.data_specs.size() == 1);
  CHECK(plan.data_specs[0].compare(plan.data_specs[0].size() - 11, 11, "/data.jsonl") == 0);
  CHECK(is_directory(plan.model_path));
  CHECK(run_tool("indexcache-calibrate", {"--check", temp.file("plans/p.yaml")}).status == 0);
}

TEST_CASE("portable plan: --check --model/--data replace the plan's, and data is matched by SHA-256", "[plan][paths]") {
  TempDir temp;
  search_in(temp.file("a"));
  const std::string plan = temp.file("a/p.yaml");
  // Model and data moved away from where the plan says, the data renamed.
  REQUIRE(copy_tree(temp.file("a/model"), temp.file("b/elsewhere-model")));
  write_text(temp.file("b/renamed.jsonl"), golden_data());
  remove_tree(temp.file("a/model"));
  std::remove(temp.file("a/data.jsonl").c_str());

  const ToolResult no_model = run_tool("indexcache-calibrate", {"--check", plan});
  CHECK(no_model.status == 2);
  CHECK(no_model.error_lines() == 1);
  CHECK(contains(no_model.err, plan + ": model.path: " + temp.file("a/model") + " not found (recorded as \"model\"); give --model"));

  const ToolResult no_data = run_tool("indexcache-calibrate", {"--check", plan, "--model", temp.file("b/elsewhere-model")});
  CHECK(no_data.status == 2);
  CHECK(contains(no_data.err, plan + ": calibration.data[0]: " + temp.file("a/data.jsonl") + " not found"));
  CHECK(contains(no_data.err, "matched by SHA-256, not by path"));

  const ToolResult same_bytes = run_tool("indexcache-calibrate", {"--check", plan, "--model", temp.file("b/elsewhere-model"),
                                                                  "--data", temp.file("b/renamed.jsonl")});
  INFO(same_bytes.out << same_bytes.err);
  CHECK(same_bytes.status == 0);
  CHECK(contains(same_bytes.out, "up to date"));

  // Other bytes at a path of the same name: drift naming the source and both hashes.
  const std::string text = golden_data();
  std::string fewer = text.substr(0, text.rfind('\n', text.size() - 2) + 1);  // the last record dropped
  write_text(temp.file("b/renamed.jsonl"), fewer);
  const ToolResult other_bytes = run_tool("indexcache-calibrate", {"--check", plan, "--model", temp.file("b/elsewhere-model"),
                                                                   "--data", temp.file("b/renamed.jsonl")});
  INFO(other_bytes.out << other_bytes.err);
  CHECK(other_bytes.status == 1);
  const LayerPlan recorded = read_plan(plan);
  CHECK(contains(other_bytes.out, "calibration.sources[0].sha256 is " + recorded.sources[0].sha256 + " in the plan"));
  CHECK(contains(other_bytes.out, "for " + temp.file("b/renamed.jsonl") + " (other data bytes)"));
}
