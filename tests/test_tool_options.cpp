// The options table both tools share (lib/app/options.h): each shared option appears in both
// tools' --help with the very same help entry, and indexcache-overlap honours the session options
// it gained from the table (--devices, --offload, --attention) without changing its matrices.
#include <cmath>
#include <sstream>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "options.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

bool starts_option_entry(const std::string& line) {
  const std::size_t first = line.find_first_not_of(' ');
  return first != std::string::npos && line[first] == '-';
}

// The help entry of `option`: its line, plus the lines CLI11 continues it on (a description that
// does not fit after a long name starts on the next line).
std::string help_entry(const std::string& help, const std::string& option) {
  std::istringstream lines(help);
  std::string line, entry;
  bool inside = false;
  while (std::getline(lines, line)) {
    if (inside && (starts_option_entry(line) || line.find_first_not_of(' ') == std::string::npos)) break;
    const std::size_t first = line.find_first_not_of(' ');
    if (!inside && first != std::string::npos && line.compare(first, option.size(), option) == 0 &&
        (line.size() == first + option.size() || line[first + option.size()] == ' ')) {
      inside = true;
    }
    if (inside) entry += line + "\n";
  }
  return entry;
}

// Runs of whitespace as one space, so a check does not depend on where CLI11 breaks lines.
std::string single_spaced(const std::string& text) {
  std::string result;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n';
    if (space && (result.empty() || result.back() == ' ')) continue;
    result += space ? ' ' : c;
  }
  return result;
}

// CLI11 2.1 prints a default as "--option HINT=VALUE", CLI11 2.4 as "--option HINT [VALUE]".
bool shows_default(const std::string& entry, const std::string& value) {
  for (const std::string& shown : {"=" + value + " ", "=" + value + "\n", "[" + value + "]"}) {
    if (entry.find(shown) != std::string::npos) return true;
  }
  return false;
}

// The overlap's JSON for the golden dsv32_default checkpoint and data, with `extra` arguments.
nlohmann::json overlap_with(const TempDir& temp, const std::string& name, const std::vector<std::string>& extra) {
  const std::string json_path = temp.file(name + ".json");
  std::vector<std::string> arguments = {"--model", golden_dir("dsv32_default"), "--data",
                                        golden_dir("dsv32_default") + "/data.jsonl", "--json", json_path};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  ToolResult result = run_tool("indexcache-overlap", arguments);
  INFO(name << ": " << result.err);
  REQUIRE(result.status == 0);
  return read_json_file(json_path);
}

double largest_difference(const nlohmann::json& a, const nlohmann::json& b) {
  REQUIRE(a.size() == b.size());
  double largest = 0.0;
  for (std::size_t row = 0; row < a.size(); ++row) {
    REQUIRE(a[row].size() == b[row].size());
    for (std::size_t column = 0; column < a[row].size(); ++column) {
      largest = std::max(largest, std::abs(a[row][column].get<double>() - b[row][column].get<double>()));
    }
  }
  return largest;
}

}  // namespace

TEST_CASE("tool options: the table holds every option both tools share", "[tools][options]") {
  const std::vector<std::string> expected = {"--model",   "--data",    "--seq-len", "--num-samples",
                                             "--seed",    "--split",   "--device",  "--devices",
                                             "--offload", "--attention", "--dtype", "--indexer-precision",
                                             "--json",    "--quiet",   "--dist-timeout", "--dist-backend"};
  std::vector<std::string> names;
  for (const SharedOption& option : shared_options()) {
    names.push_back(option.name);
    // Only the distributed search's options belong to indexcache-calibrate alone.
    CHECK(option.tools == (option.name.rfind("--dist-", 0) == 0 ? kCalibrateTool : kEveryTool));
    CHECK(!option.help.empty());
  }
  CHECK(names == expected);
}

TEST_CASE("tool options: both tools' --help show every shared option with the identical help entry",
          "[tools][options]") {
  ToolResult calibrate = run_tool("indexcache-calibrate", {"--help"});
  ToolResult overlap = run_tool("indexcache-overlap", {"--help"});
  REQUIRE(calibrate.status == 0);
  REQUIRE(overlap.status == 0);
  for (const SharedOption& option : shared_options()) {
    const std::string entry = help_entry(calibrate.out, option.name);
    INFO(option.name << "\ncalibrate: " << entry << "overlap:   " << help_entry(overlap.out, option.name));
    REQUIRE(!entry.empty());
    CHECK(entry == (option.tools & kOverlapTool ? help_entry(overlap.out, option.name) : entry));
    if (!(option.tools & kOverlapTool)) CHECK(help_entry(overlap.out, option.name).empty());
    CHECK(single_spaced(entry).find(single_spaced(option.help)) != std::string::npos);
    if (!option.value_hint.empty()) CHECK(entry.find(option.name + " " + option.value_hint) != std::string::npos);
  }
  // Plain defaults come from SessionOptions itself.
  CHECK(shows_default(help_entry(overlap.out, "--seed"), "0"));
  CHECK(shows_default(help_entry(overlap.out, "--device"), "cpu"));
  CHECK(shows_default(help_entry(overlap.out, "--split"), "calibration"));
  CHECK(shows_default(help_entry(overlap.out, "--attention"), "auto"));
  CHECK(shows_default(help_entry(overlap.out, "--indexer-precision"), "model"));
  // The tools' own options stay their own.
  CHECK(help_entry(overlap.out, "--keep").empty());
  CHECK(help_entry(calibrate.out, "--query-stride").empty());
}

TEST_CASE("tool options: indexcache-overlap gives the same matrices with --offload and any --attention path",
          "[tools][options]") {
  TempDir temp;
  const nlohmann::json reference = overlap_with(temp, "reference", {});
  CHECK(reference.at("offload") == false);
  const nlohmann::json offload = overlap_with(temp, "offload", {"--offload"});
  CHECK(offload.at("offload") == true);
  // Streaming the weights changes where they come from, not the arithmetic.
  CHECK(largest_difference(reference.at("overlap"), offload.at("overlap")) == 0.0);
  CHECK(offload.at("baseline_loss").get<double>() == reference.at("baseline_loss").get<double>());
  CHECK(offload.at("measured_queries") == reference.at("measured_queries"));
  // Eager and sparse attention compute the same attention over the same selected keys.
  for (const std::string path : {"eager", "sparse"}) {
    const nlohmann::json other = overlap_with(temp, path, {"--attention", path});
    INFO("--attention " << path);
    CHECK(largest_difference(reference.at("overlap"), other.at("overlap")) <= 1e-9);
    CHECK(relative_error(other.at("baseline_loss").get<double>(), reference.at("baseline_loss").get<double>()) <= 1e-5);
  }
}

TEST_CASE("tool options: indexcache-overlap takes --devices and checks --attention like indexcache-calibrate",
          "[tools][options]") {
  TempDir temp;
  const nlohmann::json reference = overlap_with(temp, "reference", {});
  // A one-device list is a placement of every layer on that device: the same run.
  const nlohmann::json listed = overlap_with(temp, "listed", {"--devices", "cpu"});
  CHECK(largest_difference(reference.at("overlap"), listed.at("overlap")) == 0.0);
  const std::string json_path = temp.file("rejected.json");
  const std::vector<std::string> data = {"--model", golden_dir("dsv32_default"), "--data",
                                         golden_dir("dsv32_default") + "/data.jsonl", "--json", json_path,
                                         "--attention", "dense"};
  std::vector<std::string> calibrate = data;
  calibrate.insert(calibrate.end(), {"--eval", "FFFFFF"});
  for (const auto& [tool, arguments] : {std::pair{"indexcache-calibrate", calibrate}, std::pair{"indexcache-overlap", data}}) {
    ToolResult result = run_tool(tool, arguments);
    INFO(tool << ": " << result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.find("--attention: \"dense\" is not a path") != std::string::npos);
    CHECK(!path_exists(json_path));
  }
}
