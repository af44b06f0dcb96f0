#include "calibrate_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "device.h"
#include "error.h"
#include "file_system.h"
#include "evaluate.h"
#include "greedy_search.h"
#include "search_journal.h"
#include "sha256.h"

namespace indexcache {

int64_t resolve_target_kept(const SearchSettings& settings, int64_t layers) {
  if (settings.keep_fraction && settings.keep_layers) {
    throw InputError("--keep/--keep-layers", "give one of them, not both");
  }
  if (!settings.keep_fraction && !settings.keep_layers) {
    throw InputError("--keep/--keep-layers", "say how many indexers to keep: --keep FRACTION (e.g. 0.25) or "
                                             "--keep-layers N (or evaluate patterns with --eval)");
  }
  int64_t target = 0;
  if (settings.keep_fraction) {
    double fraction = *settings.keep_fraction;
    if (!(fraction > 0.0 && fraction <= 1.0)) {
      throw InputError("--keep", "must be in (0, 1], got " + std::to_string(fraction));
    }
    target = std::max<int64_t>(1, static_cast<int64_t>(std::floor(fraction * static_cast<double>(layers) + 0.5)));
  } else {
    target = *settings.keep_layers;
    if (target < 1 || target > layers) {
      throw InputError("--keep-layers", "must be in [1, " + std::to_string(layers) + "] for this " +
                                            std::to_string(layers) + "-layer model, got " + std::to_string(target));
    }
  }
  std::vector<int64_t> pinned = settings.pp_stages;
  pinned.push_back(0);
  std::sort(pinned.begin(), pinned.end());
  pinned.erase(std::unique(pinned.begin(), pinned.end()), pinned.end());
  if (static_cast<int64_t>(pinned.size()) > target) {
    throw InputError("--pp-stages", "pins " + std::to_string(pinned.size()) + " layers as F, more than the " +
                                        std::to_string(target) + " to keep");
  }
  return target;
}

std::vector<int64_t> parse_pp_stages(const std::string& text, int64_t layers) {
  std::vector<int64_t> stages;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 9) {
      throw InputError("--pp-stages", "\"" + text + "\" must be comma-separated layer indices, e.g. 0,15,30,45");
    }
    int64_t layer = std::stoll(item);
    if (layer >= layers) {
      throw InputError("--pp-stages", "layer " + item + " is outside the model's " + std::to_string(layers) + " layers");
    }
    if (!stages.empty() && layer <= stages.back()) throw InputError("--pp-stages", "must be ascending: " + text);
    stages.push_back(layer);
  }
  if (stages.empty()) throw InputError("--pp-stages", "is empty");
  return stages;
}

nlohmann::json search_identity(const Session& session, const SessionOptions& options, const SearchSettings& settings,
                               int64_t target_kept) {
  nlohmann::json data = nlohmann::json::array();
  for (const DataSource& source : session.data.sources) data.push_back({source.spec, source.sha256, source.sequences});
  return {{"model", session.model_dir},
          {"config_sha256", sha256_file_hex(session.model_dir + "/config.json")},
          {"data", data},
          {"seq_len", options.seq_len},
          {"num_samples", options.num_samples},
          {"seed", options.seed},
          {"split", options.split},
          {"target_kept", target_kept},
          {"max_loss_increase", settings.max_loss_increase ? nlohmann::json(*settings.max_loss_increase) : nlohmann::json()},
          {"pp_stages", settings.pp_stages},
          {"dtype", dtype_label(session.dtype)},
          {"indexer_precision", options.indexer_precision}};
}

std::vector<UniformPattern> evaluate_uniform_patterns(Session& session, int64_t kept, Progress& progress) {
  const int64_t layers = session.config.num_hidden_layers;
  std::vector<std::pair<std::string, LayerPattern>> patterns;
  for (int64_t n = 1; n <= layers; ++n) {
    LayerPattern candidate = LayerPattern::from_frequency(layers, n);
    if (candidate.kept() == kept) {
      patterns.emplace_back("index_topk_freq=" + std::to_string(n), candidate);
      break;
    }
  }
  patterns.emplace_back("evenly-spaced", LayerPattern::evenly_spaced(layers, kept));
  std::vector<UniformPattern> result;
  for (const auto& [name, pattern] : patterns) {
    auto report = [&](int64_t done, int64_t total) { progress.update("uniform " + name, done, total, "sequences"); };
    double loss = evaluate_pattern(*session.model, session.data.sequences, pattern, false, report).loss;
    result.push_back({name, pattern, loss});
  }
  return result;
}

namespace {

std::string now_iso8601() {
  std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buffer;
}

void fill_model_fields(LayerPlan& plan, const Session& session) {
  plan.model_type = session.config.model_type_name;
  plan.architectures = session.config.architectures;
  plan.num_hidden_layers = session.config.num_hidden_layers;
  plan.index_topk = session.config.index_topk;
  plan.model_path = session.model_dir;
  plan.config_sha256 = sha256_file_hex(session.model_dir + "/config.json");
  plan.indexer_tensors = fingerprint_indexer(session.model->checkpoint(), session.config);
}

void fill_calibration_fields(LayerPlan& plan, const Session& session, const SessionOptions& options) {
  plan.data_specs = session.data_specs;
  plan.split = options.split;
  plan.seq_len = session.data.seq_len;
  plan.num_samples = options.num_samples;
  plan.seed = options.seed;
  plan.sequences = static_cast<int64_t>(session.data.sequences.size());
  plan.tokens = session.data.total_tokens();
  plan.sources = session.data.sources;
}

nlohmann::json step_details(const SearchStep& step) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const CandidateLoss& c : step.candidates) candidates.push_back({{"layer", c.layer}, {"loss", c.loss}});
  return {{"removed", step.removed}, {"loss", step.loss}, {"pattern", step.pattern.text()}, {"candidates", candidates}};
}

}  // namespace

LayerPlan run_search(Session& session, const SessionOptions& options, const SearchSettings& settings,
                     const std::string& journal_path, bool resume, Progress& progress, nlohmann::json* details) {
  const int64_t layers = session.config.num_hidden_layers;
  SearchOptions search;
  search.target_kept = resolve_target_kept(settings, layers);
  search.max_loss_increase = settings.max_loss_increase;
  search.pinned_layers = settings.pp_stages;
  search.prefix_reuse = settings.prefix_reuse;
  if (settings.prefix_cache_gib >= 0) {
    search.device_cache_bytes = static_cast<int64_t>(settings.prefix_cache_gib * double(int64_t{1} << 30));
  } else if (int64_t free_bytes = device_free_memory(session.device); free_bytes > 0) {
    search.device_cache_bytes = static_cast<int64_t>(0.3 * static_cast<double>(free_bytes));
  }

  nlohmann::json identity = search_identity(session, options, settings, search.target_kept);
  std::vector<SearchStep> resumed;
  double journal_baseline = 0.0;
  if (resume) {
    resumed = SearchJournal::read(journal_path, identity, layers, &journal_baseline);
    progress.message("resuming from " + journal_path + ": " + std::to_string(resumed.size()) + " committed steps");
  }
  SearchJournal journal(journal_path, identity);
  for (const SearchStep& step : resumed) journal.commit(step, journal_baseline);  // whole again if we die again
  auto on_commit = [&](const SearchStep& step, double baseline) { journal.commit(step, baseline); };
  SearchResult result = greedy_search(*session.model, session.data.sequences, search, progress, resumed, on_commit);
  if (search.prefix_reuse) {
    const double gib = double(int64_t{1} << 30);
    char line[160];
    if (session.device.is_cpu()) {
      std::snprintf(line, sizeof line, "prefix cache: peak %.2f GiB", static_cast<double>(result.prefix_cache_host_bytes) / gib);
    } else {
      std::snprintf(line, sizeof line, "prefix cache: peak %.2f GiB on the GPUs, %.2f GiB in pinned host memory",
                    static_cast<double>(result.prefix_cache_device_bytes) / gib,
                    static_cast<double>(result.prefix_cache_host_bytes) / gib);
    }
    progress.message(line);
  }
  if (!session.model->options().keep_weights) {
    progress.message("offload: layer weights loaded " + std::to_string(session.model->layer_loads()) + " times for " +
                     std::to_string(result.layer_forwards_run) + " layer forwards");
  }

  LayerPlan plan;
  fill_model_fields(plan, session);
  plan.pattern = result.final_pattern;
  fill_calibration_fields(plan, session, options);
  plan.target_kept = search.target_kept;
  plan.keep_fraction = settings.keep_fraction;
  plan.max_loss_increase = settings.max_loss_increase;
  plan.pp_stages = settings.pp_stages;
  plan.stop_rule = result.stop_rule;
  plan.dtype = dtype_label(session.dtype);
  plan.indexer_precision = options.indexer_precision;
  plan.baseline_loss = result.baseline_loss;
  plan.final_loss = result.final_loss;
  plan.trajectory = result.trajectory;
  plan.stopped_at = result.stopped_at;
  plan.uniform = evaluate_uniform_patterns(session, plan.pattern.kept(), progress);
  plan.layer_forwards = result.layer_forwards;
  plan.naive_layer_forwards = result.naive_layer_forwards;
  plan.tool_version = INDEXCACHE_VERSION;
  plan.created = now_iso8601();
  plan.wall_seconds = progress.elapsed_seconds();
  plan.device = describe_device(session.device);
  plan.layer_forwards_run = result.layer_forwards_run;
  if (details) {
    nlohmann::json steps = nlohmann::json::array();
    for (const SearchStep& step : result.trajectory) steps.push_back(step_details(step));
    *details = {{"trajectory", steps}};
    if (result.stopped_at) (*details)["stopped_at"] = step_details(*result.stopped_at);
  }
  return plan;
}

std::string pattern_diff(const LayerPattern& expected_pattern, const LayerPattern& actual_pattern) {
  // Character by character: the diff shows the two patterns as a user reads them.
  const std::string& expected = expected_pattern.text();
  const std::string& actual = actual_pattern.text();
  std::string markers, to_s, to_f;
  for (std::size_t i = 0; i < std::max(expected.size(), actual.size()); ++i) {
    char a = i < expected.size() ? expected[i] : ' ';
    char b = i < actual.size() ? actual[i] : ' ';
    markers += a == b ? ' ' : '^';
    if (a == 'F' && b == 'S') to_s += (to_s.empty() ? "" : ", ") + std::to_string(i);
    if (a == 'S' && b == 'F') to_f += (to_f.empty() ? "" : ", ") + std::to_string(i);
  }
  std::string text = "  plan:        " + expected + "\n  regenerated: " + actual + "\n               " + markers + "\n";
  if (!to_s.empty()) text += "  now S (indexer dropped): layers " + to_s + "\n";
  if (!to_f.empty()) text += "  now F (indexer kept):    layers " + to_f + "\n";
  return text;
}

std::string plan_summary(const LayerPlan& plan) {
  char line[512];
  std::string text;
  std::snprintf(line, sizeof line, "pattern   %s\nkept      %lld of %lld indexers (stop rule: %s)\n", plan.pattern.text().c_str(),
                static_cast<long long>(plan.kept()), static_cast<long long>(plan.num_hidden_layers),
                plan.stop_rule.c_str());
  text += line;
  std::snprintf(line, sizeof line, "loss      %.6f (all F %.6f, %+.3f%%)\n", plan.final_loss, plan.baseline_loss,
                100.0 * (plan.final_loss / plan.baseline_loss - 1.0));
  text += line;
  for (const UniformPattern& uniform : plan.uniform) {
    std::snprintf(line, sizeof line, "uniform   %-22s %.6f (%+.3f%%)\n", uniform.name.c_str(), uniform.loss,
                  100.0 * (uniform.loss / plan.baseline_loss - 1.0));
    text += line;
  }
  std::snprintf(line, sizeof line, "work      %lld layer forwards with prefix reuse (naive: %lld, %.2fx fewer)\n",
                static_cast<long long>(plan.layer_forwards), static_cast<long long>(plan.naive_layer_forwards),
                plan.layer_forwards > 0 ? static_cast<double>(plan.naive_layer_forwards) / plan.layer_forwards : 0.0);
  text += line;
  text += "vLLM      --hf-overrides '" + vllm_hf_overrides(plan.pattern) + "'\n";
  text += "SGLang    --json-model-override-args '" + sglang_override_args(plan.pattern) + "'\n";
  return text;
}

SessionOptions session_options_from_plan(const LayerPlan& plan, const std::string& device) {
  SessionOptions options;
  options.model_dir = plan.model_path;
  options.data_specs = plan.data_specs;
  options.seq_len = plan.seq_len;
  options.num_samples = plan.num_samples;
  options.seed = plan.seed;
  options.split = plan.split;
  options.device = device;
  options.dtype = plan.dtype;
  options.indexer_precision = plan.indexer_precision;
  return options;
}

SearchSettings search_settings_from_plan(const LayerPlan& plan) {
  SearchSettings settings;
  if (plan.keep_fraction) {
    settings.keep_fraction = plan.keep_fraction;
  } else {
    settings.keep_layers = plan.target_kept;
  }
  settings.max_loss_increase = plan.max_loss_increase;
  settings.pp_stages = plan.pp_stages;
  return settings;
}

namespace {

nlohmann::json read_config_json(const std::string& path) {
  nlohmann::json config = nlohmann::json::parse(read_regular_file(path, "config.json"), nullptr, false);
  if (config.is_discarded() || !config.is_object()) throw InputError(path, "is not a JSON object");
  return config;
}

// The pattern fields of the model's own config.json against the plan: which engine would run
// something else, and where an engine reads no pattern at all.
void check_config_pattern(const LayerPlan& plan, const std::string& config_path, Validation& result) {
  std::vector<std::string> conflicts =
      config_conflicts(read_config_json(config_path), plan.pattern, plan.model_type, config_path);
  if (!conflicts.empty()) {
    result.warnings.push_back(config_path + " states a pattern of its own, which these engines run instead of the plan's " +
                              plan.pattern.text() + " unless told otherwise:");
    for (const std::string& line : conflicts) result.warnings.push_back("  " + line);
    result.warnings.push_back("  apply the plan with --export hf-config (it states the pattern in every form) or with "
                              "--export vllm / sglang (their overrides take precedence over these fields)");
  }
  if (!engine_applies_patterns(Engine::Transformers, plan.model_type)) {
    result.notes.push_back("transformers: " + transformers_instructions(plan.model_type));
  }
}

}  // namespace

ModelConfig check_plan_fits_model(const LayerPlan& plan, const std::string& plan_path, const std::string& model_dir) {
  ModelConfig config = load_model_config(model_dir);
  auto mismatch = [&](const std::string& field, const std::string& in_plan, const std::string& in_model) {
    throw InputError(plan_path, "is for another model: " + field + " is " + in_plan + " in the plan, " + in_model +
                                    " in " + model_dir);
  };
  if (config.model_type_name != plan.model_type) mismatch("model.model_type", plan.model_type, config.model_type_name);
  if (config.num_hidden_layers != plan.num_hidden_layers) {
    mismatch("model.num_hidden_layers", std::to_string(plan.num_hidden_layers), std::to_string(config.num_hidden_layers));
  }
  if (config.index_topk != plan.index_topk) {
    mismatch("model.index_topk", std::to_string(plan.index_topk), std::to_string(config.index_topk));
  }
  return config;
}

Validation validate_plan(const std::string& plan_path, const std::string& model_dir,
                         const std::vector<int64_t>& pp_stages) {
  LayerPlan plan = read_plan(plan_path);
  Validation result;
  if (!model_dir.empty()) {
    const ModelConfig config = check_plan_fits_model(plan, plan_path, model_dir);
    const Fp8BlockSize block = config.fp8_block_size();
    std::string difference =
        fingerprint_difference(plan.indexer_tensors, fingerprint_indexer(Checkpoint::open(model_dir, block), config));
    if (!difference.empty()) throw InputError(plan_path, "is for other weights: model.indexer_fingerprint: " + difference);
    check_config_pattern(plan, config.config_path, result);
  }
  if (!pp_stages.empty()) {
    std::string problem = check_pp_stages(plan.pattern, pp_stages);
    if (!problem.empty()) throw InputError(plan_path, "pattern does not fit --pp-stages: " + problem);
  }
  result.summary = "ok: " + plan_path + " (" + plan.model_type + ", " + std::to_string(plan.kept()) + " of " +
                   std::to_string(plan.num_hidden_layers) + " indexers kept" +
                   (model_dir.empty() ? "" : ", matches " + model_dir) +
                   (pp_stages.empty() ? "" : ", fits the pipeline stages") + ")";
  return result;
}

ConfigExport export_plan(const LayerPlan& plan, const std::string& format, const std::string& model_dir) {
  if (format == "vllm") return {vllm_hf_overrides(plan.pattern) + "\n", {}};
  if (format == "sglang") return {sglang_override_args(plan.pattern) + "\n", {}};
  if (format == "hf-config") {
    const std::string path = (model_dir.empty() ? plan.model_path : model_dir) + "/config.json";
    if (!path_exists(path)) throw InputError(path, "not found (--export hf-config needs the model's config.json; give --model)");
    const std::string text = read_regular_file(path, "config.json");
    ModelConfig config = parse_model_config(text, path);
    if (config.num_hidden_layers != plan.pattern.layers()) {
      throw InputError(path, "has " + std::to_string(config.num_hidden_layers) + " layers but the plan's pattern has " +
                                 std::to_string(plan.pattern.layers()));
    }
    return config_with_pattern(text, plan.pattern, plan.model_type, path);
  }
  throw InputError("--export", "\"" + format + "\" is not a format (use vllm, sglang or hf-config)");
}

}  // namespace indexcache
