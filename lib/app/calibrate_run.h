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
#include "run_lock.h"
#include "session.h"

namespace indexcache {

class RankGroup;

struct SearchSettings {
  std::optional<double> keep_fraction;   // --keep
  std::optional<int64_t> keep_layers;    // --keep-layers
  std::optional<double> max_loss_increase;
  std::vector<int64_t> pp_stages;
  bool prefix_reuse = true;
  // Device memory for the prefix cache in GiB; < 0: automatic (30% of the first GPU's free
  // memory when the search starts; unlimited on the CPU).
  double prefix_cache_gib = -1.0;
  // The ranks sharing the search (several processes under torchrun or srun; distributed.h):
  // rank 0 reads and writes the journal and assembles the plan, the others only compute.
  // Null: this process alone.
  RankGroup* ranks = nullptr;
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

// The lock file that lets one run at a time own a plan and its resume journal: <plan>.lock.
std::string search_lock_path(const std::string& plan_path);

// Takes that lock for a search that writes `plan_path` (RunLock::take: exit 2 naming the run
// that holds it, with its pid, host, start time and command line) and, with `resume`, checks
// that there is a journal to resume (SearchJournal::require_journal); both before any model
// work. Hold the returned lock until the plan, journal and report are done with (it removes
// the lock file when released). In a search spread over processes, only the process that
// writes the plan and the journal takes it.
RunLock lock_search_output(const std::string& plan_path, bool resume);

// Runs the greedy search (resuming from `journal_path` when `resume`), evaluates the uniform
// patterns with the same count, and assembles the plan.
LayerPlan run_search(Session& session, const SessionOptions& options, const SearchSettings& settings,
                     const std::string& journal_path, bool resume, Progress& progress,
                     nlohmann::json* details = nullptr);

// The uniform patterns with `kept` F layers, as the engines would run them: "index_topk_freq=N
// offset=O" (the engines' schedule, docs/SERVING.md, for the default offset 2 and the config's own
// offset; the first N giving `kept` F layers, all on layers with an indexer) and "evenly-spaced"
// (over the layers with an indexer), with their losses.
std::vector<UniformPattern> evaluate_uniform_patterns(Session& session, int64_t kept, Progress& progress);

// Expected vs actual pattern, with a marker line under differing layers and the layers that
// changed in each direction.
std::string pattern_diff(const LayerPattern& expected, const LayerPattern& actual);

// A short human summary of a plan for the terminal.
std::string plan_summary(const LayerPlan& plan);

// Session settings recorded in a plan (for --check), with the device given on the command line.
// Recorded values that no run could have written (a negative num_samples, an unknown dtype, a
// keep fraction outside (0, 1], stage starts outside the model, ...) throw InputError naming
// `plan_path` and the field (e.g. "calibration.num_samples"), not the command-line flag.
SessionOptions session_options_from_plan(const LayerPlan& plan, const std::string& plan_path, const std::string& device);
SearchSettings search_settings_from_plan(const LayerPlan& plan, const std::string& plan_path);

// --check: regenerates the plan at `plan_path` with its recorded settings and says what moved.
// The model is --model when given (a directory or hub id), else the plan's hub id (resolved from
// this machine's cache) or its path (read against the plan file's folder); the data is --data when
// given, else the plan's (paths read likewise). Data files are matched by SHA-256, not by path.
// Bad input (exit 2, InputError): an unreadable or self-contradicting plan, a model or data file
// that is not there, a model of another type, layer count or index_topk.
struct PlanCheckRequest {
  std::string plan_path;
  std::string model;              // --model; "" keeps the plan's
  std::vector<std::string> data;  // --data; empty keeps the plan's
  std::string device;
};
struct PlanCheck {
  LayerPlan recorded;
  LayerPlan regenerated;
  // What else moved, one line each with both values (data bytes, config.json, indexer weights,
  // a loss beyond check_loss_tolerance); the pattern is compared on its own.
  std::vector<std::string> drift;
  std::vector<std::string> notes;
  bool pattern_drifted() const { return recorded.pattern != regenerated.pattern; }
  bool up_to_date() const { return drift.empty() && !pattern_drifted(); }
};
PlanCheck check_plan(const PlanCheckRequest& request, Progress& progress);

// The relative change of baseline_loss or final_loss beyond which --check reports drift: 1e-4 for
// an fp32 plan, 1e-3 for bf16 (docs/PLAN.md, "Losses": about 5x the largest difference measured
// between two correct implementations in that dtype).
double check_loss_tolerance(const std::string& dtype);

// Throws InputError naming the plan and the field when the model in `model_dir` has another
// model_type, layer count or index_topk than the plan was made for (--validate, --check);
// returns the model's config.
ModelConfig check_plan_fits_model(const LayerPlan& plan, const std::string& plan_path, const std::string& model_dir);

// --validate: schema, pattern and every derived field (read_plan), and with a model (a directory
// or hub id) its type, layer count, index_topk, config.json (config_sha256; a config that differs
// only in its pattern fields, as --export hf-config writes it, passes with a note) and indexer
// fingerprint; with stage starts, that every stage starts on an F layer.
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
