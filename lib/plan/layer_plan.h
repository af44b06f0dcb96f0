// The layer plan: the search's result as a YAML file that serving stacks consume
// (format indexcache-layer-plan/1). Field order is fixed; everything that changes between two
// runs of the same search (time, machine) sits under `volatile:` so comparisons can skip it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "data_source.h"
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
  std::string name;  // "index_topk_freq=N" or "evenly-spaced"
  LayerPattern pattern;
  double loss = 0.0;
};

struct LayerPlan {
  // model
  std::string model_type;
  std::vector<std::string> architectures;
  int64_t num_hidden_layers = 0;
  int64_t index_topk = 0;
  std::string model_path;
  std::string config_sha256;
  std::vector<TensorFingerprint> indexer_tensors;  // includes FP8 scale tensors

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

// Reads and checks a plan file: schema (every field present with the right type), the pattern
// (length num_hidden_layers, only F/S, layer 0 F) and its consistency with full_layers, kept
// and total. Throws InputError naming the file and the field.
LayerPlan read_plan(const std::string& path);

// Pipeline-parallel stages: every stage's first layer must be F (vLLM requires it). Returns an
// empty string when the pattern satisfies them, else the first violating stage.
std::string check_pp_stages(const LayerPattern& pattern, const std::vector<int64_t>& stage_starts);

}  // namespace indexcache
