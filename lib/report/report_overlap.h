// The files of the overlap report (`indexcache-overlap --out-dir`): overlap.json (everything),
// overlap-<domain>.csv and overlap-<domain>.svg per domain and for all data, and report.html,
// which shows the heatmaps, an adjacent-overlap chart per domain, the per-layer table and what
// model and data were measured. Numbers in the HTML come from the same report as the JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "overlap_result.h"
#include "svg_document.h"

namespace indexcache {

// The layer x layer heatmap of one group.
SvgDocument overlap_heatmap(const OverlapReport& report, const DomainOverlap& group);

// Overlap of each layer with the one before it; for all data, every domain's line is drawn too.
SvgDocument adjacent_overlap_chart(const OverlapReport& report, const DomainOverlap& group);

// report.html. `json` is overlap_json(report, session, true): the model and data description.
std::string overlap_report_html(const OverlapReport& report, const nlohmann::ordered_json& json);

// Writes every file as one ReportFolder (report_output_dir.h: a temporary folder renamed into
// place, or into an --out-dir that holds other files one finished file at a time, so a failure
// leaves no partial report) and returns the path of report.html.
// The files an overlap report writes (report.html, overlap.json, overlap-<domain>.csv/.svg): a
// folder holding nothing else is an older report, which a new one replaces as a whole.
bool is_overlap_report_file(const std::string& name);

std::string write_overlap_report(const std::string& out_dir, const OverlapReport& report,
                                 const nlohmann::ordered_json& json);

}  // namespace indexcache
