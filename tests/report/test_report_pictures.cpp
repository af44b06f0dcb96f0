// The report building blocks on their own: SVG pictures are well-formed XML with the expected
// cells and escaped text, axis ticks are round numbers, the HTML page is self-contained and
// well-formed, the indexer cost model follows its formula, and progress lines fit the terminal.
#include <cstdio>
#include <cstring>
#include <functional>
#include <cmath>

#include "catch_shim.h"
#include "indexer_cost.h"
#include "progress.h"
#include "report_checks.h"
#include "report_html.h"
#include "svg_axis.h"
#include "svg_bar_chart.h"
#include "svg_colour.h"
#include "svg_heatmap.h"
#include "svg_line_chart.h"
#include "svg_pattern_strip.h"

using namespace indexcache;
using namespace indexcache::testing;

TEST_CASE("svg heatmap has cells and a legend and escaped titles", "[report][svg]") {
  HeatmapSpec spec;
  spec.title = "code & <math>: \"top-k\"";
  spec.values = {{1.0, 0.25, 0.5}, {0.25, 1.0, 0.75}, {0.5, 0.75, 1.0}};
  spec.first_layer = 4;
  SvgDocument svg = render_heatmap(spec);
  std::string file = svg.file_text();
  CHECK(file.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 0) == 0);
  XmlDocument xml = check_xml(file);
  REQUIRE(xml.ok());
  CHECK(xml.find("rect", "class", "cell").size() == 9);
  CHECK(xml.find("rect", "data-row", "6").size() == 3);
  CHECK(xml.elements[0].get("aria-label") == spec.title);
  bool hover = false;
  for (const XmlElement* title : xml.find("title")) hover = hover || title->text == "layer 5 vs layer 6: 0.7500";
  CHECK(hover);
  // Wide cells print their value; the element form has no XML declaration (for inlining).
  CHECK(svg.element().rfind("<svg ", 0) == 0);
  bool printed = false;
  for (const XmlElement* text : xml.find("text")) printed = printed || text->text == "0.25";
  CHECK(printed);
}

TEST_CASE("svg heatmap of 61 layers stays readable and small", "[report][svg]") {
  HeatmapSpec spec;
  spec.title = "61 layers";
  spec.values.assign(61, std::vector<double>(61, 0.5));
  std::string file = render_heatmap(spec).file_text();
  XmlDocument xml = check_xml(file);
  REQUIRE(xml.ok());
  CHECK(xml.find("rect", "class", "cell").size() == 61 * 61);
  CHECK(file.size() < 700000);  // ~160 bytes a cell, hover text included
  // Labels every few layers, not 61 overlapping ones per axis.
  int labels = 0;
  for (const XmlElement* text : xml.find("text")) labels += text->text == "10" || text->text == "11";
  CHECK(labels == 2);
}

TEST_CASE("svg line chart points and bar chart bars and pattern strip cells", "[report][svg]") {
  LineChartSpec chart;
  chart.title = "loss";
  chart.x_label = "kept";
  chart.y_label = "loss";
  chart.reverse_x = true;
  chart.series.push_back({"greedy", series_colour(0), {{6, 3.0, "a"}, {5, 3.1, "b"}, {4, 3.3, "c"}}});
  chart.series.push_back({"uniform", series_colour(1), {{4, 3.5, "u"}}, false, "diamond"});
  chart.references.push_back({3.0, "all F"});
  XmlDocument line = check_xml(render_line_chart(chart).file_text());
  REQUIRE(line.ok());
  CHECK(line.find("circle", "class", "point").size() == 3);
  CHECK(line.find("rect", "class", "point").size() == 1);
  CHECK(line.find("polyline").size() == 1);

  BarChartSpec bars{"change", "%", {{"all", -0.5, "-0.5%", "#444", "t"}, {"code", 1.25, "+1.25%", "#06c", "t"}}};
  XmlDocument bar = check_xml(render_bar_chart(bars).file_text());
  REQUIRE(bar.ok());
  CHECK(bar.find("rect", "class", "bar").size() == 2);

  XmlDocument strip = check_xml(render_pattern_strip(LayerPattern::parse("FFSFSS", 6, "test"), "pattern").file_text());
  REQUIRE(strip.ok());
  auto cells = strip.find("rect", "class", "pattern-cell");
  REQUIRE(cells.size() == 6);
  CHECK(cells[2]->get("data-kind") == "S");
  CHECK(strip.find("rect", "data-kind", "F").size() == 3);
  bool reuse = false;
  for (const XmlElement* title : strip.find("title")) reuse = reuse || title->text == "layer 5: S, reuses the top-k of layer 3";
  CHECK(reuse);
}

TEST_CASE("svg ticks and colours and numbers", "[report][svg]") {
  std::vector<double> unit = nice_ticks(0.0, 1.0, 5);
  REQUIRE(unit.size() == 6);
  for (int i = 0; i < 6; ++i) CHECK(std::abs(unit[i] - 0.2 * i) < 1e-12);
  std::vector<double> ticks = nice_ticks(3.21, 3.29, 5);
  REQUIRE(ticks.size() >= 3);
  CHECK(ticks.front() >= 3.21 - 1e-12);
  CHECK(ticks.back() <= 3.29 + 1e-12);
  CHECK(tick_label(0.6000000000000001, 0.2) == "0.6");
  CHECK(tick_label(unit[3], 0.2) == "0.6");
  CHECK(tick_label(-0.0, 0.5) == "0.0");
  CHECK(tick_label(1200, 200) == "1200");
  CHECK(tick_label(0.25, 0.25) == "0.25");
  CHECK(viridis_colour(0.0) == "#440154");
  CHECK(viridis_colour(1.0) == "#fde725");
  CHECK(viridis_colour(7.0) == "#fde725");
  CHECK(svg_number(12.50) == "12.5");
  CHECK(svg_number(-0.001) == "0");
  CHECK(xml_escape("a&b<c>\"'") == "a&amp;b&lt;c&gt;&quot;&#39;");
  CHECK(label_step(61, 8.85) == 2);
  CHECK(label_step(6, 48) == 1);
}

TEST_CASE("html report page is self-contained and well-formed", "[report][html]") {
  HtmlReport page("title & more");
  page.heading(1, "Head <1>");
  page.paragraph("a < b & c", "note");
  page.facts({{"model", "/models/x & y"}});
  page.table({"layer", "value"}, {{table_cell("1"), number_cell(0.123456, 4, " data-field=\"v\"")}});
  page.figures({render_pattern_strip(LayerPattern::parse("FS", 2, "test"), "p").element()});
  std::string document = page.document();
  CHECK(document.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(document.find("<script") == std::string::npos);
  CHECK(document.find("<link") == std::string::npos);
  CHECK(document.find("@import") == std::string::npos);
  XmlDocument xml = check_xml(document);
  REQUIRE(xml.ok());
  auto cells = xml.find("td", "data-field", "v");
  REQUIRE(cells.size() == 1);
  CHECK(cells[0]->text == "0.1235");
  CHECK(cells[0]->get("class") == "num");
  CHECK(fixed_number(1.0 / 0.0, 2) == "n/a");
}

TEST_CASE("indexer cost model follows the documented formula", "[report][cost]") {
  IndexerCostModel model{6, 2, 3, 4};
  CHECK(causal_pairs(4) == 10.0);
  // 10 pairs x 2 heads x 3 dims x 2 + 10 pairs x log2(4) = 120 + 20.
  CHECK(indexer_layer_operations(model, 4) == 140.0);
  auto rows = project_indexer_cost(model, 2, {4, 8});
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].all_full == 6 * 140.0);
  CHECK(rows[0].plan == 2 * 140.0);
  CHECK(rows[0].saved == 4 * 140.0);
  CHECK(std::abs(rows[1].saved_fraction - 4.0 / 6.0) < 1e-15);
  CHECK(report_contexts() == std::vector<int64_t>{32768, 131072, 200000});
  CHECK(format_context(32768) == "32K");
  CHECK(format_context(131072) == "128K");
  CHECK(format_context(200000) == "200K");
  CHECK(format_operations(1.5e12) == "1.50 TFLOP");
  CHECK(format_operations(123.4e15) == "123 PFLOP");
  CHECK(format_operations(12) == "12.0 FLOP");
  // DeepSeek-V3.2's indexer (64 heads x 128, top-2048, 61 layers) at 128K tokens: ~8.59e9 pairs.
  IndexerCostModel v32{61, 64, 128, 2048};
  double per_layer = indexer_layer_operations(v32, 131072);
  CHECK(std::abs(per_layer / (causal_pairs(131072) * (64 * 128 * 2 + 11)) - 1.0) < 1e-12);
}

TEST_CASE("progress bar with rate and ETA fits the terminal and logs get plain lines", "[report][progress]") {
  ProgressState state{"step 3/5 candidate 2/4 (layer 7) best 3.141593", 12, 32, "sequences", 4.0, 65.0};
  CHECK(progress_eta_seconds(state) == 5.0);
  std::string line = progress_bar_line(state, 100);
  CHECK(line.find("12/32 sequences") != std::string::npos);
  CHECK(line.find("4.0/s") != std::string::npos);
  CHECK(line.find("ETA 5.0s") != std::string::npos);
  CHECK(line.find("[1m05s]") != std::string::npos);
  CHECK(line.find("███████▌") != std::string::npos);  // 12/32 of 20 cells = 7.5
  // Narrow terminals shorten the label, never the numbers.
  std::string narrow = progress_bar_line(state, 70);
  int columns = 0;
  for (unsigned char c : narrow) columns += (c & 0xC0) != 0x80;
  CHECK(columns <= 69);
  CHECK(narrow.find("12/32 sequences") != std::string::npos);
  CHECK(narrow.find("…") != std::string::npos);
  ProgressState unknown{"load", 0, 10, "", 0.0, 1.0};
  CHECK(progress_bar_line(unknown, 100).find("ETA ?") != std::string::npos);
  CHECK(progress_plain_line(state) == "step 3/5 candidate 2/4 (layer 7) best 3.141593: 12/32 sequences (37%), "
                                      "4.0 sequences/s, ETA 5.0s, elapsed 1m05s");
  ProgressState done{"all-F forward", 32, 32, "sequences", 8.0, 4.0};
  CHECK(progress_plain_line(done).find("ETA") == std::string::npos);
  CHECK(progress_bar_line(done, 100).find("████████████████████") != std::string::npos);
}

TEST_CASE("progress is silent when quiet and short in logs and clears its live line", "[report][progress]") {
  auto captured = [](Progress::Mode mode, const std::function<void(Progress&)>& work) {
    std::FILE* file = std::tmpfile();
    {
      Progress progress(mode, file);
      work(progress);
    }
    std::rewind(file);
    std::string text;
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, file)) text.append(buffer, n);
    std::fclose(file);
    return text;
  };
  auto many_short_stages = [](Progress& progress) {
    for (int stage = 0; stage < 50; ++stage) {
      for (int i = 1; i <= 4; ++i) progress.update("candidate " + std::to_string(stage), i, 4, "sequences");
    }
    progress.message("step 1: layer 3 -> S");
  };
  CHECK(captured(Progress::Mode::Quiet, many_short_stages).empty());
  // Fast stages in a log: no line per stage, only the messages.
  CHECK(captured(Progress::Mode::PlainLines, many_short_stages) == "step 1: layer 3 -> S\n");
  std::string live = captured(Progress::Mode::LiveBar, many_short_stages);
  CHECK(live.find("candidate 0") != std::string::npos);
  CHECK(live.find("\r\033[Kstep 1: layer 3 -> S\n") != std::string::npos);
  // The last stage's bar is cleared when the progress ends.
  std::string ended = captured(Progress::Mode::LiveBar, [](Progress& progress) { progress.update("x", 1, 1, "items"); });
  CHECK(ended.size() >= 4);
  CHECK(ended.substr(ended.size() - 4) == "\r\033[K");
}
