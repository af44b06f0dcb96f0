// `indexcache-overlap`: the all-F forward over the calibration set, accumulating the cross-layer
// overlap of the top-k selections per calibration domain and for all data together, and its
// result (report/overlap_result.h: its JSON and terminal summaries; report_overlap.h: the files).
#pragma once

#include <string>
#include <vector>

#include "progress.h"
#include "calibration_data.h"
#include "model.h"
#include "overlap_result.h"

namespace indexcache {

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

// `options` must have passed check_overlap_options and apply_layer_range (or leave the range
// at its default).
// The all-F forward of `model` over `data`, one sequence at a time, accumulating the overlap per
// calibration domain and for all data together.
OverlapReport measure_overlap(DsaModel& model, const CalibrationSet& data, const OverlapOptions& options,
                              Progress& progress);

}  // namespace indexcache
