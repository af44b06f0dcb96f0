// indexcache-calibrate's search report through the real tool: written next to the plan, its
// pictures well-formed with one cell per layer, its numbers equal to the plan's and to
// report.json, per-domain losses on held-out data when the data has a held-out split (and said
// otherwise), and bad report folders rejected before any work.
#include <cmath>
#include <fstream>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "layer_plan.h"
#include "report_calibrate.h"
#include "report_checks.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

std::vector<std::string> golden_lines() {
  std::ifstream in(golden_dir("dsv32_default") + "/data.jsonl");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
}

// The golden model with two plain-file domains (no held-out split).
struct PlainFiles {
  TempDir temp;
  std::string model = golden_dir("dsv32_default");
  std::string code = temp.file("code.jsonl");
  std::string legal = temp.file("legal.jsonl");
  PlainFiles() {
    std::vector<std::string> lines = golden_lines();
    write_lines(code, {lines[0], lines[1]});
    write_lines(legal, {lines[2], lines[3]});
  }
};

std::string six_decimals(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6f", value);
  return buffer;
}

const nlohmann::json& domain_of(const nlohmann::json& losses, const std::string& name) {
  if (name == "all") return losses.at("all");
  for (const auto& entry : losses.at("domains")) {
    if (entry.at("domain") == name) return entry;
  }
  FAIL("no domain " << name);
  return losses;
}

// The help line of `option` (the line that starts with it, not a mention in the description).
std::string help_line(const std::string& help, const std::string& option) {
  std::size_t start = 0;
  while (start < help.size()) {
    std::size_t end = help.find('\n', start);
    if (end == std::string::npos) end = help.size();
    std::string line = help.substr(start, end - start);
    std::size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && line.compare(first, option.size() + 1, option + " ") == 0) return line;
    start = end + 1;
  }
  return "";
}

// CLI11 2.1 prints a default as "--option TYPE=VALUE", CLI11 2.4 as "--option TYPE [VALUE]".
bool help_shows_default(const std::string& help, const std::string& option, const std::string& value) {
  std::string line = help_line(help, option);
  return line.find("=" + value) != std::string::npos || line.find("[" + value + "]") != std::string::npos;
}

}  // namespace

TEST_CASE("search report is written next to the plan with well-formed pictures and the numbers of the plan and report.json",
          "[report][tools]") {
  PlainFiles setup;
  const std::string plan_path = setup.temp.file("plan.yaml");
  const std::string json_path = setup.temp.file("search.json");
  ToolResult result = run_tool("indexcache-calibrate", {"--model", setup.model, "--data", setup.code, setup.legal,
                                                        "--keep-layers", "2", "--out", plan_path, "--json", json_path});
  INFO(result.err);
  REQUIRE(result.status == 0);
  CHECK(result.err.empty());
  const std::string directory = setup.temp.file("plan-report");
  CHECK(result.out.find("report    " + directory + "/report.html") != std::string::npos);
  LayerPlan plan = read_plan(plan_path);
  nlohmann::json search = read_json_file(json_path);
  nlohmann::json report = read_json_file(directory + "/report.json");
  CHECK(report.at("format") == "indexcache-search-report/1");
  CHECK(report.at("pattern") == plan.pattern.text());
  CHECK(report.at("baseline_loss").get<double>() == search.at("baseline_loss").get<double>());
  REQUIRE(report.at("trajectory").size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(report["trajectory"][i]["loss"].get<double>() == search["search"]["trajectory"][i]["loss"].get<double>());
    CHECK(report["trajectory"][i]["kept"] == 5 - static_cast<int>(i));
  }

  // Plain files: no held-out split, and the report says so. On the calibration data, the
  // all-data losses are the search's own baseline and final loss.
  const nlohmann::json& losses = report.at("domain_losses");
  CHECK(losses.at("evaluated_on") == "calibration");
  CHECK(losses.at("note").get<std::string>().find("no held-out split") != std::string::npos);
  CHECK(std::abs(losses["all"]["baseline_loss"].get<double>() - plan.baseline_loss) <= 1e-9 * plan.baseline_loss);
  CHECK(std::abs(losses["all"]["plan_loss"].get<double>() - plan.final_loss) <= 1e-9 * plan.final_loss);
  REQUIRE(losses.at("domains").size() == 2);
  CHECK(losses["domains"][0]["domain"] == "code");
  CHECK(losses["domains"][0]["sequences"] == 2);

  XmlDocument strip = check_xml(read_text(directory + "/pattern.svg"));
  REQUIRE(strip.ok());
  auto cells = strip.find("rect", "class", "pattern-cell");
  REQUIRE(cells.size() == 6);
  for (std::size_t layer = 0; layer < 6; ++layer) CHECK(cells[layer]->get("data-kind") == std::string(1, plan.pattern.text()[layer]));
  XmlDocument trajectory = check_xml(read_text(directory + "/trajectory.svg"));
  REQUIRE(trajectory.ok());
  std::size_t candidates = 0;
  for (const auto& step : search["search"]["trajectory"]) candidates += step["candidates"].size() - 1;
  // all-F + 4 steps, the uniform patterns, and the candidates not taken (none here are off the chart).
  CHECK(trajectory.find("circle", "class", "point").size() == 1 + 4 + candidates);
  CHECK(trajectory.find("rect", "class", "point").size() == plan.uniform.size());
  XmlDocument bars = check_xml(read_text(directory + "/domain-loss.svg"));
  REQUIRE(bars.ok());
  CHECK(bars.find("rect", "class", "bar").size() == 3);

  XmlDocument html = check_xml(read_text(directory + "/report.html"));
  REQUIRE(html.ok());
  CHECK(html.find("td", "data-field", "baseline-loss")[0]->text == six_decimals(plan.baseline_loss));
  CHECK(html.find("td", "data-field", "final-loss")[0]->text == six_decimals(plan.final_loss));
  auto step_cells = html.find("td", "data-field", "step-loss");
  REQUIRE(step_cells.size() == 4);
  for (const XmlElement* cell : step_cells) {
    int step = std::stoi(cell->get("data-step"));
    CHECK(cell->text == six_decimals(report["trajectory"][step - 1]["loss"].get<double>()));
  }
  for (const XmlElement* cell : html.find("td", "data-field", "uniform-loss")) {
    bool matched = false;
    for (const auto& uniform : report.at("uniform")) {
      matched = matched || (uniform["name"] == cell->get("data-name") && cell->text == six_decimals(uniform["loss"].get<double>()));
    }
    CHECK(matched);
  }
  CHECK(html.find("td", "data-field", "domain-baseline").size() == 3);
  for (const XmlElement* cell : html.find("td", "data-field", "domain-plan")) {
    CHECK(cell->text == six_decimals(domain_of(losses, cell->get("data-domain"))["plan_loss"].get<double>()));
  }
  for (const XmlElement* cell : html.find("td", "data-field", "domain-baseline")) {
    CHECK(cell->text == six_decimals(domain_of(losses, cell->get("data-domain"))["baseline_loss"].get<double>()));
  }
  // Cost: three contexts, each number as report.json has it, and the page says it is a model.
  const nlohmann::json& projections = report.at("indexer_cost").at("projections");
  REQUIRE(projections.size() == 3);
  CHECK(projections[2]["tokens"] == 200000);
  CHECK(std::abs(projections[0]["saved_fraction"].get<double>() - 4.0 / 6.0) < 1e-12);
  auto cost_cells = html.find("td", "data-field", "cost-plan");
  REQUIRE(cost_cells.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    double shown = leading_number(cost_cells[i]->text);
    double value = projections[i]["plan"].get<double>();
    std::string unit = cost_cells[i]->text.substr(cost_cells[i]->text.find(' ') + 1);
    double scale = unit == "TFLOP" ? 1e12 : unit == "PFLOP" ? 1e15 : unit == "GFLOP" ? 1e9 : unit == "EFLOP" ? 1e18 : 0;
    REQUIRE(scale > 0);
    CHECK(std::abs(shown * scale - value) <= 0.006 * value);
  }
  for (const XmlElement* cell : html.find("td", "data-field", "cost-saved-percent")) CHECK(cell->text == "66.7");
  std::string page = read_text(directory + "/report.html");
  CHECK(page.find("a model, not a measurement") != std::string::npos);
  CHECK(page.find("no held-out split") != std::string::npos);
}

TEST_CASE("a uniform pattern far above the search's losses does not flatten the trajectory chart", "[report]") {
  LayerPlan plan;
  plan.num_hidden_layers = 6;
  plan.pattern = LayerPattern::parse("FSFSFS", 6, "test");
  plan.baseline_loss = 3.000;
  const double step_losses[] = {3.001, 3.002, 3.004};
  const char* patterns[] = {"FSFFFF", "FSFSFF", "FSFSFS"};
  for (int i = 0; i < 3; ++i) {
    SearchStep step;
    step.removed = 2 * i + 1;
    step.loss = step_losses[i];
    step.pattern = LayerPattern::parse(patterns[i], 6, "test");
    plan.trajectory.push_back(step);
  }
  plan.uniform.push_back({"index_topk_freq=2", LayerPattern::parse("FSFSFS", 6, "test"), 3.200});  // +6.7%: far above
  plan.uniform.push_back({"evenly-spaced", LayerPattern::parse("FFSFSS", 6, "test"), 3.005});     // near the trajectory
  XmlDocument chart = check_xml(trajectory_chart(plan).file_text());
  REQUIRE(chart.ok());
  auto uniform = chart.find("rect", "class", "point");
  REQUIRE(uniform.size() == 2);
  // A point's hover text is its <title>, the next element in document order.
  auto title = [&](const XmlElement* point) {
    const std::size_t index = static_cast<std::size_t>(point - chart.elements.data());
    REQUIRE(index + 1 < chart.elements.size());
    REQUIRE(chart.elements[index + 1].name == "title");
    return chart.elements[index + 1].text;
  };
  const double pinned = std::stod(uniform[0]->get("data-y"));
  CHECK(pinned < 3.02);  // at the top of a range set by the search, not at 3.2
  CHECK(pinned > 3.004);
  CHECK(title(uniform[0]).find("loss 3.200000") != std::string::npos);
  CHECK(title(uniform[0]).find("above the chart") != std::string::npos);
  CHECK(std::abs(std::stod(uniform[1]->get("data-y")) - 3.005) < 1e-9);  // Catch v2 and v3 spell Approx differently
  CHECK(title(uniform[1]).find("above") == std::string::npos);
}

TEST_CASE("search report measures per-domain loss on the held-out split of bundled sets", "[report][tools]") {
  // Two bundled-style sets (input_ids records, so no tokenizer is needed), each with both splits.
  TempDir data;
  std::vector<std::string> lines = golden_lines();
  for (const std::string& name : {std::string("alpha"), std::string("beta")}) {
    make_directories(data.file(name));
    bool first = name == "alpha";
    write_lines(data.file(name + "/calibration.jsonl"), {lines[first ? 0 : 2]});
    write_lines(data.file(name + "/heldout.jsonl"), {lines[first ? 1 : 3], lines[first ? 3 : 1]});
  }
  TempDir out;
  ToolResult result = run_tool("indexcache-calibrate",
                               {"--model", golden_dir("dsv32_default"), "--data", "alpha", "beta", "--keep-layers", "3",
                                "--out", out.file("plan.yaml"), "--report-dir", out.file("custom/report")},
                               "INDEXCACHE_DATA_DIR=" + shell_quote(data.path()));
  INFO(result.err);
  REQUIRE(result.status == 0);
  nlohmann::json report = read_json_file(out.file("custom/report/report.json"));
  const nlohmann::json& losses = report.at("domain_losses");
  CHECK(losses.at("evaluated_on") == "heldout");
  CHECK(losses.at("note") == "");
  REQUIRE(losses.at("domains").size() == 2);
  CHECK(losses["domains"][0]["split"] == "heldout");
  CHECK(losses["domains"][0]["sequences"] == 2);  // the held-out file's two sequences, not calibration's one
  CHECK(losses["all"]["sequences"] == 4);
  CHECK_FALSE(path_exists(out.file("plan-report")));
  std::string page = read_text(out.file("custom/report/report.html"));
  CHECK(page.find("held-out data") != std::string::npos);
}

TEST_CASE("search report can be turned off and an unwritable report folder fails before the search",
          "[report][tools][bad-input]") {
  PlainFiles setup;
  std::vector<std::string> base = {"--model", setup.model, "--data", setup.code, "--keep-layers", "3", "--out",
                                   setup.temp.file("plan.yaml")};
  SECTION("--no-report") {
    base.push_back("--no-report");
    ToolResult result = run_tool("indexcache-calibrate", base);
    REQUIRE(result.status == 0);
    CHECK(path_exists(setup.temp.file("plan.yaml")));
    CHECK_FALSE(path_exists(setup.temp.file("plan-report")));
    CHECK(result.out.find("report ") == std::string::npos);
  }
  SECTION("not writable") {
    base.insert(base.end(), {"--report-dir", "/proc/indexcache-report"});
    ToolResult result = run_tool("indexcache-calibrate", base);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.find("--report-dir: /proc/indexcache-report is not writable") != std::string::npos);
    CHECK_FALSE(path_exists(setup.temp.file("plan.yaml")));
  }
  SECTION("report options outside the search") {
    ToolResult result = run_tool("indexcache-calibrate", {"--model", setup.model, "--data", setup.code, "--eval",
                                                          "FSFSFS", "--report-dir", setup.temp.file("r")});
    CHECK(result.status == 2);
    CHECK(result.err.find("belong to the search") != std::string::npos);
  }
}

TEST_CASE("help of both tools shows defaults and an example", "[report][tools]") {
  ToolResult overlap = run_tool("indexcache-overlap", {"--help"});
  REQUIRE(overlap.status == 0);
  CHECK(overlap.out.find("Example") != std::string::npos);
  CHECK(overlap.out.find("--block-threshold") != std::string::npos);
  INFO(help_line(overlap.out, "--block-threshold"));
  CHECK(help_shows_default(overlap.out, "--block-threshold", "0.7"));
  CHECK(overlap.out.find("--query-stride") != std::string::npos);
  CHECK(help_shows_default(overlap.out, "--query-stride", "1"));
  CHECK(overlap.out.find("default: indexcache-overlap") != std::string::npos);
  ToolResult calibrate = run_tool("indexcache-calibrate", {"--help"});
  REQUIRE(calibrate.status == 0);
  CHECK(calibrate.out.find("Example") != std::string::npos);
  CHECK(calibrate.out.find("--report-dir") != std::string::npos);
  CHECK(calibrate.out.find("default: <plan stem>-report") != std::string::npos);
}
