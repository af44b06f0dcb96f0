#include "report_calibrate.h"

#include <algorithm>
#include <cmath>

#include "atomic_file.h"
#include "file_system.h"
#include "layer_pattern.h"
#include "report_html.h"
#include "report_output_dir.h"
#include "svg_bar_chart.h"
#include "svg_colour.h"
#include "svg_line_chart.h"
#include "svg_pattern_strip.h"

namespace indexcache {
namespace {

const char* kCandidateColour = "#7d8894";
const char* kStoppedColour = "#cc0000";

std::string percent_change(double loss, double baseline) {
  if (!(baseline > 0)) return "n/a";
  double change = 100.0 * (loss / baseline - 1.0);
  return (change >= 0 ? "+" : "") + fixed_number(change, 3) + "%";
}

std::string step_title(const LayerPlan& plan, std::size_t index, const SearchStep& step) {
  return "step " + std::to_string(index + 1) + ": layer " + std::to_string(step.removed) + " to S, loss " +
         fixed_number(step.loss, 6) + " (" + percent_change(step.loss, plan.baseline_loss) + "), " + step.pattern.text();
}

// The y range of the trajectory chart: the trajectory and the limits decide it, and the uniform
// patterns and candidates that lie near it; losses far above (a layer whose indexer matters a
// lot, or index_topk_freq on a model that needs many indexers) are left out of the range so they
// do not flatten everything else (uniform patterns are then drawn at the top edge, see
// trajectory_chart). Returns how many candidates were left out.
int trajectory_range(const LayerPlan& plan, double& low, double& high) {
  low = high = plan.baseline_loss;
  auto include = [&](double value) {
    low = std::min(low, value);
    high = std::max(high, value);
  };
  for (const SearchStep& step : plan.trajectory) include(step.loss);
  if (plan.stopped_at) include(plan.stopped_at->loss);
  // Uniform patterns within three times the search's own span above it stay in range.
  const double search_span = std::max(high - low, std::abs(high) * 1e-3 + 1e-9);
  const double search_high = high;
  for (const UniformPattern& uniform : plan.uniform) {
    if (uniform.loss <= search_high + 3.0 * search_span) include(uniform.loss);
  }
  const double span = std::max(high - low, std::abs(high) * 1e-3 + 1e-9);
  const double cap = high + span * 0.6;
  // A loose --max-loss-increase limit far above everything would flatten the chart too.
  if (plan.max_loss_increase && plan.baseline_loss * (1.0 + *plan.max_loss_increase) <= cap) {
    include(plan.baseline_loss * (1.0 + *plan.max_loss_increase));
  }
  int left_out = 0;
  for (const SearchStep& step : plan.trajectory) {
    for (const CandidateLoss& candidate : step.candidates) {
      if (candidate.loss > cap) {
        ++left_out;
      } else {
        include(candidate.loss);
      }
    }
  }
  const double pad = std::max(high - low, span) * 0.08;
  low -= pad;
  high += pad;
  return left_out;
}

ChartSeries candidate_series(const LayerPlan& plan, double high) {
  ChartSeries series{"other candidates", kCandidateColour, {}, false, "circle", 2.5, 0.7, true};
  const int64_t layers = plan.num_hidden_layers;
  for (std::size_t i = 0; i < plan.trajectory.size(); ++i) {
    const SearchStep& step = plan.trajectory[i];
    for (const CandidateLoss& candidate : step.candidates) {
      if (candidate.layer == step.removed || candidate.loss > high) continue;
      series.points.push_back({static_cast<double>(layers - static_cast<int64_t>(i) - 1), candidate.loss,
                               "step " + std::to_string(i + 1) + " candidate: layer " + std::to_string(candidate.layer) +
                                   " to S would give " + fixed_number(candidate.loss, 6)});
    }
  }
  return series;
}

std::vector<std::pair<std::string, std::string>> plan_facts(const SearchReport& report) {
  const LayerPlan& plan = report.plan;
  std::string data;
  for (const std::string& spec : plan.data_specs) data += (data.empty() ? "" : ", ") + spec;
  std::string stop = plan.stop_rule;
  if (plan.max_loss_increase) stop += " (max loss increase " + fixed_number(100.0 * *plan.max_loss_increase, 2) + "%)";
  return {{"plan file", report.plan_path},
          {"model", plan.model_path + " (" + plan.model_type + ", " + std::to_string(plan.num_hidden_layers) +
                        " layers, index_topk " + std::to_string(plan.index_topk) + ")"},
          {"pattern", plan.pattern.text()},
          {"indexers kept", std::to_string(plan.kept()) + " of " + std::to_string(plan.num_hidden_layers)},
          {"calibration loss", fixed_number(plan.final_loss, 6) + " (all F " + fixed_number(plan.baseline_loss, 6) + ", " +
                                   percent_change(plan.final_loss, plan.baseline_loss) + ")"},
          {"stop rule", stop},
          {"calibration data", data + " (split " + plan.split + ", " + std::to_string(plan.sequences) + " sequences, " +
                                   std::to_string(plan.tokens) + " tokens)"},
          {"device, dtype", plan.device + ", " + plan.dtype + " (indexer precision " + plan.indexer_precision + ")"},
          {"search time", fixed_number(plan.wall_seconds, 1) + " s"}};
}

void trajectory_tables(HtmlReport& page, const LayerPlan& plan) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({table_cell("0", " class=\"num\""), table_cell("–"),
                  table_cell(std::to_string(plan.num_hidden_layers), " class=\"num\""),
                  number_cell(plan.baseline_loss, 6, " data-field=\"baseline-loss\""), table_cell("baseline"),
                  table_cell(std::string(static_cast<std::size_t>(plan.num_hidden_layers), 'F'), " class=\"mono\"")});
  for (std::size_t i = 0; i < plan.trajectory.size(); ++i) {
    const SearchStep& step = plan.trajectory[i];
    rows.push_back({table_cell(std::to_string(i + 1), " class=\"num\""),
                    table_cell(std::to_string(step.removed), " class=\"num\""),
                    table_cell(std::to_string(step.pattern.kept()), " class=\"num\""),
                    number_cell(step.loss, 6, " data-field=\"step-loss\" data-step=\"" + std::to_string(i + 1) + "\""),
                    table_cell(percent_change(step.loss, plan.baseline_loss), " class=\"num\""),
                    table_cell(step.pattern.text(), " class=\"mono\"")});
  }
  page.table({"step", "layer turned S", "kept", "loss", "vs all F", "pattern"}, rows, " id=\"trajectory\"");
  std::vector<std::vector<std::string>> uniform_rows;
  uniform_rows.push_back({table_cell("greedy (this plan)"), table_cell(std::to_string(plan.kept()), " class=\"num\""),
                          number_cell(plan.final_loss, 6, " data-field=\"final-loss\""),
                          table_cell(percent_change(plan.final_loss, plan.baseline_loss), " class=\"num\""),
                          table_cell(plan.pattern.text(), " class=\"mono\"")});
  for (const UniformPattern& uniform : plan.uniform) {
    uniform_rows.push_back({table_cell(uniform.name), table_cell(std::to_string(uniform.pattern.kept()), " class=\"num\""),
                            number_cell(uniform.loss, 6, attribute("data-name", uniform.name) + " data-field=\"uniform-loss\""),
                            table_cell(percent_change(uniform.loss, plan.baseline_loss), " class=\"num\""),
                            table_cell(uniform.pattern.text(), " class=\"mono\"")});
  }
  page.heading(3, "Against uniform patterns with the same number of indexers");
  page.table({"pattern", "kept", "loss", "vs all F", "F/S"}, uniform_rows, " id=\"uniform\"");
}

void domain_section(HtmlReport& page, const DomainLossReport& losses) {
  page.heading(2, "Loss per domain: plan against all F");
  if (!losses.note.empty()) page.paragraph(losses.note, "note");
  page.begin_row();
  page.figures({domain_loss_chart(losses).element()});
  std::vector<std::vector<std::string>> rows;
  std::vector<const DomainLoss*> entries = {&losses.all};
  for (const DomainLoss& domain : losses.domains) entries.push_back(&domain);
  for (const DomainLoss* entry : entries) {
    std::string data = attribute("data-domain", entry->domain);
    rows.push_back({table_cell(entry->domain == "all" ? "all data" : entry->domain), table_cell(entry->split),
                    table_cell(std::to_string(entry->sequences), " class=\"num\""),
                    number_cell(entry->baseline_loss, 6, data + " data-field=\"domain-baseline\""),
                    number_cell(entry->plan_loss, 6, data + " data-field=\"domain-plan\""),
                    table_cell(percent_change(entry->plan_loss, entry->baseline_loss), " class=\"num\"")});
  }
  page.table({"domain", "data", "sequences", "all F loss", "plan loss", "change"}, rows, " id=\"domains\"");
  page.end_row();
}

void cost_section(HtmlReport& page, const SearchReport& report) {
  page.heading(2, "Projected indexer cost (a model, not a measurement)");
  page.paragraph("These numbers come from a cost model written from the model's config, not from timing anything: " +
                     indexer_cost_description(report.cost_model) +
                     ". Real speed-ups also depend on kernels, memory traffic and the rest of the model "
                     "(the paper reports 1.82x prefill at 200K tokens for a 30B model keeping 1/4 of the indexers).",
                 "note");
  std::vector<std::vector<std::string>> rows;
  for (const IndexerCostProjection& row : report.cost) {
    std::string data = " data-tokens=\"" + std::to_string(row.tokens) + "\"";
    rows.push_back({table_cell(format_context(row.tokens) + " tokens"),
                    table_cell(format_operations(row.all_full), " class=\"num\"" + data + " data-field=\"cost-all-f\""),
                    table_cell(format_operations(row.plan), " class=\"num\"" + data + " data-field=\"cost-plan\""),
                    table_cell(format_operations(row.saved), " class=\"num\"" + data + " data-field=\"cost-saved\""),
                    number_cell(100.0 * row.saved_fraction, 1, data + " data-field=\"cost-saved-percent\"")});
  }
  page.table({"prefill of", "indexers, all F", "indexers, this plan", "saved", "saved %"}, rows, " id=\"cost\"");
}

void sources_section(HtmlReport& page, const LayerPlan& plan) {
  page.heading(2, "Calibration data");
  std::vector<std::vector<std::string>> rows;
  for (const DataSource& source : plan.sources) {
    rows.push_back({table_cell(source.domain), table_cell(source.spec), table_cell(source.path),
                    table_cell(source.sha256.substr(0, 16), " class=\"mono\""),
                    table_cell(std::to_string(source.tokens), " class=\"num\""),
                    table_cell(std::to_string(source.sequences), " class=\"num\"")});
  }
  page.table({"domain", "data", "file", "sha256 (first 16)", "tokens", "sequences"}, rows);
}

nlohmann::ordered_json domain_loss_json(const DomainLoss& loss) {
  return {{"domain", loss.domain},     {"split", loss.split},
          {"sequences", loss.sequences}, {"predictions", loss.predictions},
          {"baseline_loss", loss.baseline_loss}, {"plan_loss", loss.plan_loss},
          {"relative_change", loss.relative_change()}};
}

}  // namespace

std::string search_report_dir(const std::string& plan_path, const std::string& report_dir) {
  if (!report_dir.empty()) return report_dir;
  const std::string name = file_stem(plan_path) + "-report";
  return plan_path.find('/') == std::string::npos ? name : join_path(parent_directory(plan_path), name);
}

SvgDocument trajectory_chart(const LayerPlan& plan) {
  LineChartSpec spec;
  spec.title = "Calibration loss along the greedy search";
  spec.x_label = "indexers kept (F layers)";
  spec.y_label = "calibration loss";
  spec.reverse_x = true;
  spec.width = 720;
  spec.height = 340;
  double low = 0, high = 0;
  trajectory_range(plan, low, high);
  spec.y_low = low;
  spec.y_high = high;
  const int64_t layers = plan.num_hidden_layers;
  spec.series.push_back(candidate_series(plan, high));
  ChartSeries greedy{"greedy search", series_colour(0), {}, true, "circle", 4.0, 1.0, true};
  greedy.points.push_back({static_cast<double>(layers), plan.baseline_loss, "all F: loss " + fixed_number(plan.baseline_loss, 6)});
  for (std::size_t i = 0; i < plan.trajectory.size(); ++i) {
    greedy.points.push_back({static_cast<double>(layers - static_cast<int64_t>(i) - 1), plan.trajectory[i].loss,
                             step_title(plan, i, plan.trajectory[i])});
  }
  spec.series.push_back(greedy);
  const char* markers[] = {"diamond", "square"};
  for (std::size_t i = 0; i < plan.uniform.size(); ++i) {
    const UniformPattern& uniform = plan.uniform[i];
    ChartSeries series{uniform.name, series_colour(static_cast<int>(i) + 1), {}, false, markers[i % 2], 5.0, 1.0, true};
    // Far above the range: pinned to the top edge, its hover text and the table give the value.
    const bool off_scale = uniform.loss > high;
    series.points.push_back({static_cast<double>(uniform.pattern.kept()), off_scale ? high : uniform.loss,
                             uniform.name + ": loss " + fixed_number(uniform.loss, 6) + " (" +
                                 percent_change(uniform.loss, plan.baseline_loss) + "), " + uniform.pattern.text() +
                                 (off_scale ? " (above the chart's range, drawn at its top edge)" : "")});
    if (off_scale) series.name += " (above the range)";
    spec.series.push_back(series);
  }
  if (plan.stopped_at) {
    ChartSeries stopped{"next step (over the limit)", kStoppedColour, {}, false, "square", 4.0, 1.0, true};
    stopped.points.push_back({static_cast<double>(layers - static_cast<int64_t>(plan.trajectory.size()) - 1),
                              plan.stopped_at->loss, "not taken: layer " + std::to_string(plan.stopped_at->removed) +
                                                         " to S would give " + fixed_number(plan.stopped_at->loss, 6)});
    spec.series.push_back(stopped);
  }
  spec.references.push_back({plan.baseline_loss, "all F " + fixed_number(plan.baseline_loss, 4)});
  if (plan.max_loss_increase && plan.baseline_loss * (1.0 + *plan.max_loss_increase) <= high) {
    spec.references.push_back({plan.baseline_loss * (1.0 + *plan.max_loss_increase),
                               "limit +" + fixed_number(100.0 * *plan.max_loss_increase, 2) + "%", kStoppedColour});
  }
  return render_line_chart(spec);
}

SvgDocument pattern_strip(const LayerPlan& plan) {
  return render_pattern_strip(plan.pattern, "Chosen pattern: " + std::to_string(plan.kept()) + " of " +
                                                std::to_string(plan.num_hidden_layers) + " indexers kept");
}

SvgDocument domain_loss_chart(const DomainLossReport& losses) {
  BarChartSpec spec;
  spec.title = "Loss change of the plan against all F (" +
               std::string(losses.evaluated_on == "heldout" ? "held-out data" : losses.evaluated_on == "mixed"
                                                                                    ? "held-out where available"
                                                                                    : "calibration data") +
               ")";
  spec.y_label = "loss change (%)";
  std::vector<const DomainLoss*> entries = {&losses.all};
  for (const DomainLoss& domain : losses.domains) entries.push_back(&domain);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const DomainLoss& entry = *entries[i];
    spec.bars.push_back({entry.domain == "all" ? "all data" : entry.domain, 100.0 * entry.relative_change(),
                         percent_change(entry.plan_loss, entry.baseline_loss), i == 0 ? "#444444" : series_colour(0),
                         entry.domain + " (" + entry.split + ", " + std::to_string(entry.sequences) +
                             " sequences): all F " + fixed_number(entry.baseline_loss, 6) + ", plan " +
                             fixed_number(entry.plan_loss, 6)});
  }
  return render_bar_chart(spec);
}

nlohmann::ordered_json search_report_json(const SearchReport& report) {
  const LayerPlan& plan = report.plan;
  nlohmann::ordered_json trajectory = nlohmann::ordered_json::array();
  for (const SearchStep& step : plan.trajectory) {
    trajectory.push_back({{"removed", step.removed}, {"kept", step.pattern.kept()}, {"loss", step.loss}, {"pattern", step.pattern.text()}});
  }
  nlohmann::ordered_json uniform = nlohmann::ordered_json::array();
  for (const UniformPattern& item : plan.uniform) {
    uniform.push_back({{"name", item.name}, {"pattern", item.pattern.text()}, {"kept", item.pattern.kept()}, {"loss", item.loss}});
  }
  nlohmann::ordered_json domains = nlohmann::ordered_json::array();
  for (const DomainLoss& domain : report.domain_losses.domains) domains.push_back(domain_loss_json(domain));
  nlohmann::ordered_json projections = nlohmann::ordered_json::array();
  for (const IndexerCostProjection& row : report.cost) {
    projections.push_back({{"tokens", row.tokens}, {"all_full", row.all_full}, {"plan", row.plan}, {"saved", row.saved},
                           {"saved_fraction", row.saved_fraction}});
  }
  return {{"format", kSearchReportFormat},
          {"plan", report.plan_path},
          {"model", plan.model_path},
          {"num_hidden_layers", plan.num_hidden_layers},
          {"pattern", plan.pattern.text()},
          {"kept", plan.kept()},
          {"baseline_loss", plan.baseline_loss},
          {"final_loss", plan.final_loss},
          {"trajectory", trajectory},
          {"uniform", uniform},
          {"domain_losses",
           {{"evaluated_on", report.domain_losses.evaluated_on},
            {"note", report.domain_losses.note},
            {"all", domain_loss_json(report.domain_losses.all)},
            {"domains", domains}}},
          {"indexer_cost",
           {{"kind", "cost model, not a measurement"},
            {"model", indexer_cost_description(report.cost_model)},
            {"index_n_heads", report.cost_model.heads},
            {"index_head_dim", report.cost_model.head_dim},
            {"index_topk", report.cost_model.topk},
            {"projections", projections}}}};
}

std::string search_report_html(const SearchReport& report) {
  const LayerPlan& plan = report.plan;
  HtmlReport page("indexcache layer plan report: " + report.plan_path);
  page.heading(1, "Layer plan: " + std::to_string(plan.kept()) + " of " + std::to_string(plan.num_hidden_layers) +
                      " indexers kept");
  page.paragraph(plan.model_path + " · " + plan.model_type + " · calibration loss " +
                     percent_change(plan.final_loss, plan.baseline_loss) + " against all F",
                 "subtitle");
  page.figures({pattern_strip(plan).element()});
  page.facts(plan_facts(report));
  page.markup("<p class=\"small\">vLLM: <span class=\"mono\">--hf-overrides '" + xml_escape(vllm_hf_overrides(plan.pattern)) +
              "'</span><br/>SGLang: <span class=\"mono\">--json-model-override-args '" +
              xml_escape(sglang_override_args(plan.pattern)) + "'</span></p>\n");
  page.heading(2, "What the greedy search traded away");
  page.paragraph("Each step turns the F layer whose indexer matters least (lowest calibration loss when it reuses "
                 "the previous F layer's top-k) into S. Grey points are the candidates each step did not take; the "
                 "diamond and square are uniform patterns with the plan's number of indexers (one far above the search's "
                 "losses is drawn at the top edge; the table below has its loss).",
                 "small");
  page.begin_row();
  page.figures({trajectory_chart(plan).element()});
  page.begin_column();
  trajectory_tables(page, plan);
  page.end_column();
  page.end_row();
  domain_section(page, report.domain_losses);
  cost_section(page, report);
  sources_section(page, plan);
  return page.document();
}

bool is_search_report_file(const std::string& name) {
  for (const char* file : {"report.html", "report.json", "trajectory.svg", "pattern.svg", "domain-loss.svg"}) {
    if (name == file) return true;
  }
  return false;
}

std::string write_search_report(const std::string& directory, const SearchReport& report) {
  ReportFolder folder(directory, "--report-dir", is_search_report_file);
  folder.write("trajectory.svg", trajectory_chart(report.plan).file_text());
  folder.write("pattern.svg", pattern_strip(report.plan).file_text());
  folder.write("domain-loss.svg", domain_loss_chart(report.domain_losses).file_text());
  folder.write("report.json", search_report_json(report).dump(1) + "\n");
  folder.write("report.html", search_report_html(report));
  folder.commit();
  return folder.final_path("report.html");
}

}  // namespace indexcache
