// The layer plan: the search's result as a YAML file that serving stacks consume
// (format indexcache-layer-plan/1). Field order is fixed; everything that changes between two
// runs of the same search (time, machine) sits under `volatile:` so comparisons can skip it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "data_source.h"
#include "excluded_layer.h"
#include "layer_pattern.h"
#include "search_step.h"
#include "serving_engines.h"

namespace indexcache {

inline constexpr const char* kPlanFormat = "indexcache-layer-plan/1";

// One indexer tensor as stored: what a plan is matched against.
struct TensorFingerprint {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string sha256;  // of the stored bytes
  bool operator==(const TensorFingerprint& other) const {
    return name == other.name && dtype == other.dtype && shape == other.shape && sha256 == other.sha256;
  }
};

struct UniformPattern {
  // "index_topk_freq=N offset=O" (the engines' schedule with both numbers, docs/SERVING.md) or
  // "evenly-spaced"; plans written before offsets were named say "index_topk_freq=N" (offset 2).
  std::string name;
  LayerPattern pattern;
  double loss = 0.0;
};

// The hub id a model was named by (`--model org/name@revision`), resolved from the local Hugging
// Face cache when the plan was made.
struct ModelHub {
  std::string id;        // "org/name"
  std::string revision;  // as asked; "main" when none was given
  std::string commit;    // the snapshot's commit hash
};

struct LayerPlan {
  // model
  std::string model_type;
  std::vector<std::string> architectures;
  int64_t num_hidden_layers = 0;
  int64_t index_topk = 0;
  // The model directory: relative to the plan file's folder when it lies below it, else as given
  // (record_paths_relative_to); for a hub model its id (and @revision).
  std::string model_path;
  std::optional<ModelHub> model_hub;
  std::string config_sha256;         // of config.json's bytes
  std::string config_fields_sha256;  // of its fields without the pattern ones (plan_fingerprint.h); "" in older plans
  std::vector<TensorFingerprint> indexer_tensors;  // includes FP8 scale tensors
  // Layers not searched (fixed S, no indexer, MTP), ascending; empty in plans written before it.
  std::vector<ExcludedLayer> excluded_layers;

  LayerPattern pattern;

  // calibration
  std::vector<std::string> data_specs;
  std::string split = "calibration";
  int64_t seq_len = 0;
  int64_t num_samples = 0;
  uint64_t seed = 0;
  int64_t sequences = 0;
  int64_t tokens = 0;
  std::vector<DataSource> sources;

  // search
  std::string method = "greedy";
  int64_t target_kept = 0;
  std::optional<double> keep_fraction;
  std::optional<double> max_loss_increase;
  std::vector<int64_t> pp_stages;
  std::string stop_rule;
  std::string dtype;
  std::string indexer_precision = "model";
  double baseline_loss = 0.0;
  double final_loss = 0.0;
  std::vector<SearchStep> trajectory;  // candidates are not stored in the plan
  std::optional<SearchStep> stopped_at;
  std::vector<UniformPattern> uniform;
  int64_t layer_forwards = 0;
  int64_t naive_layer_forwards = 0;
  std::string tool_version;

  // volatile
  std::string created;
  double wall_seconds = 0.0;
  std::string device;
  int64_t layer_forwards_run = 0;

  std::vector<int64_t> full_layers() const { return pattern.full_layers(); }
  int64_t kept() const { return pattern.kept(); }
};

std::string plan_to_yaml(const LayerPlan& plan);

// Reads and checks a plan file: schema (every field present with the right type; model.hub and
// model.config_fields_sha256 may be absent, as in plans written before them), the pattern (length
// num_hidden_layers, only F/S, layer 0 F) and every field derived from it or from the search
// (check_plan_consistency, and the `serving` strings, relative_increase, full_layers, kept and
// total as plan_to_yaml would write them). Throws InputError naming the file and the field.
LayerPlan read_plan(const std::string& path);

// The checks of read_plan that need only the plan's values: the trajectory is a chain of single
// F -> S steps from all-F ending in `pattern`, final_loss is its last loss (baseline_loss when
// empty), the stop rule holds (target-kept: kept == target_kept; no-candidates: only layer 0 and
// pinned layers are F; max-loss-increase: stopped_at is the next step and exceeds the limit),
// target_kept follows from keep_fraction, pipeline-stage starts are F, the uniform patterns are
// what their names say with the plan's F count, and calibration.sequences/tokens are the sums
// over the sources. Throws InputError(path, "<field> <problem>").
void check_plan_consistency(const LayerPlan& plan, const std::string& path);

// --keep FRACTION for a model of `layers` layers: max(1, round(FRACTION x layers)), halves up, with
// FRACTION as a plan prints it (10 significant digits), so the search and a plan read back agree.
int64_t kept_for_fraction(double fraction, int64_t layers);

// Where the plan's search started: every layer F except the fixed-S ones in excluded_layers.
LayerPattern search_start_pattern(const LayerPlan& plan);

// Portable plans (docs/PLAN.md "Paths"). A path below the folder of the plan file at `plan_path`
// is recorded relative to that folder; an absolute path outside it as given; a relative path
// outside it made absolute (relative paths in a plan are read against the plan's folder).
std::string path_for_plan(const std::string& path, const std::string& plan_path);
// A recorded path as a path to open: relative ones joined to the plan file's folder.
std::string path_from_plan(const std::string& recorded, const std::string& plan_path);
// A --data value or recorded calibration.data entry that is a bundled set name (no extension,
// no '/': the data wing's rule), not a path.
bool is_bundled_set_name(const std::string& spec);
// Applies path_for_plan to the model path (unless the model is a hub id), the data specs that are
// files and the sources' paths; call before writing the plan to `plan_path`.
void record_paths_relative_to(LayerPlan& plan, const std::string& plan_path);

// Pipeline-parallel stages: every stage's first layer must be F (vLLM requires it). Returns an
// empty string when the pattern satisfies them, else the first violating stage.
std::string check_pp_stages(const LayerPattern& pattern, const std::vector<int64_t>& stage_starts);

}  // namespace indexcache
