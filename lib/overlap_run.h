// `indexcache-overlap`: the all-F forward over the calibration set, accumulating the cross-layer
// overlap of the top-k selections per calibration domain and for all data together, and its
// JSON and terminal summaries. The files of the report (CSV, SVG, HTML) are report_overlap.h.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "progress.h"
#include "report_overlap_statistics.h"
#include "session.h"

namespace indexcache {

inline constexpr const char* kOverlapFormat = "indexcache-overlap/1";

struct OverlapOptions {
  int64_t query_stride = 1;  // measure every N-th query (t >= k)
  int64_t max_queries = 0;   // at most this many measured queries per sequence, evenly spread; 0: all
  int64_t first_layer = 0;   // the layers of the matrices (inclusive)
  int64_t last_layer = -1;   // -1: the model's last layer
  double block_threshold = 0.7;
};

// Throws InputError (naming the option) for a stride or max-queries below 1, or a block
// threshold outside [0, 1]. Needs no model, so tools call it before any work.
void check_overlap_options(const OverlapOptions& options);

// "--layers a-b" (or "a-b" with a == b not allowed: a matrix needs two layers) for a model of
// `layers` layers: sets first_layer / last_layer. Throws InputError for a malformed range or
// one outside the model.
void apply_layer_range(const std::string& text, int64_t layers, OverlapOptions& options);

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

// `options` must have passed check_overlap_options and apply_layer_range (or leave the range
// at its default).
OverlapReport measure_overlap(Session& session, const OverlapOptions& options, Progress& progress);

// Everything, machine-readable (format indexcache-overlap/1). The top level keeps the fields of
// the all-data matrix ("layers", "index_topk", "measured_queries", "overlap", "adjacent", ...)
// next to the session description; "domains" holds every group, all data first. With
// `with_files`, each group names its CSV and SVG file and the report names report.html.
nlohmann::ordered_json overlap_json(const OverlapReport& report, const Session& session, bool with_files);

// A compact table per domain, one strip of adjacent overlaps per domain in block characters,
// and the blocks of all data.
std::string overlap_summary(const OverlapReport& report);

// One block character per value in [0, 1], from ' ' (0) to '█' (1).
std::string block_strip(const std::vector<double>& values);

}  // namespace indexcache
