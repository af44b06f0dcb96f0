// `indexcache-calibrate` search, --check, --validate and --export: everything between the
// parsed command line and the files it writes.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "layer_plan.h"
#include "indexer_fingerprint.h"
#include "plan_fingerprint.h"
#include "progress.h"
#include "session.h"

namespace indexcache {

struct SearchSettings {
  std::optional<double> keep_fraction;   // --keep
  std::optional<int64_t> keep_layers;    // --keep-layers
  std::optional<double> max_loss_increase;
  std::vector<int64_t> pp_stages;
  bool prefix_reuse = true;
  // Device memory for the prefix cache in GiB; < 0: automatic (30% of the first GPU's free
  // memory when the search starts; unlimited on the CPU).
  double prefix_cache_gib = -1.0;
};

// N from --keep/--keep-layers for a model of `layers` layers (--keep f: max(1, round(f x L)),
// halves rounding up). Throws InputError for f outside (0, 1], N outside [1, L], both or neither,
// or fewer than the layers --pp-stages pins.
int64_t resolve_target_kept(const SearchSettings& settings, int64_t layers);

// Parses "0,15,30" (--pp-stages): ascending layer indices inside the model.
std::vector<int64_t> parse_pp_stages(const std::string& text, int64_t layers);

// Run identity for the resume journal: what must match for steps to carry over.
nlohmann::json search_identity(const Session& session, const SessionOptions& options, const SearchSettings& settings,
                               int64_t target_kept);

// Runs the greedy search (resuming from `journal_path` when `resume`), evaluates the uniform
// patterns with the same count, and assembles the plan.
LayerPlan run_search(Session& session, const SessionOptions& options, const SearchSettings& settings,
                     const std::string& journal_path, bool resume, Progress& progress,
                     nlohmann::json* details = nullptr);

// The uniform patterns with `kept` F layers: index_topk_freq=N (when some N gives that count)
// and evenly spaced, with their losses.
std::vector<UniformPattern> evaluate_uniform_patterns(Session& session, int64_t kept, Progress& progress);

// Expected vs actual pattern, with a marker line under differing layers and the layers that
// changed in each direction.
std::string pattern_diff(const LayerPattern& expected, const LayerPattern& actual);

// A short human summary of a plan for the terminal.
std::string plan_summary(const LayerPlan& plan);

// Session settings recorded in a plan (for --check), with the device given on the command line.
SessionOptions session_options_from_plan(const LayerPlan& plan, const std::string& device);
SearchSettings search_settings_from_plan(const LayerPlan& plan);

// Throws InputError naming the plan and the field when the model in `model_dir` has another
// model_type, layer count or index_topk than the plan was made for (--validate, --check);
// returns the model's config.
ModelConfig check_plan_fits_model(const LayerPlan& plan, const std::string& plan_path, const std::string& model_dir);

// --validate: schema and pattern (read_plan), and with a model directory its type, layer count,
// index_topk and indexer fingerprint; with stage starts, that every stage starts on an F layer.
// Throws InputError naming the field that does not match. `warnings` lists the engines that the
// model's config.json, as it stands, would make run another pattern (the tool exits 1 for them);
// `notes` say where an engine does not read a pattern at all.
struct Validation {
  std::string summary;  // "ok: PLAN (...)"
  std::vector<std::string> warnings;
  std::vector<std::string> notes;
};
Validation validate_plan(const std::string& plan_path, const std::string& model_dir,
                         const std::vector<int64_t>& pp_stages);

// --export: "vllm" / "sglang" override JSON, or "hf-config": the model's config.json with the
// plan's pattern in every form the engines read (model_dir empty: the plan's model path). The
// notes (for stderr) say what the export changed besides the pattern, or where it has no effect.
ConfigExport export_plan(const LayerPlan& plan, const std::string& format, const std::string& model_dir);

}  // namespace indexcache
