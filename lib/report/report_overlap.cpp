#include "report_overlap.h"

#include <algorithm>

#include "atomic_file.h"
#include "file_system.h"
#include "report_csv.h"
#include "report_html.h"
#include "report_output_dir.h"
#include "svg_colour.h"
#include "svg_heatmap.h"
#include "svg_line_chart.h"

namespace indexcache {
namespace {

std::string group_label(const DomainOverlap& group) { return group.name == "all" ? "all data" : group.name; }

std::string layer_span(const OverlapReport& report) {
  return "layers " + std::to_string(report.first_layer) + "–" + std::to_string(report.last_layer);
}

ChartSeries adjacent_series(const OverlapReport& report, const DomainOverlap& group, const std::string& colour) {
  ChartSeries series;
  series.name = group_label(group);
  series.colour = colour;
  const std::vector<double>& adjacent = group.statistics.adjacent;
  for (std::size_t i = 0; i < adjacent.size(); ++i) {
    int64_t layer = report.first_layer + static_cast<int64_t>(i) + 1;
    series.points.push_back({static_cast<double>(layer), adjacent[i],
                             group_label(group) + ": layer " + std::to_string(layer) + " vs " +
                                 std::to_string(layer - 1) + ": " + fixed_number(adjacent[i], 4)});
  }
  return series;
}

std::string blocks_phrase(const std::vector<OverlapBlock>& blocks) {
  if (blocks.empty()) return "none";
  std::string text;
  for (const OverlapBlock& block : blocks) {
    text += (text.empty() ? "" : ", ") + std::to_string(block.first) + "–" + std::to_string(block.last) + " (min " +
            fixed_number(block.min_overlap, 3) + ")";
  }
  return text;
}

// The block (of all data) that holds `layer`, as "a–b", or "" when none.
std::string block_of(const std::vector<OverlapBlock>& blocks, int64_t layer) {
  for (const OverlapBlock& block : blocks) {
    if (layer >= block.first && layer <= block.last) return std::to_string(block.first) + "–" + std::to_string(block.last);
  }
  return "";
}

std::string text_of(const nlohmann::ordered_json& json, const char* key) {
  if (!json.contains(key) || json[key].is_null()) return "";
  return json[key].is_string() ? json[key].get<std::string>() : json[key].dump();
}

void describe_run(HtmlReport& page, const OverlapReport& report, const nlohmann::ordered_json& json) {
  page.heading(2, "Model and data");
  page.facts({{"model", text_of(json, "model")},
              {"model type", text_of(json, "model_type")},
              {"decoder layers", text_of(json, "num_hidden_layers") + " (measured: " + layer_span(report) + ")"},
              {"index_topk (k)", std::to_string(report.index_topk)},
              {"device, dtype", text_of(json, "device") + ", " + text_of(json, "dtype")},
              {"sequences, tokens", text_of(json, "sequences") + " sequences, " + text_of(json, "tokens") + " tokens"},
              {"measured queries", std::to_string(report.all().measured_queries) + " (" +
                                       (report.query_stride == 1 ? std::string("every query")
                                                                 : "query stride " + std::to_string(report.query_stride)) +
                                       (report.max_queries > 0 ? ", at most " + std::to_string(report.max_queries) + " per sequence" : "") +
                                       ")"},
              {"chance overlap", fixed_number(report.all().chance_overlap, 4) +
                                     " (random top-k choices on the same queries: mean of k / (t+1))"},
              {"all-F loss", fixed_number(report.baseline_loss, 6) + " (mean next-token NLL)"},
              {"block threshold", fixed_number(report.block_threshold, 2)},
              {"time", fixed_number(report.seconds, 1) + " s"}});
  std::vector<std::vector<std::string>> rows;
  for (const auto& source : json.at("data")) {
    std::string sha = source.value("sha256", "");
    rows.push_back({table_cell(source.value("domain", "")), table_cell(source.value("spec", "")),
                    table_cell(source.value("path", "")), table_cell(sha.substr(0, 16), " class=\"mono\""),
                    table_cell(source.at("documents").dump(), " class=\"num\""),
                    table_cell(source.at("tokens").dump(), " class=\"num\""),
                    table_cell(source.at("sequences").dump(), " class=\"num\"")});
  }
  page.table({"domain", "data", "file", "sha256 (first 16)", "documents", "tokens", "sequences"}, rows);
}

void summary_table(HtmlReport& page, const OverlapReport& report) {
  std::vector<std::vector<std::string>> rows;
  for (const DomainOverlap& group : report.domains) {
    const std::vector<double>& adjacent = group.statistics.adjacent;
    double mean = 0.0;
    for (double value : adjacent) mean += value;
    mean /= static_cast<double>(std::max<std::size_t>(1, adjacent.size()));
    auto lowest = std::min_element(adjacent.begin(), adjacent.end());
    int64_t lowest_layer = report.first_layer + static_cast<int64_t>(lowest - adjacent.begin()) + 1;
    std::string data = attribute("data-domain", group.name);
    rows.push_back({table_cell(group_label(group)), table_cell(std::to_string(group.sequences), " class=\"num\""),
                    table_cell(std::to_string(group.measured_queries), " class=\"num\"" + data + " data-field=\"measured\""),
                    number_cell(group.chance_overlap, 4, data + " data-field=\"chance\""),
                    number_cell(mean, 4, data + " data-field=\"adjacent-mean\""),
                    number_cell(lowest == adjacent.end() ? 0.0 : *lowest, 4, data + " data-field=\"adjacent-min\""),
                    table_cell(std::to_string(lowest_layer), " class=\"num\""),
                    table_cell(blocks_phrase(group.statistics.blocks))});
  }
  page.table({"domain", "sequences", "measured queries", "chance level", "adjacent mean", "adjacent min", "at layer",
              "blocks (pairwise overlap ≥ " + fixed_number(report.block_threshold, 2) + ")"},
             rows);
}

void per_layer_table(HtmlReport& page, const OverlapReport& report) {
  std::vector<std::string> header = {"layer"};
  for (const DomainOverlap& group : report.domains) header.push_back("vs previous: " + group_label(group));
  header.insert(header.end(), {"most similar earlier layer", "its overlap", "block"});
  const DomainOverlap& all = report.all();
  std::vector<std::vector<std::string>> rows;
  for (int64_t i = 0; i < report.layers(); ++i) {
    const int64_t layer = report.first_layer + i;
    std::vector<std::string> row = {table_cell(std::to_string(layer), " class=\"num\"")};
    for (const DomainOverlap& group : report.domains) {
      std::string data = attribute("data-domain", group.name) + " data-layer=\"" + std::to_string(layer) + "\"";
      row.push_back(i == 0 ? table_cell("–", " class=\"num\"")
                           : number_cell(group.statistics.adjacent[i - 1], 4, data + " data-field=\"adjacent\""));
    }
    const EarlierNeighbour& nearest = all.statistics.nearest[i];
    std::string data = " data-layer=\"" + std::to_string(layer) + "\"";
    row.push_back(nearest.earlier ? table_cell(std::to_string(*nearest.earlier), " class=\"num\"" + data + " data-field=\"nearest-layer\"")
                                  : table_cell("–", " class=\"num\""));
    row.push_back(nearest.earlier ? number_cell(nearest.overlap, 4, data + " data-field=\"nearest-overlap\"")
                                  : table_cell("–", " class=\"num\""));
    row.push_back(table_cell(block_of(all.statistics.blocks, layer)));
    rows.push_back(row);
  }
  page.table(header, rows, " id=\"per-layer\"");
}

void definitions(HtmlReport& page, const OverlapReport& report) {
  page.heading(2, "How to read this");
  page.paragraph("Overlap of layers a and b: for each measured query position t (one with more than k = " +
                 std::to_string(report.index_topk) +
                 " causal candidates), the fraction of the k tokens chosen by layer a's lightning indexer that layer "
                 "b's indexer also chooses, |A_t ∩ B_t| / k, averaged over all measured queries of all sequences. "
                 "1 means the two layers pick the same tokens; a layer whose indexer is dropped (S) reuses the "
                 "selection of the nearest kept (F) layer before it, so a high overlap with that layer means little "
                 "is lost. Colours use one fixed 0–1 scale in every heatmap. Read the values against chance: "
                 "two layers picking k of the t+1 candidates at random would overlap k / (t+1) on average (the "
                 "red dashed line in the line charts, " + fixed_number(report.all().chance_overlap, 4) +
                 " for these queries), which is high when sequences are not much longer than k.");
  page.paragraph("Block: layers first–last (at least two) whose pairwise overlaps are all at least the threshold. "
                 "Blocks are found left to right: a block starts at the first layer not in an earlier block and grows "
                 "while the next layer's overlap with every layer already in it is at least the threshold. Within a "
                 "block, one indexer could serve all layers with little change in the selected tokens.");
}

}  // namespace

SvgDocument overlap_heatmap(const OverlapReport& report, const DomainOverlap& group) {
  HeatmapSpec spec;
  spec.title = group_label(group) + ": top-k overlap, " + layer_span(report);
  spec.values = group.overlap;
  spec.first_layer = report.first_layer;
  return render_heatmap(spec);
}

SvgDocument adjacent_overlap_chart(const OverlapReport& report, const DomainOverlap& group) {
  LineChartSpec spec;
  spec.title = group_label(group) + ": overlap with the previous layer";
  spec.x_label = "layer l (overlap with layer l-1)";
  spec.y_label = "overlap";
  spec.width = 560;  // next to a heatmap of the widest size on a 1400-pixel page
  spec.y_low = 0.0;
  spec.y_high = 1.0;
  spec.references.push_back({report.block_threshold, "threshold " + fixed_number(report.block_threshold, 2)});
  if (group.measured_queries > 0) {
    spec.references.push_back({group.chance_overlap, "chance " + fixed_number(group.chance_overlap, 2), "#c0392b"});
  }
  if (group.name == "all" && report.domains.size() > 1) {
    for (std::size_t i = 1; i < report.domains.size(); ++i) {
      ChartSeries series = adjacent_series(report, report.domains[i], series_colour(static_cast<int>(i)));
      series.marker_radius = 2.5;
      spec.series.push_back(series);
    }
  }
  // A domain keeps its colour in every chart: its position in the report's list of groups.
  const auto position = std::find_if(report.domains.begin(), report.domains.end(),
                                     [&](const DomainOverlap& other) { return other.name == group.name; }) -
                        report.domains.begin();
  spec.series.push_back(adjacent_series(report, group, group.name == "all" ? "#222222" : series_colour(static_cast<int>(position))));
  return render_line_chart(spec);
}

std::string overlap_report_html(const OverlapReport& report, const nlohmann::ordered_json& json) {
  HtmlReport page("indexcache overlap report: " + text_of(json, "model"));
  page.heading(1, "Top-k overlap across layers");
  page.paragraph(text_of(json, "model") + " · " + text_of(json, "model_type") + " · " + layer_span(report) + " of " +
                     std::to_string(report.model_layers) + " · k = " + std::to_string(report.index_topk),
                 "subtitle");
  if (report.all().measured_queries == 0) {
    page.paragraph("No query had more than k causal candidates, so nothing was measured: use longer sequences "
                   "(--seq-len). The matrices below are all zero.", "note");
  }
  page.heading(2, "Summary");
  summary_table(page, report);
  // All data first, then its per-layer table, then each domain: the table is about all data
  // (nearest earlier layer, blocks) and holds every domain's adjacent overlap for comparison.
  for (std::size_t i = 0; i < report.domains.size(); ++i) {
    const DomainOverlap& group = report.domains[i];
    page.heading(2, group_label(group) + " (" + std::to_string(group.sequences) + " sequences, " +
                        std::to_string(group.measured_queries) + " measured queries)");
    page.figures({overlap_heatmap(report, group).element(), adjacent_overlap_chart(report, group).element()});
    page.paragraph("Blocks: " + blocks_phrase(group.statistics.blocks) + ". Files: overlap-" + group.file_stem +
                       ".csv, overlap-" + group.file_stem + ".svg.",
                   "small");
    if (i == 0) {
      page.heading(2, "Per layer");
      per_layer_table(page, report);
    }
  }
  describe_run(page, report, json);
  definitions(page, report);
  return page.document();
}

std::string write_overlap_report(const std::string& out_dir, const OverlapReport& report,
                                 const nlohmann::ordered_json& json) {
  ReportFolder folder(out_dir, "--out-dir", is_overlap_report_file);
  for (const DomainOverlap& group : report.domains) {
    const std::string stem = "overlap-" + group.file_stem;
    folder.write(stem + ".csv", matrix_csv(group.overlap, report.first_layer));
    folder.write(stem + ".svg", overlap_heatmap(report, group).file_text());
  }
  folder.write("overlap.json", json.dump(1) + "\n");
  folder.write("report.html", overlap_report_html(report, json));
  folder.commit();
  return folder.final_path("report.html");
}

bool is_overlap_report_file(const std::string& name) {
  if (name == "report.html" || name == "overlap.json") return true;
  const std::string extension = file_extension(name);
  return name.rfind("overlap-", 0) == 0 && (extension == ".csv" || extension == ".svg");
}

}  // namespace indexcache
