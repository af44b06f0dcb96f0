#include "calibrate_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "device.h"
#include "distributed.h"
#include "error.h"
#include "file_system.h"
#include "evaluate.h"
#include "greedy_search.h"
#include "indexer.h"
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
    target = kept_for_fraction(fraction, layers);  // the plan reader checks target_kept with the same rule
  } else {
    target = *settings.keep_layers;
    if (target < 1 || target > layers) {
      throw InputError("--keep-layers", "must be in [1, " + std::to_string(layers) + "] for this model's " +
                                            std::to_string(layers) + " indexers, got " + std::to_string(target));
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
  const ModelFamily& family = session.model->family();
  const LayerPattern eligible = family.full_pattern();  // F where the model has an indexer
  const int64_t positions = family.positions();
  // The engines' schedule (layer i F iff max(i - offset + 1, 0) % freq == 0, docs/SERVING.md) at
  // their default offset 2, and at the offset the model's config.json gives when it differs
  // (GLM-5.2: 3): the first freq giving `kept` F layers, each an F only where an indexer exists,
  // is what an engine would run with those two numbers.
  std::vector<int64_t> offsets = {2};
  const std::optional<int64_t>& declared_offset = session.config.index_skip_topk_offset;
  if (declared_offset && *declared_offset != 2) offsets.push_back(*declared_offset);
  std::vector<std::pair<std::string, LayerPattern>> patterns;
  for (int64_t offset : offsets) {
    for (int64_t frequency = 1; frequency <= positions; ++frequency) {
      const LayerPattern candidate = LayerPattern::from_frequency(positions, frequency, offset);
      if (candidate.kept() != kept) continue;
      bool fits = candidate.is_full(0);
      for (int64_t position : candidate.full_layers()) fits = fits && eligible.is_full(position);
      if (!fits) continue;
      patterns.emplace_back("index_topk_freq=" + std::to_string(frequency) + " offset=" + std::to_string(offset),
                            candidate);
      break;
    }
  }
  patterns.emplace_back("evenly-spaced", family.evenly_spaced(kept));
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
  // A hub model is recorded by its id (path: the id as a --model value), so the plan names the
  // same model on a machine whose cache lies elsewhere; a directory is made relative to the plan
  // when it is written (record_paths_relative_to).
  if (const std::optional<HubModel>& hub = session.model_location.hub) {
    plan.model_path = hub->revision == "main" ? hub->id : hub->id + "@" + hub->revision;
    plan.model_hub = ModelHub{hub->id, hub->revision, hub->commit};
  } else {
    plan.model_path = session.model_dir;
  }
  const std::string config_path = session.model_dir + "/config.json";
  const std::string config_text = read_regular_file(config_path, "config.json");
  plan.config_sha256 = sha256_hex(config_text.data(), config_text.size());
  plan.config_fields_sha256 = config_fields_sha256(config_text, config_path);
  plan.indexer_tensors = fingerprint_indexer(session.model->checkpoint(), session.config);
  plan.excluded_layers = session.model->family().excluded_layers();
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

std::string search_lock_path(const std::string& plan_path) { return plan_path + ".lock"; }

RunLock lock_search_output(const std::string& plan_path, bool resume) {
  // Locked first: a --resume of a journal whose run is still alive is refused as in use, not
  // read while that run rewrites it.
  RunLock lock = RunLock::take(search_lock_path(plan_path), plan_path + " (and its journal)");
  if (resume) SearchJournal::require_journal(SearchJournal::path_for(plan_path));
  return lock;
}

// The steps an interrupted search committed, from its journal: rank 0 reads it (and checks it
// belongs to this search) and hands the steps to the other ranks, whose file systems may not
// hold it. A journal rank 0 refuses stops every rank.
static std::vector<SearchStep> resumed_steps(const std::string& journal_path, const nlohmann::json& identity,
                                             int64_t layers, RankGroup* ranks, double* baseline_loss) {
  if (!ranks) return SearchJournal::read(journal_path, identity, layers, baseline_loss);
  std::vector<SearchStep> steps;
  std::exception_ptr refused;
  if (ranks->rank() == 0) {
    try {
      steps = SearchJournal::read(journal_path, identity, layers, baseline_loss);
    } catch (const InputError&) {
      refused = std::current_exception();
    }
  }
  const std::vector<double> shared =
      ranks->broadcast_from_rank0("the resumed steps", refused ? std::vector<double>{-1.0} : encode_steps(steps));
  if (refused) std::rethrow_exception(refused);
  if (shared.size() == 1 && shared[0] < 0) throw InputError(journal_path, "rank 0 could not resume from it (its message says why)");
  return ranks->rank() == 0 ? steps : decode_steps(shared, layers);
}

LayerPlan run_search(Session& session, const SessionOptions& options, const SearchSettings& settings,
                     const std::string& journal_path, bool resume, Progress& progress, nlohmann::json* details) {
  const int64_t layers = session.config.num_hidden_layers;
  SearchOptions search;
  // Fractions and counts are of the indexers the model has (model_family.h: fixed-S layers have
  // none); stage starts pin their first indexer position.
  const ModelFamily& family = session.model->family();
  search.target_kept = resolve_target_kept(settings, family.indexer_count());
  search.max_loss_increase = settings.max_loss_increase;
  search.pinned_layers = family.stage_start_positions(settings.pp_stages);
  search.prefix_reuse = settings.prefix_reuse;
  if (settings.prefix_cache_gib >= 0) {
    search.device_cache_bytes = static_cast<int64_t>(settings.prefix_cache_gib * double(int64_t{1} << 30));
  } else if (int64_t free_bytes = device_free_memory(session.device); free_bytes > 0) {
    search.device_cache_bytes = static_cast<int64_t>(0.3 * static_cast<double>(free_bytes));
  }

  nlohmann::json identity = search_identity(session, options, settings, search.target_kept);
  // With ranks, only rank 0 touches the journal; every rank must be running the same search.
  search.ranks = settings.ranks;
  const bool writer = !settings.ranks || settings.ranks->rank() == 0;
  if (settings.ranks) settings.ranks->require_same("search settings", identity.dump());
  std::vector<SearchStep> resumed;
  double journal_baseline = 0.0;
  if (resume) {
    resumed = resumed_steps(journal_path, identity, layers, settings.ranks, &journal_baseline);
    progress.message("resuming from " + journal_path + ": " + std::to_string(resumed.size()) + " committed steps");
  }
  SearchJournal journal(journal_path, identity);
  if (writer) {
    for (const SearchStep& step : resumed) journal.commit(step, journal_baseline);  // whole again if we die again
  }
  auto on_commit = [&](const SearchStep& step, double baseline) {
    if (writer) journal.commit(step, baseline);
  };
  SearchResult result = greedy_search(*session.model, session.data.sequences, search, progress, resumed, on_commit);
  if (!writer) {
    LayerPlan plan;  // the other ranks' part ends with the search: rank 0 assembles and writes the plan
    plan.pattern = result.final_pattern;
    return plan;
  }
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
  if (settings.ranks) {
    plan.device += ", rank 0 of " + std::to_string(settings.ranks->world_size()) + " (" + settings.ranks->backend() + ")";
  }
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

namespace {

// A plan's value checked by the parser the command line uses: its error, which names the
// flag (`flag`), is rethrown naming the plan file and the field instead.
template <typename Parse>
void check_plan_value(const std::string& plan_path, const std::string& field, const std::string& flag, Parse parse) {
  try {
    parse();
  } catch (const InputError& error) {
    std::string message = error.what();
    if (message.rfind(flag + ": ", 0) == 0) message.erase(0, flag.size() + 2);
    throw InputError(plan_path, field + ": " + message);
  }
}

}  // namespace

SessionOptions session_options_from_plan(const LayerPlan& plan, const std::string& plan_path, const std::string& device) {
  // Values no run records: checked here, so the errors name the plan and its field rather than
  // the command-line flags that the same checks further on would blame.
  if (plan.seq_len < 0) throw InputError(plan_path, "calibration.seq_len: " + std::to_string(plan.seq_len) + " is negative");
  if (plan.seq_len == 1) throw InputError(plan_path, "calibration.seq_len: 1 is less than 2 (a sequence needs two tokens)");
  if (plan.num_samples < 0) {
    throw InputError(plan_path, "calibration.num_samples: " + std::to_string(plan.num_samples) +
                                    " is negative (0 records that the run took what the data gave)");
  }
  check_plan_value(plan_path, "search.dtype", "--dtype", [&] { parse_dtype(plan.dtype); });
  check_plan_value(plan_path, "search.indexer_precision", "--indexer-precision",
                   [&] { parse_indexer_precision(plan.indexer_precision); });
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

SearchSettings search_settings_from_plan(const LayerPlan& plan, const std::string& plan_path) {
  const int64_t layers = plan.num_hidden_layers;
  const std::string model = " for the plan's " + std::to_string(layers) + "-layer model";
  SearchSettings settings;
  if (plan.keep_fraction) {
    const double fraction = *plan.keep_fraction;
    if (!(fraction > 0.0 && fraction <= 1.0)) {
      throw InputError(plan_path, "search.keep_fraction: " + std::to_string(fraction) + " is outside (0, 1]");
    }
    settings.keep_fraction = plan.keep_fraction;
  } else {
    if (plan.target_kept < 1 || plan.target_kept > layers) {
      throw InputError(plan_path, "search.target_kept: " + std::to_string(plan.target_kept) + " is outside [1, " +
                                      std::to_string(layers) + "]" + model);
    }
    settings.keep_layers = plan.target_kept;
  }
  settings.max_loss_increase = plan.max_loss_increase;
  for (std::size_t i = 0; i < plan.pp_stages.size(); ++i) {
    const int64_t layer = plan.pp_stages[i];
    const std::string field = "search.pp_stages[" + std::to_string(i) + "]";
    if (layer < 0 || layer >= layers) {
      throw InputError(plan_path, field + ": layer " + std::to_string(layer) + " is outside the " +
                                      std::to_string(layers) + " layers" + model);
    }
    if (i > 0 && layer <= plan.pp_stages[i - 1]) throw InputError(plan_path, field + ": stage starts must be ascending");
  }
  settings.pp_stages = plan.pp_stages;
  // The one check left to resolve_target_kept (its --keep checks were made above).
  check_plan_value(plan_path, "search.pp_stages", "--pp-stages", [&] { resolve_target_kept(settings, layers); });
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

// config.json against the one the plan was made from: "" when they match (a note when only the
// pattern fields differ, as after --export hf-config), else the difference with both hashes.
std::string config_difference(const LayerPlan& plan, const std::string& config_path, std::vector<std::string>& notes) {
  const std::string text = read_regular_file(config_path, "config.json");
  switch (compare_config(plan, text, config_path)) {
    case ConfigMatch::SameBytes:
      return "";
    case ConfigMatch::SameFieldsButPattern:
      notes.push_back(config_path + " differs from the config.json the plan was made from only in its pattern fields "
                                    "(as --export hf-config writes them)");
      return "";
    case ConfigMatch::Different:
      break;
  }
  return "model.config_sha256 is " + plan.config_sha256 + " in the plan, " + sha256_hex(text.data(), text.size()) +
         " for " + config_path + " (the model's config.json changed)";
}

// The model --check opens: --model, else the plan's hub id, else its path against the plan's folder.
std::string model_to_check(const LayerPlan& plan, const PlanCheckRequest& request) {
  if (!request.model.empty()) return locate_session_model(request.model).directory;
  if (plan.model_hub) return locate_hub_model(plan.model_hub->id, plan.model_hub->revision).directory;
  const std::string directory = path_from_plan(plan.model_path, request.plan_path);
  if (!path_exists(directory)) {
    throw InputError(request.plan_path, "model.path: " + directory + " not found (recorded as \"" + plan.model_path +
                                            "\"); give --model DIR or a hub id to check against the model where it is");
  }
  return directory;
}

// The data --check reads: --data, else the plan's specs with their paths against the plan's folder.
std::vector<std::string> data_to_check(const LayerPlan& plan, const PlanCheckRequest& request) {
  if (!request.data.empty()) return request.data;
  std::vector<std::string> specs;
  for (std::size_t i = 0; i < plan.data_specs.size(); ++i) {
    const std::string& spec = plan.data_specs[i];
    if (is_bundled_set_name(spec)) {
      specs.push_back(spec);
      continue;
    }
    const std::string path = path_from_plan(spec, request.plan_path);
    if (!path_exists(path)) {
      throw InputError(request.plan_path, "calibration.data[" + std::to_string(i) + "]: " + path + " not found (recorded as \"" +
                                              spec + "\"); give --data with the same files: they are matched by "
                                                     "SHA-256, not by path");
    }
    specs.push_back(path);
  }
  return specs;
}

// The data read now against the sources the plan records, by position: bytes (SHA-256) and weight.
void compare_data(const LayerPlan& plan, const CalibrationSet& data, std::vector<std::string>& drift) {
  if (data.sources.size() != plan.sources.size()) {
    drift.push_back("calibration.sources: the plan was made from " + std::to_string(plan.sources.size()) +
                    " data sources, the check read " + std::to_string(data.sources.size()));
    return;
  }
  for (std::size_t i = 0; i < data.sources.size(); ++i) {
    const DataSource& then = plan.sources[i];
    const DataSource& now = data.sources[i];
    const std::string field = "calibration.sources[" + std::to_string(i) + "]";
    if (then.sha256 != now.sha256) {
      drift.push_back(field + ".sha256 is " + then.sha256 + " in the plan (" + then.path + "), " + now.sha256 + " for " +
                      now.path + " (other data bytes)");
    }
    if (then.weight != now.weight) {
      drift.push_back(field + ".weight is " + std::to_string(then.weight) + " in the plan, " + std::to_string(now.weight) +
                      " now (" + now.path + ")");
    }
  }
}

void compare_loss(const std::string& field, double recorded, double now, const std::string& dtype,
                  std::vector<std::string>& drift) {
  const double tolerance = check_loss_tolerance(dtype);
  const double change = std::abs(now - recorded) / std::abs(recorded);
  if (change <= tolerance) return;
  char line[256];
  std::snprintf(line, sizeof line, "%s: %.6f in the plan, %.6f now (relative change %.1e, beyond the %.0e tolerance for %s)",
                field.c_str(), recorded, now, change, tolerance, dtype.c_str());
  drift.push_back(line);
}

}  // namespace

double check_loss_tolerance(const std::string& dtype) { return dtype == "bf16" ? 1e-3 : 1e-4; }

PlanCheck check_plan(const PlanCheckRequest& request, Progress& progress) {
  PlanCheck result;
  result.recorded = read_plan(request.plan_path);
  const LayerPlan& recorded = result.recorded;
  SessionOptions options = session_options_from_plan(recorded, request.plan_path, request.device);
  options.model_dir = model_to_check(recorded, request);
  options.data_specs = data_to_check(recorded, request);
  // A plan for another model is bad input, not drift: refused before any weights load.
  check_plan_fits_model(recorded, request.plan_path, options.model_dir);
  SearchSettings settings = search_settings_from_plan(recorded, request.plan_path);
  Session session = open_session(options);
  const std::string scratch_journal = request.plan_path + ".check.journal";
  result.regenerated = run_search(session, options, settings, scratch_journal, false, progress);
  SearchJournal(scratch_journal, {}).remove();

  compare_data(recorded, session.data, result.drift);
  const std::string config = config_difference(recorded, session.config.config_path, result.notes);
  if (!config.empty()) result.drift.push_back(config);
  const std::string weights = fingerprint_difference(recorded.indexer_tensors, result.regenerated.indexer_tensors);
  if (!weights.empty()) result.drift.push_back("model.indexer_fingerprint: " + weights);
  compare_loss("search.baseline_loss", recorded.baseline_loss, result.regenerated.baseline_loss, recorded.dtype, result.drift);
  if (!result.pattern_drifted()) {
    compare_loss("search.final_loss", recorded.final_loss, result.regenerated.final_loss, recorded.dtype, result.drift);
  }
  const std::optional<ModelHub>& hub = result.regenerated.model_hub;
  if (recorded.model_hub && hub && hub->commit != recorded.model_hub->commit) {
    result.notes.push_back(hub->id + "@" + hub->revision + " is at commit " + hub->commit + " in this cache; the plan was made from " +
                           recorded.model_hub->commit);
  }
  return result;
}

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
    const std::string directory = locate_session_model(model_dir).directory;
    const ModelConfig config = check_plan_fits_model(plan, plan_path, directory);
    const Fp8BlockSize block = config.fp8_block_size();
    std::string difference =
        fingerprint_difference(plan.indexer_tensors, fingerprint_indexer(Checkpoint::open(directory, block), config));
    if (!difference.empty()) throw InputError(plan_path, "is for other weights: model.indexer_fingerprint: " + difference);
    const std::string config_change = config_difference(plan, config.config_path, result.notes);
    if (!config_change.empty()) throw InputError(plan_path, "is for another model: " + config_change);
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
