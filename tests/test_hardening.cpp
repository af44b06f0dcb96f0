// Issue 16, first items: counts of 0 or less are command-line errors in both tools, an empty
// --out is refused before any model work, and --check of a plan made for another model is bad
// input (exit 2 naming the field), not drift.
#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

TEST_CASE("counts of zero or less are refused, not read as the default", "[tools][bad-input]") {
  for (const char* tool : {"indexcache-calibrate", "indexcache-overlap"}) {
    for (const std::vector<std::string>& arguments :
         std::vector<std::vector<std::string>>{{"--seq-len", "0"}, {"--num-samples", "0"}, {"--num-samples", "-2"}}) {
      std::vector<std::string> call = arguments;
      if (std::string(tool) == "indexcache-calibrate") call.insert(call.end(), {"--eval", "FSFSFSFSFSFS"});
      ToolResult result = run_tool(tool, call);
      INFO(tool << " " << arguments[0] << " " << arguments[1] << ": " << result.err);
      CHECK(result.status == 2);
      CHECK(result.error_lines() == 1);
      CHECK(result.err.find(arguments[0]) != std::string::npos);
    }
  }
}

TEST_CASE("an empty --out is refused before the search starts", "[tools][bad-input]") {
  TempDir temp;
  ToolResult result = run_tool("indexcache-calibrate", {"--keep", "0.25", "--out", ""});
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(result.err.find("--out: is empty") != std::string::npos);
  CHECK_FALSE(path_exists(".journal"));
}

TEST_CASE("plan check (--check) against another model is exit 2 naming the field", "[tools][bad-input][plan]") {
  TempDir temp;
  const std::string model = temp.file("model");
  copy_tree(golden_dir("dsv32_default"), model);
  const std::string plan = temp.file("plan.yaml");
  ToolResult search = run_tool("indexcache-calibrate", {"--model", model, "--data", model + "/data.jsonl",
                                                        "--keep-layers", "2", "--out", plan, "--no-report", "--quiet"});
  REQUIRE(search.status == 0);
  // The plan now names the bundled 12-layer model instead of the 6-layer one it was made for.
  std::string text = read_text(plan);
  const std::string recorded = "path: \"model\"";  // below the plan's folder: recorded relative to it
  REQUIRE(text.find(recorded) != std::string::npos);
  text.replace(text.find(recorded), recorded.size(),
               "path: \"" + std::string(INDEXCACHE_SOURCE_DIR) + "/models/tiny-dsa\"");
  write_text(plan, text);
  ToolResult check = run_tool("indexcache-calibrate", {"--check", plan, "--quiet"});
  INFO(check.out << check.err);
  CHECK(check.status == 2);
  CHECK(check.error_lines() == 1);
  CHECK(check.err.find("is for another model: model.num_hidden_layers is 6 in the plan, 12 in") != std::string::npos);
}
