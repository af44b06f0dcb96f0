// indexcache-overlap's report through the real tool: the files in --out-dir, SVG heatmaps that
// are well-formed XML with L x L cells, HTML numbers equal to the JSON's, CSV files that read
// back to the JSON's matrices exactly, the subsampling and layer options, and bad input.
#include <cmath>
#include <fstream>

#include "catch_shim.h"
#include "error.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "overlap_run.h"
#include "report_checks.h"
#include "report_csv.h"
#include "report_overlap_statistics.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// A golden checkpoint and its four sequences split into two domains, "code" and "legal".
struct TwoDomains {
  TempDir temp;
  std::string model = golden_dir("dsv32_default");
  std::string code = temp.file("code.jsonl");
  std::string legal = temp.file("legal.jsonl");
  std::string out = temp.file("report");
  TwoDomains() {
    std::ifstream in(golden_dir("dsv32_default") + "/data.jsonl");
    std::ofstream code_file(code), legal_file(legal);
    std::string line;
    for (int i = 0; std::getline(in, line); ++i) (i < 2 ? code_file : legal_file) << line << "\n";
  }
  std::vector<std::string> arguments(std::vector<std::string> extra = {}) const {
    std::vector<std::string> all = {"--model", model, "--data", code, legal, "--out-dir", out};
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  }
};

const nlohmann::json& domain_entry(const nlohmann::json& json, const std::string& name) {
  for (const auto& entry : json.at("domains")) {
    if (entry.at("domain") == name) return entry;
  }
  FAIL("no domain " << name);
  return json;
}

std::string four_decimals(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4f", value);
  return buffer;
}

void check_heatmap(const std::string& path, const nlohmann::json& matrix, int64_t first_layer) {
  INFO(path);
  XmlDocument svg = check_xml(read_text(path));
  REQUIRE(svg.ok());
  CHECK(svg.elements.front().name == "svg");
  auto cells = svg.find("rect", "class", "cell");
  const std::size_t layers = matrix.size();
  REQUIRE(cells.size() == layers * layers);
  std::vector<int> seen(layers * layers, 0);
  for (const XmlElement* cell : cells) {
    int64_t row = std::stoll(cell->get("data-row")) - first_layer;
    int64_t column = std::stoll(cell->get("data-col")) - first_layer;
    REQUIRE(row >= 0);
    REQUIRE(column >= 0);
    REQUIRE(static_cast<std::size_t>(row) < layers);
    REQUIRE(static_cast<std::size_t>(column) < layers);
    ++seen[row * layers + column];
  }
  for (int count : seen) CHECK(count == 1);
  // Hover values: every cell has a <title> ending in its value; the legend has its scale.
  std::size_t titles = 0;
  for (const XmlElement& element : svg.elements) {
    if (element.name == "title" && element.text.find(" vs layer ") != std::string::npos) ++titles;
  }
  CHECK(titles == layers * layers);
  double value = matrix[1][0].get<double>();
  bool found = false;
  for (const XmlElement& element : svg.elements) {
    found = found || element.text == "layer " + std::to_string(first_layer + 1) + " vs layer " +
                                          std::to_string(first_layer) + ": " + four_decimals(value);
  }
  CHECK(found);
  CHECK(svg.find("rect", "class", "legend").size() > 10);
  bool scale_end = false;
  for (const XmlElement* text : svg.find("text")) scale_end = scale_end || text->text == "1.0";
  CHECK(scale_end);
}

}  // namespace

TEST_CASE("overlap report writes every file with SVG cells and HTML numbers equal to the JSON and CSV that round-trips", "[report][tools]") {
  TwoDomains setup;
  ToolResult result = run_tool("indexcache-overlap", setup.arguments());
  INFO(result.err);
  REQUIRE(result.status == 0);
  CHECK(result.err.empty());  // --quiet: nothing on stderr
  CHECK(result.out.find("report: " + setup.out + "/report.html") != std::string::npos);
  // The strip: one block character per adjacent pair, between bars.
  std::size_t strip = result.out.find("  all    |");
  REQUIRE(strip != std::string::npos);
  std::string cells = result.out.substr(strip + 10, result.out.find('|', strip + 10) - strip - 10);
  CHECK(cells == block_strip(read_json_file(setup.out + "/overlap.json").at("adjacent").get<std::vector<double>>()));
  CHECK(cells.size() == 5 * std::string("█").size());

  nlohmann::json json = read_json_file(setup.out + "/overlap.json");
  CHECK(json.at("format") == "indexcache-overlap/1");
  CHECK(json.at("layers") == 6);
  REQUIRE(json.at("domains").size() == 3);
  CHECK(json["domains"][0]["domain"] == "all");
  const nlohmann::json& code = domain_entry(json, "code");
  const nlohmann::json& legal = domain_entry(json, "legal");
  CHECK(code.at("sequences") == 2);
  CHECK(legal.at("sequences") == 2);
  CHECK(json.at("measured_queries").get<int64_t>() ==
        code.at("measured_queries").get<int64_t>() + legal.at("measured_queries").get<int64_t>());
  // All data is the golden matrix (transformers' reference).
  nlohmann::json expected = read_json_file(golden_dir("dsv32_default") + "/expected.json");
  for (int a = 0; a < 6; ++a) {
    for (int b = 0; b < 6; ++b) CHECK(std::abs(json["overlap"][a][b].get<double>() - expected["overlap"][a][b].get<double>()) <= 1e-3);
  }

  for (const auto& entry : json.at("domains")) {
    const std::string csv = setup.out + "/" + entry.at("csv").get<std::string>();
    const std::string svg = setup.out + "/" + entry.at("svg").get<std::string>();
    check_heatmap(svg, entry.at("overlap"), 0);
    CsvMatrix matrix = parse_matrix_csv(read_text(csv), csv);
    CHECK(matrix.layers == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(matrix.values == entry.at("overlap").get<std::vector<std::vector<double>>>());  // exact
  }
  CHECK(is_regular_file(setup.out + "/overlap-code.csv"));
  CHECK(is_regular_file(setup.out + "/overlap-legal.svg"));

  std::string html_text = read_text(setup.out + "/report.html");
  CHECK(html_text.find("http://") == html_text.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  CHECK(html_text.find("<script") == std::string::npos);
  XmlDocument html = check_xml(html_text);
  REQUIRE(html.ok());
  CHECK(html.find("svg").size() == 6);  // a heatmap and a line chart per group
  int compared = 0;
  for (const XmlElement* cell : html.find("td", "data-field", "adjacent")) {
    const nlohmann::json& entry = domain_entry(json, cell->get("data-domain"));
    int64_t layer = std::stoll(cell->get("data-layer"));
    CHECK(cell->text == four_decimals(entry.at("adjacent")[layer - 1].get<double>()));
    ++compared;
  }
  CHECK(compared == 3 * 5);
  for (const XmlElement* cell : html.find("td", "data-field", "nearest-layer")) {
    int64_t layer = std::stoll(cell->get("data-layer"));
    CHECK(std::stoll(cell->text) == json.at("nearest_earlier")[layer].at("earlier").get<int64_t>());
  }
  for (const XmlElement* cell : html.find("td", "data-field", "nearest-overlap")) {
    int64_t layer = std::stoll(cell->get("data-layer"));
    CHECK(cell->text == four_decimals(json.at("nearest_earlier")[layer].at("overlap").get<double>()));
  }
  CHECK(html.find("td", "data-field", "nearest-overlap").size() == 5);
  // Chance level: mean of k / (t+1) over the measured queries, so all data is the domains'
  // query-weighted mean, and the summary table shows the JSON's values.
  const double chance = json.at("chance_overlap").get<double>();
  CHECK(chance > 0.0);
  CHECK(chance < 1.0);
  const double weighted = (code.at("chance_overlap").get<double>() * code.at("measured_queries").get<double>() +
                           legal.at("chance_overlap").get<double>() * legal.at("measured_queries").get<double>()) /
                          json.at("measured_queries").get<double>();
  CHECK(std::abs(chance - weighted) <= 1e-12);
  CHECK(html.find("td", "data-field", "chance").size() == 3);
  for (const XmlElement* cell : html.find("td", "data-field", "chance")) {
    CHECK(cell->text == four_decimals(domain_entry(json, cell->get("data-domain")).at("chance_overlap").get<double>()));
  }
  CHECK(result.out.find("chance level ") != std::string::npos);
  for (const XmlElement* cell : html.find("td", "data-field", "measured")) {
    CHECK(std::stoll(cell->text) == domain_entry(json, cell->get("data-domain")).at("measured_queries").get<int64_t>());
  }
  // The line chart's points hold the same adjacent values.
  for (const XmlElement* title : html.find("title")) {
    if (title->text.rfind("code: layer 3 vs 2: ", 0) == 0) {
      CHECK(title->text.substr(20) == four_decimals(code.at("adjacent")[2].get<double>()));
    }
  }
}

TEST_CASE("overlap report restricts layers and subsamples queries and records both",
          "[report][tools]") {
  TwoDomains setup;
  ToolResult full = run_tool("indexcache-overlap", setup.arguments({"--json", setup.temp.file("full.json")}));
  REQUIRE(full.status == 0);
  nlohmann::json all_layers = read_json_file(setup.temp.file("full.json"));
  CHECK(all_layers.at("query_stride") == 1);
  CHECK(all_layers.at("max_queries").is_null());

  ToolResult part = run_tool("indexcache-overlap", setup.arguments({"--layers", "1-4", "--block-threshold", "0.5"}));
  INFO(part.err);
  REQUIRE(part.status == 0);
  nlohmann::json json = read_json_file(setup.out + "/overlap.json");
  CHECK(json.at("layers") == 4);
  CHECK(json.at("first_layer") == 1);
  CHECK(json.at("last_layer") == 4);
  CHECK(json.at("block_threshold") == 0.5);
  for (int a = 0; a < 4; ++a) {
    for (int b = 0; b < 4; ++b) {
      CHECK(std::abs(json["overlap"][a][b].get<double>() - all_layers["overlap"][a + 1][b + 1].get<double>()) <= 1e-12);
    }
  }
  CHECK(json.at("nearest_earlier")[0].at("earlier").is_null());
  CHECK(json.at("nearest_earlier")[0].at("layer") == 1);
  check_heatmap(setup.out + "/overlap-all.svg", json.at("overlap"), 1);
  CHECK(parse_matrix_csv(read_text(setup.out + "/overlap-all.csv"), "csv").layers == std::vector<int64_t>{1, 2, 3, 4});

  ToolResult thin = run_tool("indexcache-overlap", setup.arguments({"--query-stride", "2", "--max-queries", "5"}));
  INFO(thin.err);
  REQUIRE(thin.status == 0);
  json = read_json_file(setup.out + "/overlap.json");
  CHECK(json.at("query_stride") == 2);
  CHECK(json.at("max_queries") == 5);
  CHECK(json.at("measured_queries").get<int64_t>() <= 4 * 5);
  CHECK(json.at("measured_queries").get<int64_t>() > 0);
  CHECK(json.at("measured_queries").get<int64_t>() < all_layers.at("measured_queries").get<int64_t>());
}

TEST_CASE("overlap report bad options exit 2 with one line and write nothing", "[report][tools][bad-input]") {
  TwoDomains setup;
  std::string json = setup.temp.file("out.json");
  write_text(setup.temp.file("a-file"), "x");
  auto rejected = [&](std::vector<std::string> extra, const std::string& fragment, const std::string& out_dir = "") {
    std::vector<std::string> arguments = {"--model", setup.model, "--data", setup.code, "--json", json,
                                          "--out-dir", out_dir.empty() ? setup.out : out_dir};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    ToolResult result = run_tool("indexcache-overlap", arguments);
    INFO(result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.rfind("error: ", 0) == 0);
    CHECK(result.err.find(fragment) != std::string::npos);
    CHECK_FALSE(path_exists(json));
    CHECK_FALSE(path_exists(setup.out));
    CHECK(result.out.empty());
  };
  SECTION("out dir not writable") { rejected({}, "not writable", "/proc/indexcache-report"); }
  SECTION("out dir under a file") { rejected({}, "is not a folder", setup.temp.file("a-file") + "/report"); }
  SECTION("threshold above 1") { rejected({"--block-threshold", "1.5"}, "--block-threshold: must be in [0, 1]"); }
  SECTION("threshold below 0") { rejected({"--block-threshold", "-0.1"}, "--block-threshold"); }
  SECTION("stride 0") { rejected({"--query-stride", "0"}, "--query-stride: must be at least 1"); }
  SECTION("max queries 0") { rejected({"--max-queries", "0"}, "--max-queries: must be at least 1"); }
  SECTION("layers past the model") { rejected({"--layers", "2-6"}, "outside the model: it has layers 0-5"); }
  SECTION("layers reversed") { rejected({"--layers", "4-2"}, "at least two layers"); }
  SECTION("layers malformed") { rejected({"--layers", "three"}, "FIRST-LAST"); }
}

TEST_CASE("overlap statistics give adjacent overlap and nearest earlier layer and blocks as documented", "[report]") {
  // Layers 10..14: 10-12 agree strongly, 13 only with 12, 14 with 13.
  std::vector<std::vector<double>> matrix = {{1.0, 0.9, 0.8, 0.3, 0.2},
                                             {0.9, 1.0, 0.85, 0.4, 0.2},
                                             {0.8, 0.85, 1.0, 0.75, 0.3},
                                             {0.3, 0.4, 0.75, 1.0, 0.9},
                                             {0.2, 0.2, 0.3, 0.9, 1.0}};
  OverlapStatistics statistics = overlap_statistics(matrix, 10, 0.7);
  CHECK(statistics.adjacent == std::vector<double>{0.9, 0.85, 0.75, 0.9});
  REQUIRE(statistics.nearest.size() == 5);
  CHECK_FALSE(statistics.nearest[0].earlier.has_value());
  CHECK(*statistics.nearest[2].earlier == 11);
  CHECK(*statistics.nearest[4].earlier == 13);
  // 13 overlaps 12 by 0.75 but 10 by only 0.3, so it cannot join 10-12 and starts a new block.
  REQUIRE(statistics.blocks.size() == 2);
  CHECK(statistics.blocks[0].first == 10);
  CHECK(statistics.blocks[0].last == 12);
  CHECK(statistics.blocks[0].min_overlap == 0.8);
  CHECK(statistics.blocks[1].first == 13);
  CHECK(statistics.blocks[1].last == 14);
  CHECK(overlap_statistics(matrix, 10, 1.0).blocks.empty());
  CHECK(overlap_statistics(matrix, 10, 0.0).blocks.size() == 1);
  // Ties pick the lowest earlier layer.
  CHECK(*overlap_statistics({{1, 0.5, 0.5}, {0.5, 1, 0.5}, {0.5, 0.5, 1}}, 0, 0.7).nearest[2].earlier == 0);
  CHECK(block_strip({0.0, 0.5, 1.0}) == " ▄█");
}

TEST_CASE("overlap CSV values read back exactly and malformed tables are rejected", "[report]") {
  std::vector<std::vector<double>> matrix = {{1.0, 1.0 / 3.0}, {0.1 + 0.2, 1e-17}};
  CsvMatrix back = parse_matrix_csv(matrix_csv(matrix, 7), "m.csv");
  CHECK(back.layers == std::vector<int64_t>{7, 8});
  CHECK(back.values == matrix);
  CHECK(matrix_csv({{0.5}}, 0) == "layer,0\n0,0.5\n");
  auto error_of = [](const std::string& text) -> std::string {
    try {
      parse_matrix_csv(text, "m.csv");
    } catch (const InputError& error) {
      return error.what();
    }
    return "";
  };
  CHECK(error_of("layer,0,1\n0,1,0.5\n").find("1 rows for 2 layers") != std::string::npos);
  CHECK(error_of("layer,0\n0,abc\n").find("not a number") != std::string::npos);
  CHECK(error_of("layer,0\n0,1,2\n").find("cells") != std::string::npos);
  CHECK(error_of("layer,0\n3,1\n").find("row label") != std::string::npos);
}
