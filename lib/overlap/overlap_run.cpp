#include "overlap_run.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include "error.h"
#include "evaluate.h"
#include "overlap.h"

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

OverlapReport measure_overlap(DsaModel& model, const CalibrationSet& data, const OverlapOptions& options,
                              Progress& progress) {
  const ModelConfig& config = model.config();
  OverlapReport report;
  report.model_layers = config.num_hidden_layers;
  report.first_layer = options.first_layer;
  report.last_layer = options.last_layer < 0 ? config.num_hidden_layers - 1 : options.last_layer;
  report.index_topk = config.index_topk;
  report.query_stride = options.query_stride;
  report.max_queries = options.max_queries;
  report.block_threshold = options.block_threshold;

  const std::vector<std::string> names = domain_names(data);
  // One accumulator each, constructed separately: copies would share one counts tensor.
  std::vector<OverlapAccumulator> accumulators;
  for (std::size_t g = 0; g < names.size(); ++g) accumulators.emplace_back(report.layers(), report.index_topk);
  std::vector<int64_t> sequence_counts(names.size(), 0);
  std::vector<double> chance_sums(names.size(), 0.0);
  // Every indexer F (a model family's fixed-S layers stay S and show their source's selection).
  const LayerPattern all_full = model.family().full_pattern();
  const auto& sequences = data.sequences;
  double nll = 0.0;
  int64_t predictions = 0;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    // One sequence at a time: only its selections are held, never the whole set's.
    SequenceEvaluation one =
        evaluate_sequence(model, sequences[i], all_full, /*capture_topk=*/true, static_cast<int64_t>(i));
    const std::string& domain = data.sources[data.sequence_source[i]].domain;
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

}  // namespace indexcache
