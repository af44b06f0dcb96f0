#include "pattern_evaluation.h"

#include <cstdio>

#include "device.h"
#include "evaluate.h"

namespace indexcache {
namespace {

double evaluate_with_progress(Session& session, const LayerPattern& pattern, const std::string& label,
                              Progress& progress) {
  auto report = [&](int64_t done, int64_t total) { progress.update(label, done, total, "sequences"); };
  return evaluate_pattern(*session.model, session.data.sequences, pattern, false, report).loss;
}

}  // namespace

namespace {

// Which layers run where, and the weight memory each device holds.
nlohmann::ordered_json placement_json(const DsaModel& model) {
  nlohmann::ordered_json ranges = nlohmann::ordered_json::array();
  for (const DevicePlacement& range : model.placement()) {
    ranges.push_back({{"device", range.device.str()},
                      {"layers", std::to_string(range.first_layer) + "-" + std::to_string(range.end_layer - 1)},
                      {"weight_bytes", range.weight_bytes}});
  }
  return ranges;
}

}  // namespace

nlohmann::ordered_json session_json(const Session& session) {
  nlohmann::ordered_json sources = nlohmann::ordered_json::array();
  for (const DataSource& source : session.data.sources) {
    sources.push_back({{"spec", source.spec}, {"path", source.path}, {"domain", source.domain},
                       {"weight", source.weight}, {"sha256", source.sha256}, {"documents", source.documents},
                       {"tokens", source.tokens}, {"sequences", source.sequences}});
  }
  return nlohmann::ordered_json{{"model", session.model_dir},
          {"model_type", session.config.model_type_name},
          {"num_hidden_layers", session.config.num_hidden_layers},
          {"index_topk", session.config.index_topk},
          {"tokens", session.data.total_tokens()},
          {"sequences", static_cast<int64_t>(session.data.sequences.size())},
          {"predicted_positions", session.data.predicted_positions()},
          {"data", sources},
          {"device", describe_device(session.device)},
          {"dtype", dtype_label(session.dtype)},
          {"offload", !session.model->options().keep_weights},
          {"placement", placement_json(*session.model)}};
}

EvaluationReport evaluate_patterns(Session& session, const std::vector<LayerPattern>& patterns, Progress& progress) {
  EvaluationReport report;
  // The baseline is every indexer F; a model whose family fixes some layers S (GLM-5.2's declared
  // shared layers) keeps them S, as it has no indexer there.
  const ModelFamily& family = session.model->family();
  for (const LayerPattern& pattern : patterns) family.check_pattern(pattern, "--eval");
  report.baseline_pattern = family.full_pattern();
  report.baseline_loss = evaluate_with_progress(session, report.baseline_pattern, "baseline (all F)", progress);
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    std::string label = "pattern " + std::to_string(i + 1) + "/" + std::to_string(patterns.size());
    report.evaluations.push_back({patterns[i], evaluate_with_progress(session, patterns[i], label, progress)});
  }
  report.seconds = progress.elapsed_seconds();
  return report;
}

nlohmann::ordered_json evaluation_json(const EvaluationReport& report, const Session& session) {
  nlohmann::ordered_json result = session_json(session);
  result["baseline_pattern"] = report.baseline_pattern.text();
  result["baseline_loss"] = report.baseline_loss;
  nlohmann::ordered_json evaluations = nlohmann::ordered_json::array();
  for (const PatternLoss& item : report.evaluations) {
    evaluations.push_back({{"pattern", item.pattern.text()},
                           {"kept", item.pattern.kept()},
                           {"loss", item.loss},
                           {"relative_increase", item.loss / report.baseline_loss - 1.0}});
  }
  result["evaluations"] = evaluations;
  result["seconds"] = report.seconds;
  return result;
}

std::string evaluation_table(const EvaluationReport& report) {
  std::string table;
  char line[512];
  auto row = [&](const std::string& pattern, const std::string& kept, double loss, const std::string& change) {
    std::snprintf(line, sizeof line, "%-40s %6s %12.6f %10s\n", pattern.c_str(), kept.c_str(), loss, change.c_str());
    table += line;
  };
  std::snprintf(line, sizeof line, "%-40s %6s %12s %10s\n", "pattern", "kept", "loss", "change");
  table += line;
  std::string all_f = report.baseline_pattern.layers() == 0 ? "all F" : report.baseline_pattern.text();
  row(all_f.size() > 40 ? "all F (baseline)" : all_f, "all", report.baseline_loss, "baseline");
  for (const PatternLoss& item : report.evaluations) {
    char change[32];
    std::snprintf(change, sizeof change, "%+.3f%%", 100.0 * (item.loss / report.baseline_loss - 1.0));
    std::string text = item.pattern.text();
    row(text.size() > 40 ? text.substr(0, 37) + "..." : text, std::to_string(item.pattern.kept()), item.loss, change);
  }
  return table;
}

}  // namespace indexcache
