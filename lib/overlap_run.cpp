#include "overlap_run.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include "error.h"
#include "evaluate.h"
#include "overlap.h"
#include "pattern_evaluation.h"

namespace indexcache {
namespace {

int64_t parse_layer_number(const std::string& text, const std::string& range) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw InputError("--layers", "\"" + range + "\" must be a range of layers FIRST-LAST, e.g. 0-15");
  }
  return std::stoll(text);
}

// Domain names become file names: keep letters, digits, '-', '_' and '.', replace the rest, and
// make every name unique (the all-data group owns "all").
std::string file_stem_for(const std::string& name, std::vector<std::string>& taken) {
  std::string stem;
  for (char c : name) stem += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  if (stem.empty() || stem[0] == '.') stem = "domain" + stem;
  std::string unique = stem;
  for (int suffix = 2; std::find(taken.begin(), taken.end(), unique) != taken.end(); ++suffix) {
    unique = stem + "-" + std::to_string(suffix);
  }
  taken.push_back(unique);
  return unique;
}

// Every query_stride-th query, further thinned so that at most max_queries of a sequence's
// queries are measured (the stride grows; the measured queries stay evenly spread).
int64_t effective_stride(int64_t tokens, int64_t k, const OverlapOptions& options) {
  const int64_t candidates = tokens - k;
  if (options.max_queries <= 0 || candidates <= 0) return options.query_stride;
  const int64_t needed = (candidates + options.max_queries - 1) / options.max_queries;
  return std::max(options.query_stride, needed);
}

// The groups of sequences: domain names in the order they first appear in the data.
std::vector<std::string> domain_names(const CalibrationSet& data) {
  std::vector<std::string> names;
  for (const DataSource& source : data.sources) {
    if (std::find(names.begin(), names.end(), source.domain) == names.end()) names.push_back(source.domain);
  }
  return names;
}

std::vector<std::vector<double>> mean_overlap(const at::Tensor& counts, int64_t measured, int64_t k) {
  const int64_t layers = counts.size(0);
  std::vector<std::vector<double>> matrix(static_cast<std::size_t>(layers), std::vector<double>(layers, 0.0));
  if (measured == 0) return matrix;
  at::Tensor mean = counts / static_cast<double>(measured * k);
  auto values = mean.accessor<double, 2>();
  for (int64_t a = 0; a < layers; ++a) {
    for (int64_t b = 0; b < layers; ++b) matrix[a][b] = values[a][b];
  }
  return matrix;
}

nlohmann::ordered_json statistics_json(const DomainOverlap& group) {
  nlohmann::ordered_json nearest = nlohmann::ordered_json::array();
  for (const EarlierNeighbour& item : group.statistics.nearest) {
    nearest.push_back({{"layer", item.layer},
                       {"earlier", item.earlier ? nlohmann::ordered_json(*item.earlier) : nlohmann::ordered_json()},
                       {"overlap", item.earlier ? nlohmann::ordered_json(item.overlap) : nlohmann::ordered_json()}});
  }
  nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
  for (const OverlapBlock& block : group.statistics.blocks) {
    blocks.push_back({{"first", block.first}, {"last", block.last}, {"min_overlap", block.min_overlap}});
  }
  return {{"adjacent", group.statistics.adjacent}, {"nearest_earlier", nearest}, {"blocks", blocks}};
}

std::string blocks_text(const std::vector<OverlapBlock>& blocks) {
  if (blocks.empty()) return "none";
  std::string text;
  for (const OverlapBlock& block : blocks) {
    text += (text.empty() ? "" : ", ") + std::to_string(block.first) + "-" + std::to_string(block.last);
  }
  return text;
}

}  // namespace

void check_overlap_options(const OverlapOptions& options) {
  if (options.query_stride < 1) {
    throw InputError("--query-stride", "must be at least 1, got " + std::to_string(options.query_stride));
  }
  if (options.max_queries < 0) {
    throw InputError("--max-queries", "must be at least 1, got " + std::to_string(options.max_queries));
  }
  if (!(options.block_threshold >= 0.0 && options.block_threshold <= 1.0)) {
    char value[32];
    std::snprintf(value, sizeof value, "%g", options.block_threshold);
    throw InputError("--block-threshold", std::string("must be in [0, 1] (an overlap fraction), got ") + value);
  }
}

void apply_layer_range(const std::string& text, int64_t layers, OverlapOptions& options) {
  std::size_t dash = text.find('-');
  if (dash == std::string::npos) {
    throw InputError("--layers", "\"" + text + "\" must be a range of layers FIRST-LAST, e.g. 0-15");
  }
  int64_t first = parse_layer_number(text.substr(0, dash), text);
  int64_t last = parse_layer_number(text.substr(dash + 1), text);
  if (last >= layers) {
    throw InputError("--layers", text + " is outside the model: it has layers 0-" + std::to_string(layers - 1));
  }
  if (first >= last) throw InputError("--layers", text + " must name at least two layers, FIRST < LAST");
  options.first_layer = first;
  options.last_layer = last;
}

OverlapReport measure_overlap(Session& session, const OverlapOptions& options, Progress& progress) {
  const ModelConfig& config = session.config;
  OverlapReport report;
  report.model_layers = config.num_hidden_layers;
  report.first_layer = options.first_layer;
  report.last_layer = options.last_layer < 0 ? config.num_hidden_layers - 1 : options.last_layer;
  report.index_topk = config.index_topk;
  report.query_stride = options.query_stride;
  report.max_queries = options.max_queries;
  report.block_threshold = options.block_threshold;

  const std::vector<std::string> names = domain_names(session.data);
  // One accumulator each, constructed separately: copies would share one counts tensor.
  std::vector<OverlapAccumulator> accumulators;
  for (std::size_t g = 0; g < names.size(); ++g) accumulators.emplace_back(report.layers(), report.index_topk);
  std::vector<int64_t> sequence_counts(names.size(), 0);
  std::vector<double> chance_sums(names.size(), 0.0);
  const LayerPattern all_full = LayerPattern::all_full(config.num_hidden_layers);
  const auto& sequences = session.data.sequences;
  double nll = 0.0;
  int64_t predictions = 0;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    // One sequence at a time: only its selections are held, never the whole set's.
    SequenceEvaluation one =
        evaluate_sequence(*session.model, sequences[i], all_full, /*capture_topk=*/true, static_cast<int64_t>(i));
    const std::string& domain = session.data.sources[session.data.sequence_source[i]].domain;
    std::size_t group = static_cast<std::size_t>(std::find(names.begin(), names.end(), domain) - names.begin());
    std::vector<at::Tensor> selected(one.topk.begin() + report.first_layer, one.topk.begin() + report.last_layer + 1);
    const int64_t tokens = static_cast<int64_t>(sequences[i].size());
    const int64_t stride = effective_stride(tokens, report.index_topk, options);
    accumulators[group].add(selected, stride);
    // The same queries as the accumulator measures: t = k, k + stride, ... < tokens.
    for (int64_t t = report.index_topk; t < tokens; t += stride) {
      chance_sums[group] += static_cast<double>(report.index_topk) / static_cast<double>(t + 1);
    }
    ++sequence_counts[group];
    nll += one.nll_sum;
    predictions += one.predictions;
    progress.update("all-F forward", static_cast<int64_t>(i + 1), static_cast<int64_t>(sequences.size()), "sequences");
  }

  // All data: the domains' intersection counts summed (the same as accumulating every sequence once).
  std::vector<std::string> taken;
  auto mean_chance = [](double sum, int64_t measured) { return measured > 0 ? sum / static_cast<double>(measured) : 0.0; };
  DomainOverlap all{"all", file_stem_for("all", taken), static_cast<int64_t>(sequences.size()), 0, 0.0, {}, {}};
  at::Tensor counts = at::zeros({report.layers(), report.layers()}, at::kDouble);
  double chance_sum = 0.0;
  for (std::size_t g = 0; g < accumulators.size(); ++g) {
    counts += accumulators[g].counts();
    all.measured_queries += accumulators[g].measured_queries();
    chance_sum += chance_sums[g];
  }
  all.chance_overlap = mean_chance(chance_sum, all.measured_queries);
  all.overlap = mean_overlap(counts, all.measured_queries, report.index_topk);
  report.domains.push_back(all);
  // Per domain only when there is more than one with data (else it would repeat "all").
  const auto with_data = std::count_if(sequence_counts.begin(), sequence_counts.end(), [](int64_t n) { return n > 0; });
  if (with_data > 1) {
    for (std::size_t g = 0; g < names.size(); ++g) {
      if (sequence_counts[g] == 0) continue;
      report.domains.push_back({names[g], file_stem_for(names[g], taken), sequence_counts[g],
                                accumulators[g].measured_queries(),
                                mean_chance(chance_sums[g], accumulators[g].measured_queries()),
                                accumulators[g].matrix(), {}});
    }
  }
  for (DomainOverlap& group : report.domains) {
    group.statistics = overlap_statistics(group.overlap, report.first_layer, report.block_threshold);
  }
  report.baseline_loss = predictions > 0 ? nll / static_cast<double>(predictions) : 0.0;
  report.seconds = progress.elapsed_seconds();
  return report;
}

nlohmann::ordered_json overlap_json(const OverlapReport& report, const Session& session, bool with_files) {
  nlohmann::ordered_json result{{"format", kOverlapFormat}};
  // Named copies: iterating items() of a temporary would outlive it.
  const nlohmann::ordered_json description = session_json(session);
  for (const auto& [key, value] : description.items()) result[key] = value;
  const DomainOverlap& all = report.all();
  result["layers"] = report.layers();
  result["first_layer"] = report.first_layer;
  result["last_layer"] = report.last_layer;
  result["index_topk"] = report.index_topk;
  result["query_stride"] = report.query_stride;
  result["max_queries"] = report.max_queries > 0 ? nlohmann::ordered_json(report.max_queries) : nlohmann::ordered_json();
  result["block_threshold"] = report.block_threshold;
  result["measured_queries"] = all.measured_queries;
  result["chance_overlap"] = all.chance_overlap;
  result["baseline_loss"] = report.baseline_loss;
  result["overlap"] = all.overlap;
  const nlohmann::ordered_json all_statistics = statistics_json(all);
  for (const auto& [key, value] : all_statistics.items()) result[key] = value;
  nlohmann::ordered_json domains = nlohmann::ordered_json::array();
  for (const DomainOverlap& group : report.domains) {
    nlohmann::ordered_json entry{{"domain", group.name},
                                 {"sequences", group.sequences},
                                 {"measured_queries", group.measured_queries},
                                 {"chance_overlap", group.chance_overlap},
                                 {"overlap", group.overlap}};
    const nlohmann::ordered_json statistics = statistics_json(group);
    for (const auto& [key, value] : statistics.items()) entry[key] = value;
    if (with_files) {
      entry["csv"] = "overlap-" + group.file_stem + ".csv";
      entry["svg"] = "overlap-" + group.file_stem + ".svg";
    }
    domains.push_back(entry);
  }
  result["domains"] = domains;
  if (with_files) result["report"] = "report.html";
  result["seconds"] = report.seconds;
  return result;
}

std::string block_strip(const std::vector<double>& values) {
  static const char* blocks[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string strip;
  for (double value : values) {
    int level = static_cast<int>(std::lround(std::clamp(value, 0.0, 1.0) * 8.0));
    strip += blocks[level];
  }
  return strip;
}

std::string overlap_summary(const OverlapReport& report) {
  std::string text;
  char line[512];
  const DomainOverlap& all = report.all();
  std::snprintf(line, sizeof line, "layers %lld-%lld of %lld, top-%lld, %lld measured queries, baseline loss %.6f\n",
                static_cast<long long>(report.first_layer), static_cast<long long>(report.last_layer),
                static_cast<long long>(report.model_layers), static_cast<long long>(report.index_topk),
                static_cast<long long>(all.measured_queries), report.baseline_loss);
  text += line;
  if (all.measured_queries == 0) {
    return text + "no query had more than index_topk causal candidates: use longer sequences (--seq-len)\n";
  }
  std::snprintf(line, sizeof line, "chance level %.3f (random top-%lld choices on the same queries would overlap this much)\n",
                all.chance_overlap, static_cast<long long>(report.index_topk));
  text += line;
  std::size_t width = 6;
  for (const DomainOverlap& group : report.domains) width = std::max(width, group.name.size());
  std::snprintf(line, sizeof line, "%-*s %6s %8s %9s %14s  blocks (overlap >= %.2f)\n", static_cast<int>(width),
                "domain", "seqs", "queries", "adj mean", "adj min (at)", report.block_threshold);
  text += line;
  for (const DomainOverlap& group : report.domains) {
    if (group.measured_queries == 0) {
      std::snprintf(line, sizeof line, "%-*s %6lld %8d  (no query with more than top-k candidates)\n",
                    static_cast<int>(width), group.name.c_str(), static_cast<long long>(group.sequences), 0);
      text += line;
      continue;
    }
    const std::vector<double>& adjacent = group.statistics.adjacent;
    double mean = 0.0;
    for (double value : adjacent) mean += value;
    mean /= static_cast<double>(std::max<std::size_t>(1, adjacent.size()));
    std::size_t lowest = static_cast<std::size_t>(std::min_element(adjacent.begin(), adjacent.end()) - adjacent.begin());
    char minimum[48];
    std::snprintf(minimum, sizeof minimum, "%.3f (%lld)", adjacent.empty() ? 0.0 : adjacent[lowest],
                  static_cast<long long>(report.first_layer + static_cast<int64_t>(lowest) + 1));
    std::snprintf(line, sizeof line, "%-*s %6lld %8lld %9.3f %14s  %s\n", static_cast<int>(width), group.name.c_str(),
                  static_cast<long long>(group.sequences), static_cast<long long>(group.measured_queries), mean, minimum,
                  blocks_text(group.statistics.blocks).c_str());
    text += line;
  }
  text += "adjacent overlap, layer l vs l-1 for l = " + std::to_string(report.first_layer + 1) + ".." +
          std::to_string(report.last_layer) + " (block height = overlap, full = 1):\n";
  for (const DomainOverlap& group : report.domains) {
    std::snprintf(line, sizeof line, "  %-*s |", static_cast<int>(width), group.name.c_str());
    text += line + block_strip(group.statistics.adjacent) + "|\n";
  }
  return text;
}

}  // namespace indexcache
