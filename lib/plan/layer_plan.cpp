#include "layer_plan.h"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
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

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

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
  yaml.string("path", plan.model_path);
  yaml.string("config_sha256", plan.config_sha256);
  yaml.comment("indexer tensors as stored: [name, dtype, shape, sha256 of the bytes]");
  yaml.begin_list("indexer_fingerprint");
  for (const TensorFingerprint& t : plan.indexer_tensors) {
    std::string shape = "[";
    for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
    yaml.flow_item("[" + YamlWriter::quote(t.name) + ", " + YamlWriter::quote(t.dtype) + ", " + shape + "], " +
                   YamlWriter::quote(t.sha256) + "]");
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
  // From the losses as printed, so a plan read back and written again is byte-identical.
  auto printed = [](double value) { return std::strtod(YamlWriter::format_number(value).c_str(), nullptr); };
  yaml.number("relative_increase", printed(plan.final_loss) / printed(plan.baseline_loss) - 1.0);
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
  yaml.string("vllm_hf_overrides", vllm_hf_overrides(plan.pattern));
  yaml.string("sglang_json_model_override_args", sglang_override_args(plan.pattern));
  yaml.string("transformers_config", transformers_instructions(plan.model_type));
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

void read_model(const PlanReader& r, const YAML::Node& root, LayerPlan& plan) {
  YAML::Node model = r.map(root, "", "model");
  plan.model_type = r.text(model, "model", "model_type");
  plan.architectures = r.strings(model, "model", "architectures");
  plan.num_hidden_layers = r.integer(model, "model", "num_hidden_layers");
  if (plan.num_hidden_layers < 1) r.fail("model.num_hidden_layers", "must be at least 1");
  plan.index_topk = r.integer(model, "model", "index_topk");
  plan.model_path = r.text(model, "model", "path");
  plan.config_sha256 = r.text(model, "model", "config_sha256");
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

}  // namespace

LayerPlan read_plan(const std::string& path) {
  PlanReader r(path);
  YAML::Node root;
  try {
    root = YAML::Load(read_regular_file(path, "a layer plan file"));
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
  YAML::Node volatile_fields = r.map(root, "", "volatile");
  plan.created = r.text(volatile_fields, "volatile", "created");
  plan.wall_seconds = r.number(volatile_fields, "volatile", "wall_seconds");
  plan.device = r.text(volatile_fields, "volatile", "device");
  plan.layer_forwards_run = r.integer(volatile_fields, "volatile", "layer_forwards_run");
  return plan;
}

}  // namespace indexcache
