// Issue 16, item 8: messages that name the file and the field. A data mix that names itself or
// comes back to itself (A -> B -> A) says "mix cycle" with the files; a missing file inside a mix
// names the mix and the entry; values a plan records that no run could have written are blamed
// on the plan's field during --check, not on command-line flags. (The --resume message for a
// run killed before its first step is in tests/test_run_lock.cpp, with the other killed runs.)
#include <sstream>
#include <string>
#include <vector>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// --eval on the bundled 12-layer model with `data`: the data is read before any evaluation.
ToolResult evaluate_with(const std::string& data) {
  return run_tool("indexcache-calibrate", {"--data", data, "--eval", "FSFSFSFSFSFS"});
}

// `text` with the value of the first line "  <key>: ..." (a field of a plan section) replaced.
std::string with_field(const std::string& text, const std::string& key, const std::string& value) {
  std::istringstream lines(text);
  std::string line, result;
  bool replaced = false;
  while (std::getline(lines, line)) {
    if (!replaced && line.rfind("  " + key + ":", 0) == 0) {
      line = "  " + key + ": " + value;
      replaced = true;
    }
    result += line + "\n";
  }
  REQUIRE(replaced);
  return result;
}

}  // namespace

TEST_CASE("a mix that names itself, or A -> B -> A, says mix cycle with the files", "[tools][bad-input][data]") {
  TempDir temp;
  write_text(temp.file("data.jsonl"), "{\"input_ids\": [1, 2, 3, 4]}\n");
  const std::string self = temp.file("self.yaml");
  write_text(self, "sets:\n  - path: data.jsonl\n  - path: self.yaml\n");
  ToolResult result = evaluate_with(self);
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(contains(result.err, "error: " + self + ": sets[1].path: mix cycle: " + self + " -> " + self + "\n"));

  const std::string a = temp.file("a.yaml");
  const std::string b = temp.file("b.yaml");
  write_text(a, "sets:\n  - path: b.yaml\n");
  write_text(b, "sets:\n  - path: data.jsonl\n  - path: ./a.yaml\n");
  result = evaluate_with(a);
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(contains(result.err, "error: " + a + ": sets[0].path: mix cycle: " + a + " -> " + b + " -> " + a + "\n"));
  CHECK_FALSE(contains(result.err, "unsupported data file"));

  // A mix naming another mix without a cycle: mixes do not nest, and the message says so.
  write_text(b, "sets:\n  - path: data.jsonl\n");
  result = evaluate_with(a);
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(contains(result.err, "error: " + a + ": sets[0].path: " + b + " is a mix; a mix cannot include another mix"));
}

TEST_CASE("a missing file inside a mix names the mix and the entry", "[tools][bad-input][data]") {
  TempDir temp;
  write_text(temp.file("data.jsonl"), "{\"input_ids\": [1, 2, 3, 4]}\n");
  const std::string mix = temp.file("mix.yaml");
  write_text(mix, "sets:\n  - path: data.jsonl\n  - path: foo.jsonl\n");
  ToolResult result = evaluate_with(mix);
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(contains(result.err, "error: " + mix + ": sets[1].path: " + temp.file("foo.jsonl") + ": file not found\n"));

  write_text(mix, "sets:\n  - path: data.csv\n");
  result = evaluate_with(mix);
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(contains(result.err, "error: " + mix + ": sets[0].path: " + temp.file("data.csv") + ": unsupported data file"));
}

TEST_CASE("plan check (--check) blames bad recorded values on the plan's field, not on flags",
          "[tools][bad-input][plan]") {
  TempDir temp;
  const std::string model = temp.file("model");
  copy_tree(golden_dir("dsv32_default"), model);
  const std::string plan = temp.file("plan.yaml");
  const ToolResult search = run_tool("indexcache-calibrate", {"--model", model, "--data", model + "/data.jsonl",
                                                              "--keep-layers", "2", "--out", plan, "--no-report"});
  REQUIRE(search.status == 0);
  const std::string text = read_text(plan);
  struct Case {
    std::string key, value, message;
  };
  const std::vector<Case> cases = {
      {"num_samples", "-2", "calibration.num_samples: -2 is negative"},
      {"seq_len", "-5", "calibration.seq_len: -5 is negative"},
      {"seq_len", "1", "calibration.seq_len: 1 is less than 2"},
      {"dtype", "\"fp16\"", "search.dtype: \"fp16\" is not supported (use fp32 or bf16)"},
      {"indexer_precision", "\"int4\"", "search.indexer_precision: \"int4\" is not supported"},
      {"pp_stages", "[0, 99]", "search.pp_stages[1]: layer 99 is outside the 6 layers"},
      {"pp_stages", "[0, 3, 2]", "search.pp_stages[2]: stage starts must be ascending"},
      {"pp_stages", "[0, 2, 4]", "search.pp_stages: pins 3 layers as F, more than the 2 to keep"},
  };
  for (const Case& item : cases) {
    const std::string tampered = temp.file("tampered.yaml");
    write_text(tampered, with_field(text, item.key, item.value));
    const ToolResult check = run_tool("indexcache-calibrate", {"--check", tampered});
    INFO(item.key << ": " << item.value << ": " << check.err);
    CHECK(check.status == 2);
    CHECK(check.error_lines() == 1);
    CHECK(contains(check.err, "error: " + tampered + ": " + item.message));
  }
  // --keep and --keep-layers: the plan made with --keep-layers records target_kept and no fraction.
  const std::vector<Case> keep_cases = {
      {"target_kept", "9", "search.target_kept: 9 is outside [1, 6] for the plan's 6-layer model"},
      {"keep_fraction", "1.5", "search.keep_fraction: 1.500000 is outside (0, 1]"},
  };
  for (const Case& item : keep_cases) {
    const std::string tampered = temp.file("tampered.yaml");
    write_text(tampered, with_field(text, item.key, item.value));
    const ToolResult check = run_tool("indexcache-calibrate", {"--check", tampered});
    INFO(item.key << ": " << item.value << ": " << check.err);
    CHECK(check.status == 2);
    CHECK(check.error_lines() == 1);
    // A reader that checks the plan against itself (target_kept against the pattern, say) may
    // refuse the value first: either way the message names the plan and the field, not a flag.
    CHECK(contains(check.err, "error: " + tampered + ": "));
    CHECK(contains(check.err, "search." + item.key));
    CHECK_FALSE(contains(check.err, "--keep"));
  }
}
