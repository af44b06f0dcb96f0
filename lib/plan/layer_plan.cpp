#include "layer_plan.h"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "error.h"
#include "file_system.h"
#include "layer_pattern.h"
#include "yaml_writer.h"

namespace indexcache {

std::string check_pp_stages(const LayerPattern& pattern, const std::vector<int64_t>& stage_starts) {
  for (std::size_t i = 0; i < stage_starts.size(); ++i) {
    int64_t layer = stage_starts[i];
    if (layer < 0 || layer >= pattern.layers()) {
      return "stage " + std::to_string(i) + " starts at layer " + std::to_string(layer) + ", outside the model's " +
             std::to_string(pattern.layers()) + " layers";
    }
    if (!pattern.is_full(layer)) {
      return "stage " + std::to_string(i) + " starts at layer " + std::to_string(layer) +
             ", which is S (vLLM needs every pipeline stage to start with an F layer)";
    }
  }
  return "";
}

namespace {

// A number as a plan prints it (10 significant digits) and reads it back. Decisions made on
// printed values come out the same when a plan is read, written and read again.
double as_printed(double value) { return std::strtod(YamlWriter::format_number(value).c_str(), nullptr); }

}  // namespace

LayerPattern search_start_pattern(const LayerPlan& plan) {
  LayerPattern start = LayerPattern::all_full(plan.num_hidden_layers);
  for (const ExcludedLayer& excluded : plan.excluded_layers) {
    if (excluded.role == kFixedSharedRole && excluded.layer > 0 && excluded.layer < plan.num_hidden_layers) {
      start = start.with_shared(excluded.layer);
    }
  }
  return start;
}

int64_t kept_for_fraction(double fraction, int64_t layers) {
  const double printed = as_printed(fraction);  // the fraction a plan records
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(printed * static_cast<double>(layers) + 0.5)));
}

// ---------------------------------------------------------------------------------------------
// Consistency: every field the search derives, derived again from the plan's own values

namespace {

[[noreturn]] void inconsistent(const std::string& path, const std::string& field, const std::string& problem) {
  throw InputError(path, field + ": " + problem);
}

std::string step_field(std::size_t index) { return "search.trajectory[" + std::to_string(index) + "]"; }

bool is_pinned(const LayerPlan& plan, int64_t layer) {
  return std::find(plan.pp_stages.begin(), plan.pp_stages.end(), layer) != plan.pp_stages.end();
}

// A step of the search from `before`: an F layer other than 0 and the pinned ones turned S.
void check_step(const LayerPlan& plan, const std::string& path, const std::string& field, const LayerPattern& before,
                const SearchStep& step) {
  if (step.removed < 1 || step.removed >= before.layers() || !before.is_full(step.removed) || is_pinned(plan, step.removed)) {
    inconsistent(path, field + ".removed",
                 "layer " + std::to_string(step.removed) + " is not one the search could turn S after " + before.text() +
                     " (it must be an F layer other than 0 and the pipeline-stage starts)");
  }
  if (step.pattern != before.with_shared(step.removed)) {
    inconsistent(path, field + ".pattern", "is " + step.pattern.text() + ", but turning layer " +
                                               std::to_string(step.removed) + " of " + before.text() + " S gives " +
                                               before.with_shared(step.removed).text());
  }
  if (!std::isfinite(step.loss)) inconsistent(path, field + ".loss", "must be a finite number");
}

// The search's settings: target_kept from keep_fraction; stage starts inside the model, ascending,
// no more than target_kept with layer 0, and F in the pattern (the search pins them).
void check_settings(const LayerPlan& plan, const std::string& path) {
  const int64_t layers = plan.num_hidden_layers;
  if (plan.target_kept < 1 || plan.target_kept > layers) {
    inconsistent(path, "search.target_kept", std::to_string(plan.target_kept) + " is outside [1, " + std::to_string(layers) +
                                                 "] for the plan's " + std::to_string(layers) + "-layer model");
  }
  if (plan.keep_fraction) {
    const double fraction = *plan.keep_fraction;
    if (!(fraction > 0.0 && fraction <= 1.0)) {
      inconsistent(path, "search.keep_fraction", YamlWriter::format_number(fraction) + " is outside (0, 1]");
    }
    // A fraction of the indexers the model has (fixed-S layers have none).
    const int64_t indexers = search_start_pattern(plan).kept();
    if (kept_for_fraction(fraction, indexers) != plan.target_kept) {
      inconsistent(path, "search.target_kept", "is " + std::to_string(plan.target_kept) + ", but keep_fraction " +
                                                   YamlWriter::format_number(fraction) + " of " + std::to_string(indexers) +
                                                   " indexers gives " + std::to_string(kept_for_fraction(fraction, indexers)));
    }
  }
  if (plan.max_loss_increase && !(std::isfinite(*plan.max_loss_increase) && *plan.max_loss_increase >= 0.0)) {
    inconsistent(path, "search.max_loss_increase", "must be a finite number >= 0");
  }
  bool pins_layer_zero = false;
  for (std::size_t i = 0; i < plan.pp_stages.size(); ++i) {
    const int64_t layer = plan.pp_stages[i];
    const std::string field = "search.pp_stages[" + std::to_string(i) + "]";
    if (layer < 0 || layer >= layers) {
      inconsistent(path, field, "layer " + std::to_string(layer) + " is outside the " + std::to_string(layers) +
                                    " layers of the plan's model");
    }
    if (i > 0 && layer <= plan.pp_stages[i - 1]) inconsistent(path, field, "stage starts must be ascending");
    pins_layer_zero = pins_layer_zero || layer == 0;
  }
  const int64_t pinned = static_cast<int64_t>(plan.pp_stages.size()) + (pins_layer_zero ? 0 : 1);
  if (pinned > plan.target_kept) {
    inconsistent(path, "search.pp_stages", "pins " + std::to_string(pinned) + " layers as F, more than the " +
                                               std::to_string(plan.target_kept) + " to keep");
  }
  const std::string stages = check_pp_stages(plan.pattern, plan.pp_stages);
  if (!stages.empty()) inconsistent(path, "search.pp_stages", "do not fit the pattern: " + stages);
}

// The trajectory runs from all-F to the plan's pattern one step at a time; final_loss is its end.
void check_trajectory(const LayerPlan& plan, const std::string& path) {
  if (!std::isfinite(plan.baseline_loss) || plan.baseline_loss <= 0.0) {
    inconsistent(path, "search.baseline_loss", "must be a positive finite number");
  }
  LayerPattern pattern = search_start_pattern(plan);
  for (std::size_t i = 0; i < plan.trajectory.size(); ++i) {
    check_step(plan, path, step_field(i), pattern, plan.trajectory[i]);
    pattern = plan.trajectory[i].pattern;
  }
  if (pattern != plan.pattern) {
    inconsistent(path, "search.trajectory", "ends in " + pattern.text() + ", not in the plan's pattern " + plan.pattern.text());
  }
  const double end_loss = plan.trajectory.empty() ? plan.baseline_loss : plan.trajectory.back().loss;
  if (plan.final_loss != end_loss) {
    inconsistent(path, "search.final_loss", "is " + YamlWriter::format_number(plan.final_loss) + ", but the trajectory ends at " +
                                                YamlWriter::format_number(end_loss) +
                                                (plan.trajectory.empty() ? " (baseline_loss)" : ""));
  }
}

// Losses are compared as printed (10 significant digits): this much relative slack.
constexpr double kPrintedSlack = 1e-9;

// Why the search stopped, as greedy_search decides it.
void check_stop_rule(const LayerPlan& plan, const std::string& path) {
  const int64_t kept = plan.pattern.kept();
  const double limit =
      plan.max_loss_increase ? as_printed(plan.baseline_loss) * (1.0 + as_printed(*plan.max_loss_increase)) : 0.0;
  if (plan.max_loss_increase) {
    for (std::size_t i = 0; i < plan.trajectory.size(); ++i) {
      if (as_printed(plan.trajectory[i].loss) > limit * (1.0 + kPrintedSlack)) {
        inconsistent(path, step_field(i) + ".loss", "exceeds baseline_loss x (1 + max_loss_increase), so the search would "
                                                    "not have taken this step");
      }
    }
  }
  const std::string& rule = plan.stop_rule;
  if (rule != "max-loss-increase" && plan.stopped_at) {
    inconsistent(path, "search.stopped_at", "is set, but only the stop rule max-loss-increase records one");
  }
  if (rule == "target-kept") {
    if (kept != plan.target_kept) {
      inconsistent(path, "search.stop_rule", "is target-kept, but the pattern keeps " + std::to_string(kept) +
                                                 " indexers, not target_kept " + std::to_string(plan.target_kept));
    }
    return;
  }
  if (kept <= plan.target_kept) {
    inconsistent(path, "search.stop_rule", "is " + rule + ", but the pattern already keeps target_kept " +
                                               std::to_string(plan.target_kept) + " indexers (that is target-kept)");
  }
  if (rule == "no-candidates") {
    for (int64_t layer : plan.full_layers()) {
      if (layer != 0 && !is_pinned(plan, layer)) {
        inconsistent(path, "search.stop_rule", "is no-candidates, but layer " + std::to_string(layer) +
                                                   " is F and not pinned, so the search had a candidate");
      }
    }
    return;
  }
  if (rule != "max-loss-increase") {
    inconsistent(path, "search.stop_rule", "\"" + rule + "\" is not known (target-kept, max-loss-increase or no-candidates)");
  }
  if (!plan.max_loss_increase) inconsistent(path, "search.stop_rule", "is max-loss-increase, but max_loss_increase is null");
  if (!plan.stopped_at) inconsistent(path, "search.stopped_at", "is null, but the stop rule max-loss-increase records the step not taken");
  check_step(plan, path, "search.stopped_at", plan.pattern, *plan.stopped_at);
  if (as_printed(plan.stopped_at->loss) * (1.0 + kPrintedSlack) <= limit) {
    inconsistent(path, "search.stopped_at.loss", "is within baseline_loss x (1 + max_loss_increase), so the search would "
                                                 "have taken this step");
  }
}

// index_topk_freq=N and evenly-spaced, with the plan's F count (evaluate_uniform_patterns).
void check_uniform(const LayerPlan& plan, const std::string& path) {
  const int64_t layers = plan.num_hidden_layers;
  const std::string frequency_prefix = "index_topk_freq=";
  for (std::size_t i = 0; i < plan.uniform.size(); ++i) {
    const UniformPattern& uniform = plan.uniform[i];
    const std::string field = "search.uniform[" + std::to_string(i) + "]";
    std::optional<LayerPattern> expected;
    if (uniform.name == "evenly-spaced") {
      expected = LayerPattern::evenly_spaced_over(search_start_pattern(plan), plan.pattern.kept());
    } else if (uniform.name.rfind(frequency_prefix, 0) == 0) {
      // "index_topk_freq=N offset=O"; older plans wrote "index_topk_freq=N", offset 2.
      const std::string numbers = uniform.name.substr(frequency_prefix.size());
      const std::size_t space = numbers.find(' ');
      const std::string digits = numbers.substr(0, space);
      const std::string offset_prefix = " offset=";
      const std::string offset_digits =
          space == std::string::npos ? "2" : numbers.compare(space, offset_prefix.size(), offset_prefix) == 0
                                                 ? numbers.substr(space + offset_prefix.size())
                                                 : "";
      auto is_number = [](const std::string& text) {
        return !text.empty() && text.size() <= 9 && text.find_first_not_of("0123456789") == std::string::npos;
      };
      if (!is_number(digits) || std::stoll(digits) < 1 || !is_number(offset_digits)) {
        inconsistent(path, field + ".name", "\"" + uniform.name + "\" must be index_topk_freq=N offset=O with N >= 1, O >= 0");
      }
      expected = LayerPattern::from_frequency(layers, std::stoll(digits), std::stoll(offset_digits));
    } else {
      inconsistent(path, field + ".name", "\"" + uniform.name + "\" is not known (index_topk_freq=N offset=O or evenly-spaced)");
    }
    if (uniform.pattern != *expected) {
      inconsistent(path, field + ".pattern", "is " + uniform.pattern.text() + ", but " + uniform.name + " is " + expected->text());
    }
    if (expected->kept() != plan.pattern.kept()) {
      inconsistent(path, field + ".name", uniform.name + " keeps " + std::to_string(expected->kept()) +
                                              " indexers, the plan's pattern " + std::to_string(plan.pattern.kept()));
    }
  }
}

// sequences and tokens are the sums over the sources.
void check_calibration_totals(const LayerPlan& plan, const std::string& path) {
  int64_t sequences = 0;
  int64_t tokens = 0;
  for (const DataSource& source : plan.sources) {
    if (source.sequences < 0 || source.tokens < 0 || __builtin_add_overflow(sequences, source.sequences, &sequences) ||
        __builtin_add_overflow(tokens, source.tokens, &tokens)) {
      inconsistent(path, "calibration.sources", "hold negative or overflowing counts");
    }
  }
  if (sequences != plan.sequences) {
    inconsistent(path, "calibration.sequences", "is " + std::to_string(plan.sequences) + ", but the sources add up to " +
                                                    std::to_string(sequences));
  }
  if (tokens != plan.tokens) {
    inconsistent(path, "calibration.tokens", "is " + std::to_string(plan.tokens) + ", but the sources add up to " +
                                                 std::to_string(tokens));
  }
}

}  // namespace

void check_plan_consistency(const LayerPlan& plan, const std::string& path) {
  check_settings(plan, path);
  check_trajectory(plan, path);
  check_stop_rule(plan, path);
  check_uniform(plan, path);
  check_calibration_totals(plan, path);
}

// ---------------------------------------------------------------------------------------------
// Paths

namespace {

// `path` made absolute against the working directory, with "." and ".." resolved by name.
std::string absolute_normal_path(const std::string& path) {
  std::string full = path;
  if (full.empty() || full.front() != '/') {
    char buffer[4096];
    const char* cwd = ::getcwd(buffer, sizeof buffer);
    full = std::string(cwd != nullptr ? cwd : ".") + "/" + path;
  }
  std::vector<std::string> parts;
  std::stringstream stream(full);
  std::string part;
  while (std::getline(stream, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string normal;
  for (const std::string& each : parts) normal += "/" + each;
  return normal.empty() ? "/" : normal;
}

}  // namespace

std::string path_for_plan(const std::string& path, const std::string& plan_path) {
  if (path.empty()) return path;
  const std::string folder = absolute_normal_path(parent_directory(plan_path));
  const std::string target = absolute_normal_path(path);
  const std::string prefix = folder == "/" ? "/" : folder + "/";
  if (target == folder) return ".";
  if (target.compare(0, prefix.size(), prefix) == 0) return target.substr(prefix.size());
  return path.front() == '/' ? path : target;
}

std::string path_from_plan(const std::string& recorded, const std::string& plan_path) {
  if (recorded.empty() || recorded.front() == '/') return recorded;
  return join_path(parent_directory(plan_path), recorded);
}

bool is_bundled_set_name(const std::string& spec) {
  return !spec.empty() && std::all_of(spec.begin(), spec.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  });
}

void record_paths_relative_to(LayerPlan& plan, const std::string& plan_path) {
  if (!plan.model_hub) plan.model_path = path_for_plan(plan.model_path, plan_path);
  // A source's spec is a --data value (then written like it) or a mix entry's path, which is
  // relative to the mix file and stays as the mix says.
  const std::vector<std::string> given = plan.data_specs;
  for (std::string& spec : plan.data_specs) {
    if (!is_bundled_set_name(spec)) spec = path_for_plan(spec, plan_path);
  }
  for (DataSource& source : plan.sources) {
    const bool data_value = std::find(given.begin(), given.end(), source.spec) != given.end();
    if (data_value && !is_bundled_set_name(source.spec)) source.spec = path_for_plan(source.spec, plan_path);
    source.path = path_for_plan(source.path, plan_path);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

// The `serving` section: written from the pattern, and compared with it when a plan is read.
struct ServingLine {
  const char* key;
  std::string value;
};
std::vector<ServingLine> serving_lines(const LayerPlan& plan) {
  return {{"vllm_hf_overrides", vllm_hf_overrides(plan.pattern)},
          {"sglang_json_model_override_args", sglang_override_args(plan.pattern)},
          {"transformers_config", transformers_instructions(plan.model_type)}};
}

// relative_increase as written: from the losses as printed, so a plan read back and written
// again is byte-identical.
double relative_increase(const LayerPlan& plan) { return as_printed(plan.final_loss) / as_printed(plan.baseline_loss) - 1.0; }

void write_step(YamlWriter& yaml, const SearchStep& step, int64_t number) {
  yaml.item();
  if (number > 0) yaml.integer("step", number);
  yaml.integer("removed", step.removed);
  yaml.number("loss", step.loss);
  yaml.string("pattern", step.pattern.text());
}

void write_model(YamlWriter& yaml, const LayerPlan& plan) {
  yaml.begin_map("model");
  yaml.string("model_type", plan.model_type);
  yaml.strings("architectures", plan.architectures);
  yaml.integer("num_hidden_layers", plan.num_hidden_layers);
  yaml.integer("index_topk", plan.index_topk);
  yaml.comment("path: relative to this file's folder when the model lies below it; a hub id when named by one");
  yaml.string("path", plan.model_path);
  if (plan.model_hub) {
    yaml.begin_map("hub");
    yaml.string("id", plan.model_hub->id);
    yaml.string("revision", plan.model_hub->revision);
    yaml.string("commit", plan.model_hub->commit);
    yaml.end();
  } else {
    yaml.null("hub");
  }
  yaml.string("config_sha256", plan.config_sha256);
  yaml.string("config_fields_sha256", plan.config_fields_sha256);
  yaml.comment("indexer tensors as stored: [name, dtype, shape, sha256 of the bytes]");
  yaml.begin_list("indexer_fingerprint");
  for (const TensorFingerprint& t : plan.indexer_tensors) {
    std::string shape = "[";
    for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
    yaml.flow_item("[" + YamlWriter::quote(t.name) + ", " + YamlWriter::quote(t.dtype) + ", " + shape + "], " +
                   YamlWriter::quote(t.sha256) + "]");
  }
  yaml.end();
  yaml.comment("layers the search left alone: fixed S, no indexer, MTP (next-n)");
  yaml.begin_list("excluded_layers");
  for (const ExcludedLayer& excluded : plan.excluded_layers) {
    yaml.item();
    yaml.integer("layer", excluded.layer);
    yaml.string("role", excluded.role);
    yaml.string("reason", excluded.reason);
  }
  yaml.end();
  yaml.end();
}

void write_calibration(YamlWriter& yaml, const LayerPlan& plan) {
  yaml.begin_map("calibration");
  yaml.strings("data", plan.data_specs);
  yaml.string("split", plan.split);
  yaml.integer("seq_len", plan.seq_len);
  yaml.integer("num_samples", plan.num_samples);
  yaml.integer("seed", static_cast<int64_t>(plan.seed));
  yaml.integer("sequences", plan.sequences);
  yaml.integer("tokens", plan.tokens);
  yaml.begin_list("sources");
  for (const DataSource& source : plan.sources) {
    yaml.item();
    yaml.string("spec", source.spec);
    yaml.string("path", source.path);
    yaml.string("domain", source.domain);
    yaml.number("weight", source.weight);
    yaml.string("sha256", source.sha256);
    yaml.integer("documents", source.documents);
    yaml.integer("tokens", source.tokens);
    yaml.integer("sequences", source.sequences);
  }
  yaml.end();
  yaml.end();
}

void write_search(YamlWriter& yaml, const LayerPlan& plan) {
  yaml.begin_map("search");
  yaml.string("method", plan.method);
  yaml.integer("target_kept", plan.target_kept);
  plan.keep_fraction ? yaml.number("keep_fraction", *plan.keep_fraction) : yaml.null("keep_fraction");
  plan.max_loss_increase ? yaml.number("max_loss_increase", *plan.max_loss_increase) : yaml.null("max_loss_increase");
  yaml.integers("pp_stages", plan.pp_stages);
  yaml.string("stop_rule", plan.stop_rule);
  yaml.string("dtype", plan.dtype);
  yaml.string("indexer_precision", plan.indexer_precision);
  yaml.number("baseline_loss", plan.baseline_loss);
  yaml.number("final_loss", plan.final_loss);
  yaml.number("relative_increase", relative_increase(plan));
  yaml.begin_list("trajectory");
  for (std::size_t i = 0; i < plan.trajectory.size(); ++i) write_step(yaml, plan.trajectory[i], static_cast<int64_t>(i + 1));
  yaml.end();
  if (plan.stopped_at) {
    yaml.begin_map("stopped_at");
    yaml.integer("removed", plan.stopped_at->removed);
    yaml.number("loss", plan.stopped_at->loss);
    yaml.string("pattern", plan.stopped_at->pattern.text());
    yaml.end();
  } else {
    yaml.null("stopped_at");
  }
  yaml.begin_list("uniform");
  for (const UniformPattern& uniform : plan.uniform) {
    yaml.item();
    yaml.string("name", uniform.name);
    yaml.string("pattern", uniform.pattern.text());
    yaml.number("loss", uniform.loss);
  }
  yaml.end();
  yaml.integer("layer_forwards", plan.layer_forwards);
  yaml.integer("naive_layer_forwards", plan.naive_layer_forwards);
  yaml.string("tool_version", plan.tool_version);
  yaml.end();
}

}  // namespace

std::string plan_to_yaml(const LayerPlan& plan) {
  YamlWriter yaml;
  yaml.comment("IndexCache layer plan written by indexcache-calibrate. F keeps its indexer; S reuses the");
  yaml.comment("top-k of the nearest F layer before it. Paste a `serving` line into your server's flags.");
  yaml.string("format", kPlanFormat);
  write_model(yaml, plan);
  yaml.string("pattern", plan.pattern.text());
  yaml.integers("full_layers", plan.full_layers());
  yaml.integer("kept", plan.kept());
  yaml.integer("total", plan.pattern.layers());
  write_calibration(yaml, plan);
  write_search(yaml, plan);
  yaml.begin_map("serving");
  for (const ServingLine& line : serving_lines(plan)) yaml.string(line.key, line.value);
  yaml.end();
  yaml.comment("Fields below change from run to run; --check and comparisons ignore them.");
  yaml.begin_map("volatile");
  yaml.string("created", plan.created);
  yaml.number("wall_seconds", plan.wall_seconds);
  yaml.string("device", plan.device);
  yaml.integer("layer_forwards_run", plan.layer_forwards_run);
  yaml.end();
  return yaml.text();
}

// ---------------------------------------------------------------------------------------------
// Reading

namespace {

class PlanReader {
 public:
  explicit PlanReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw InputError(path_, field + " " + problem);
  }

  YAML::Node child(const YAML::Node& node, const std::string& parent, const std::string& key) const {
    std::string field = parent.empty() ? key : parent + "." + key;
    if (!node.IsMap()) fail(parent.empty() ? "document" : parent, "must be a mapping");
    YAML::Node value = node[key];
    if (!value.IsDefined()) fail(field, "is missing");
    return value;
  }
  YAML::Node map(const YAML::Node& node, const std::string& parent, const std::string& key) const {
    YAML::Node value = child(node, parent, key);
    if (!value.IsMap()) fail(join(parent, key), "must be a mapping");
    return value;
  }
  YAML::Node list(const YAML::Node& node, const std::string& parent, const std::string& key) const {
    YAML::Node value = child(node, parent, key);
    // YamlWriter writes an empty block list as a bare "key:", which YAML reads as null.
    if (value.IsNull()) return YAML::Node(YAML::NodeType::Sequence);
    if (!value.IsSequence()) fail(join(parent, key), "must be a list");
    return value;
  }
  std::string text(const YAML::Node& node, const std::string& parent, const std::string& key) const {
    YAML::Node value = child(node, parent, key);
    if (!value.IsScalar()) fail(join(parent, key), "must be a string");
    return value.as<std::string>();
  }
  template <typename T>
  T scalar(const YAML::Node& node, const std::string& parent, const std::string& key, const char* kind) const {
    YAML::Node value = child(node, parent, key);
    try {
      if (!value.IsScalar()) throw YAML::Exception(YAML::Mark::null_mark(), "not a scalar");
      return value.as<T>();
    } catch (const YAML::Exception&) {
      fail(join(parent, key), std::string("must be ") + kind);
    }
  }
  int64_t integer(const YAML::Node& n, const std::string& p, const std::string& k) const { return scalar<int64_t>(n, p, k, "an integer"); }
  double number(const YAML::Node& n, const std::string& p, const std::string& k) const { return scalar<double>(n, p, k, "a number"); }
  std::optional<double> optional_number(const YAML::Node& n, const std::string& p, const std::string& k) const {
    YAML::Node value = child(n, p, k);
    if (value.IsNull()) return std::nullopt;
    return number(n, p, k);
  }
  std::vector<int64_t> integers(const YAML::Node& n, const std::string& p, const std::string& k) const {
    YAML::Node values = list(n, p, k);
    std::vector<int64_t> result;
    for (std::size_t i = 0; i < values.size(); ++i) {
      try {
        result.push_back(values[i].as<int64_t>());
      } catch (const YAML::Exception&) {
        fail(join(p, k) + "[" + std::to_string(i) + "]", "must be an integer");
      }
    }
    return result;
  }
  std::vector<std::string> strings(const YAML::Node& n, const std::string& p, const std::string& k) const {
    YAML::Node values = list(n, p, k);
    std::vector<std::string> result;
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!values[i].IsScalar()) fail(join(p, k) + "[" + std::to_string(i) + "]", "must be a string");
      result.push_back(values[i].as<std::string>());
    }
    return result;
  }
  static std::string join(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// model.excluded_layers, absent in plans written before it (nothing excluded then).
void read_excluded_layers(const PlanReader& r, const YAML::Node& model, LayerPlan& plan) {
  if (!model["excluded_layers"].IsDefined()) return;
  YAML::Node entries = r.list(model, "model", "excluded_layers");
  int64_t previous = -1;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string where = "model.excluded_layers[" + std::to_string(i) + "]";
    ExcludedLayer excluded{r.integer(entries[i], where, "layer"), r.text(entries[i], where, "role"),
                           r.text(entries[i], where, "reason")};
    if (excluded.role != kFixedSharedRole && excluded.role != kNoIndexerRole && excluded.role != kNextNRole) {
      r.fail(where + ".role", "is \"" + excluded.role + "\" (expected " + kFixedSharedRole + ", " + kNoIndexerRole +
                                  " or " + kNextNRole + ")");
    }
    const bool decoder_layer = excluded.role != kNextNRole;
    if (excluded.layer <= previous || excluded.layer < (decoder_layer ? 1 : plan.num_hidden_layers) ||
        (decoder_layer && excluded.layer >= plan.num_hidden_layers)) {
      r.fail(where + ".layer", std::to_string(excluded.layer) + " is out of order or outside the " +
                                   (decoder_layer ? "decoder layers 1.." + std::to_string(plan.num_hidden_layers - 1)
                                                  : "MTP layers (>= num_hidden_layers)"));
    }
    previous = excluded.layer;
    plan.excluded_layers.push_back(excluded);
  }
}

void read_model(const PlanReader& r, const YAML::Node& root, LayerPlan& plan) {
  YAML::Node model = r.map(root, "", "model");
  plan.model_type = r.text(model, "model", "model_type");
  plan.architectures = r.strings(model, "model", "architectures");
  plan.num_hidden_layers = r.integer(model, "model", "num_hidden_layers");
  if (plan.num_hidden_layers < 1) r.fail("model.num_hidden_layers", "must be at least 1");
  plan.index_topk = r.integer(model, "model", "index_topk");
  plan.model_path = r.text(model, "model", "path");
  // hub and config_fields_sha256 came later: a plan without them reads as before.
  if (model["hub"].IsDefined() && !model["hub"].IsNull()) {
    YAML::Node hub = r.map(model, "model", "hub");
    plan.model_hub = ModelHub{r.text(hub, "model.hub", "id"), r.text(hub, "model.hub", "revision"),
                              r.text(hub, "model.hub", "commit")};
  }
  plan.config_sha256 = r.text(model, "model", "config_sha256");
  if (model["config_fields_sha256"].IsDefined()) {
    plan.config_fields_sha256 = r.text(model, "model", "config_fields_sha256");
  }
  YAML::Node tensors = r.list(model, "model", "indexer_fingerprint");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    std::string where = "model.indexer_fingerprint[" + std::to_string(i) + "]";
    const YAML::Node& entry = tensors[i];
    if (!entry.IsSequence() || entry.size() != 4 || !entry[0].IsScalar() || !entry[1].IsScalar() ||
        !entry[2].IsSequence() || !entry[3].IsScalar()) {
      r.fail(where, "must be [name, dtype, shape, sha256]");
    }
    TensorFingerprint t;
    t.name = entry[0].as<std::string>();
    t.dtype = entry[1].as<std::string>();
    for (std::size_t d = 0; d < entry[2].size(); ++d) {
      try {
        t.shape.push_back(entry[2][d].as<int64_t>());
      } catch (const YAML::Exception&) {
        r.fail(where, "shape must hold integers");
      }
    }
    t.sha256 = entry[3].as<std::string>();
    plan.indexer_tensors.push_back(t);
  }
  read_excluded_layers(r, model, plan);
}

void read_calibration(const PlanReader& r, const YAML::Node& root, LayerPlan& plan) {
  const std::string c = "calibration";
  YAML::Node node = r.map(root, "", c);
  plan.data_specs = r.strings(node, c, "data");
  plan.split = r.text(node, c, "split");
  plan.seq_len = r.integer(node, c, "seq_len");
  plan.num_samples = r.integer(node, c, "num_samples");
  plan.seed = static_cast<uint64_t>(r.integer(node, c, "seed"));
  plan.sequences = r.integer(node, c, "sequences");
  plan.tokens = r.integer(node, c, "tokens");
  YAML::Node sources = r.list(node, c, "sources");
  for (std::size_t i = 0; i < sources.size(); ++i) {
    std::string where = c + ".sources[" + std::to_string(i) + "]";
    DataSource s;
    s.spec = r.text(sources[i], where, "spec");
    s.path = r.text(sources[i], where, "path");
    s.domain = r.text(sources[i], where, "domain");
    s.weight = r.number(sources[i], where, "weight");
    s.sha256 = r.text(sources[i], where, "sha256");
    s.documents = r.integer(sources[i], where, "documents");
    s.tokens = r.integer(sources[i], where, "tokens");
    s.sequences = r.integer(sources[i], where, "sequences");
    plan.sources.push_back(s);
  }
}

// The text of a pattern field, parsed for a model of `layers` layers.
LayerPattern read_pattern(const PlanReader& r, const YAML::Node& node, const std::string& where, int64_t layers) {
  return LayerPattern::parse(r.text(node, where, "pattern"), layers, r.path() + ": " + PlanReader::join(where, "pattern"));
}

SearchStep read_step(const PlanReader& r, const YAML::Node& node, const std::string& where, int64_t layers) {
  SearchStep step;
  step.removed = r.integer(node, where, "removed");
  step.loss = r.number(node, where, "loss");
  step.pattern = read_pattern(r, node, where, layers);
  return step;
}

void read_search(const PlanReader& r, const YAML::Node& root, LayerPlan& plan) {
  const std::string s = "search";
  YAML::Node node = r.map(root, "", s);
  plan.method = r.text(node, s, "method");
  if (plan.method != "greedy") r.fail("search.method", "\"" + plan.method + "\" is not known (expected greedy)");
  plan.target_kept = r.integer(node, s, "target_kept");
  plan.keep_fraction = r.optional_number(node, s, "keep_fraction");
  plan.max_loss_increase = r.optional_number(node, s, "max_loss_increase");
  plan.pp_stages = r.integers(node, s, "pp_stages");
  plan.stop_rule = r.text(node, s, "stop_rule");
  plan.dtype = r.text(node, s, "dtype");
  plan.indexer_precision = r.text(node, s, "indexer_precision");
  plan.baseline_loss = r.number(node, s, "baseline_loss");
  plan.final_loss = r.number(node, s, "final_loss");
  const int64_t layers = plan.num_hidden_layers;
  YAML::Node trajectory = r.list(node, s, "trajectory");
  for (std::size_t i = 0; i < trajectory.size(); ++i) {
    plan.trajectory.push_back(read_step(r, trajectory[i], s + ".trajectory[" + std::to_string(i) + "]", layers));
  }
  YAML::Node stopped = r.child(node, s, "stopped_at");
  if (!stopped.IsNull()) plan.stopped_at = read_step(r, stopped, s + ".stopped_at", layers);
  YAML::Node uniform = r.list(node, s, "uniform");
  for (std::size_t i = 0; i < uniform.size(); ++i) {
    std::string where = s + ".uniform[" + std::to_string(i) + "]";
    plan.uniform.push_back({r.text(uniform[i], where, "name"), read_pattern(r, uniform[i], where, layers),
                            r.number(uniform[i], where, "loss")});
  }
  plan.layer_forwards = r.integer(node, s, "layer_forwards");
  plan.naive_layer_forwards = r.integer(node, s, "naive_layer_forwards");
  plan.tool_version = r.text(node, s, "tool_version");
}

void check_pattern_fields(const PlanReader& r, const YAML::Node& root, const LayerPlan& plan) {
  if (r.integers(root, "", "full_layers") != plan.full_layers()) r.fail("full_layers", "does not match the pattern");
  if (r.integer(root, "", "kept") != plan.kept()) r.fail("kept", "does not match the pattern's F count");
  if (r.integer(root, "", "total") != plan.num_hidden_layers) r.fail("total", "does not match model.num_hidden_layers");
}

// At most this much of a field's text is quoted in a message.
std::string quoted_excerpt(const std::string& text) {
  constexpr std::size_t kLongest = 160;
  return "\"" + (text.size() > kLongest ? text.substr(0, kLongest) + "..." : text) + "\"";
}

// The fields plan_to_yaml writes from others and LayerPlan does not hold: the serving strings
// (users paste them into their servers) and relative_increase.
void check_written_fields(const PlanReader& r, const YAML::Node& root, const LayerPlan& plan) {
  const double recorded = r.number(r.map(root, "", "search"), "search", "relative_increase");
  const std::string expected = YamlWriter::format_number(relative_increase(plan));
  if (YamlWriter::format_number(recorded) != expected) {
    inconsistent(r.path(), "search.relative_increase", "is " + YamlWriter::format_number(recorded) +
                                                           ", but final_loss / baseline_loss - 1 is " + expected);
  }
  YAML::Node serving = r.map(root, "", "serving");
  for (const auto& [key, value] : serving_lines(plan)) {
    const std::string written = r.text(serving, "serving", key);
    if (written != value) {
      inconsistent(r.path(), std::string("serving.") + key,
                   "does not match the plan's pattern " + plan.pattern.text() + ": it is " + quoted_excerpt(written) +
                       ", the pattern gives \"" + value + "\"");
    }
  }
}

}  // namespace

namespace {

// Refuses a document whose values outgrow its text. Without YAML aliases every node takes at
// least half a character of the text and a scalar's characters are its own, so nodes plus
// scalar characters stay within twice the text; aliases can repeat a list inside a list (a
// thousand aliases of a thousand-entry shape are a million integers from 4 KB), which the
// reader, and anything that writes the plan back and reads it again, would hold in full (the
// plan fuzzer's 1.2 GB). A plan written by indexcache has no aliases. The walk stops at the
// limit, so it is cheap whatever the aliases multiply to.
void check_expanded_size(const YAML::Node& root, std::size_t text_bytes, const std::string& path) {
  const std::size_t limit = 2 * text_bytes + 64;
  std::size_t size = 0;
  std::vector<YAML::Node> pending{root};
  while (!pending.empty()) {
    const YAML::Node node = pending.back();
    pending.pop_back();
    size += 1 + (node.IsScalar() ? node.Scalar().size() : 0);
    if (size > limit) {
      throw InputError(path, "holds far more values than its " + std::to_string(text_bytes) +
                                 " bytes of text (YAML aliases repeating lists?); a layer plan has no aliases");
    }
    if (node.IsSequence()) {
      for (const YAML::Node& child : node) pending.push_back(child);
    } else if (node.IsMap()) {
      for (const auto& entry : node) {
        pending.push_back(entry.first);
        pending.push_back(entry.second);
      }
    }
  }
}

}  // namespace

LayerPlan read_plan(const std::string& path) {
  PlanReader r(path);
  YAML::Node root;
  try {
    const std::string text = read_regular_file(path, "a layer plan file");
    root = YAML::Load(text);
    check_expanded_size(root, text.size(), path);
  } catch (const YAML::Exception& error) {
    throw InputError(path, "is not valid YAML: line " + std::to_string(error.mark.line + 1) + ": " + error.msg);
  }
  if (!root.IsMap()) throw InputError(path, "is not a layer plan (expected a YAML mapping)");
  LayerPlan plan;
  std::string format = r.text(root, "", "format");
  if (format != kPlanFormat) r.fail("format", "is \"" + format + "\", expected \"" + kPlanFormat + "\"");
  read_model(r, root, plan);
  plan.pattern = LayerPattern::parse(r.text(root, "", "pattern"), plan.num_hidden_layers, path + ": pattern");
  check_pattern_fields(r, root, plan);
  read_calibration(r, root, plan);
  read_search(r, root, plan);
  check_plan_consistency(plan, path);  // first: a final_loss edit is named as such, not as relative_increase
  check_written_fields(r, root, plan);
  YAML::Node volatile_fields = r.map(root, "", "volatile");
  plan.created = r.text(volatile_fields, "volatile", "created");
  plan.wall_seconds = r.number(volatile_fields, "volatile", "wall_seconds");
  plan.device = r.text(volatile_fields, "volatile", "device");
  plan.layer_forwards_run = r.integer(volatile_fields, "volatile", "layer_forwards_run");
  return plan;
}

}  // namespace indexcache
