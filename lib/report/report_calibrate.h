// The search report of `indexcache-calibrate`, written next to the layer plan after it: what
// the greedy search traded away (loss against the number of indexers kept, with the uniform
// patterns for comparison), the chosen pattern as a strip of F/S cells, the plan's loss on each
// domain against all-F (held-out data where there is some), and the projected indexer cost
// saved at long contexts from a cost model (indexer_cost.h). Files: report.html (self-contained),
// trajectory.svg, pattern.svg, domain-loss.svg and report.json (the numbers behind the page).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "indexer_cost.h"
#include "layer_plan.h"
#include "report_domain_loss.h"
#include "svg_document.h"

namespace indexcache {

inline constexpr const char* kSearchReportFormat = "indexcache-search-report/1";

struct SearchReport {
  std::string plan_path;
  LayerPlan plan;
  DomainLossReport domain_losses;
  IndexerCostModel cost_model;
  std::vector<IndexerCostProjection> cost;
};

// The report folder: `report_dir` when given, else "<plan folder>/<plan stem>-report".
std::string search_report_dir(const std::string& plan_path, const std::string& report_dir);

SvgDocument trajectory_chart(const LayerPlan& plan);
SvgDocument pattern_strip(const LayerPlan& plan);
SvgDocument domain_loss_chart(const DomainLossReport& losses);

nlohmann::ordered_json search_report_json(const SearchReport& report);
std::string search_report_html(const SearchReport& report);

// The files a search report writes (report.html, report.json and the three SVGs): a folder
// holding nothing else is an older report, which a new one replaces as a whole.
bool is_search_report_file(const std::string& name);

// Writes the files into `directory` as one ReportFolder (report_output_dir.h: a temporary folder
// renamed into place, so a failure leaves no partial folder) and returns report.html's path.
std::string write_search_report(const std::string& directory, const SearchReport& report);

}  // namespace indexcache
