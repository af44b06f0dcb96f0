// What `indexcache-overlap` measured: the cross-layer overlap of the top-k selections per
// calibration domain and for all data, with what the report reads off each matrix, and its JSON
// and terminal forms. The overlap wing fills it; the report wing renders it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "report_overlap_statistics.h"

namespace indexcache {

inline constexpr const char* kOverlapFormat = "indexcache-overlap/1";

// The overlap of one group of sequences: a calibration domain, or all data ("all").
struct DomainOverlap {
  std::string name;
  std::string file_stem;  // overlap-<file_stem>.csv / .svg
  int64_t sequences = 0;
  int64_t measured_queries = 0;
  // What two layers choosing k of the t+1 causal candidates at random would overlap, averaged
  // over the measured queries (k / (t+1) each): the floor to read the matrix against. On short
  // sequences it is high (about 0.55 for k = 128 and 384 tokens).
  double chance_overlap = 0.0;
  std::vector<std::vector<double>> overlap;  // [layers][layers], layers first_layer..last_layer
  OverlapStatistics statistics;
};

struct OverlapReport {
  int64_t model_layers = 0;
  int64_t first_layer = 0;
  int64_t last_layer = 0;
  int64_t index_topk = 0;
  int64_t query_stride = 1;
  int64_t max_queries = 0;
  double block_threshold = 0.7;
  double baseline_loss = 0.0;
  // [0] is all data; then one entry per calibration domain when the data has more than one.
  std::vector<DomainOverlap> domains;
  double seconds = 0.0;

  int64_t layers() const { return last_layer - first_layer + 1; }
  const DomainOverlap& all() const { return domains.front(); }
};

// Everything, machine-readable (format indexcache-overlap/1). The top level keeps the fields of
// the all-data matrix ("layers", "index_topk", "measured_queries", "overlap", "adjacent", ...)
// next to the session description; "domains" holds every group, all data first. With
// `with_files`, each group names its CSV and SVG file and the report names report.html.
// `description` (the app's model and data description) is copied in first.
nlohmann::ordered_json overlap_json(const OverlapReport& report, const nlohmann::ordered_json& description,
                                    bool with_files);

// A compact table per domain, one strip of adjacent overlaps per domain in block characters,
// and the blocks of all data.
std::string overlap_summary(const OverlapReport& report);

// One block character per value in [0, 1], from ' ' (0) to '█' (1).
std::string block_strip(const std::vector<double>& values);

}  // namespace indexcache
