#include "domain_loss.h"

#include <algorithm>

#include "error.h"
#include "evaluate.h"
#include "layer_pattern.h"

namespace indexcache {
namespace {

struct EvaluationData {
  CalibrationSet data;
  std::vector<bool> source_heldout;  // per source of `data`
  std::string note;
};

// A source is held out when reading the held-out split gave another file than calibration did
// (plain .jsonl/.txt files have no splits and read the same file).
bool differs_from_calibration(const DataSource& source, const CalibrationSet& calibration) {
  for (const DataSource& used : calibration.sources) {
    if (used.spec == source.spec && used.domain == source.domain) return used.path != source.path;
  }
  return true;
}

EvaluationData held_out_or_calibration(const Session& session, const SessionOptions& options) {
  EvaluationData result;
  if (options.split != "heldout") {
    SessionOptions heldout = options;
    heldout.split = "heldout";
    try {
      result.data = load_session_data(session, heldout);
      for (const DataSource& source : result.data.sources) {
        result.source_heldout.push_back(differs_from_calibration(source, session.data));
      }
      if (std::find(result.source_heldout.begin(), result.source_heldout.end(), true) != result.source_heldout.end()) {
        if (std::find(result.source_heldout.begin(), result.source_heldout.end(), false) != result.source_heldout.end()) {
          result.note = "Some data (plain files) has no held-out split: those domains use the calibration data.";
        }
        return result;
      }
      result.note = "The calibration data (plain files) has no held-out split: these losses are on the calibration "
                    "data, which the search optimised, so they may flatter the plan.";
    } catch (const InputError& error) {
      result.note = std::string("No held-out split could be read (") + error.what() +
                    "): these losses are on the calibration data, which the search optimised.";
    }
  } else {
    result.note = "The search itself ran on the held-out split; these losses are on that same data.";
  }
  result.data = session.data;
  result.source_heldout.assign(result.data.sources.size(), false);
  return result;
}

struct Sums {
  int64_t sequences = 0;
  int64_t predictions = 0;
  double baseline = 0.0;
  double plan = 0.0;
  bool heldout = false;
  DomainLoss loss(const std::string& domain) const {
    double count = static_cast<double>(std::max<int64_t>(1, predictions));
    return {domain, heldout ? "heldout" : "calibration", sequences, predictions, baseline / count, plan / count};
  }
};

}  // namespace

DomainLossReport evaluate_domain_losses(Session& session, const SessionOptions& options, const LayerPattern& plan,
                                        Progress& progress) {
  EvaluationData evaluation = held_out_or_calibration(session, options);
  const CalibrationSet& data = evaluation.data;
  // The model's own baseline: every indexer F (fixed-S layers of its family stay S).
  const LayerPattern all_full = session.model->family().full_pattern();

  std::vector<std::string> names;
  std::vector<Sums> sums;
  Sums total;
  const int64_t count = static_cast<int64_t>(data.sequences.size());
  for (int64_t i = 0; i < count; ++i) {
    const int source = data.sequence_source[static_cast<std::size_t>(i)];
    const std::string& domain = data.sources[static_cast<std::size_t>(source)].domain;
    auto found = std::find(names.begin(), names.end(), domain);
    if (found == names.end()) {
      names.push_back(domain);
      sums.emplace_back();
      found = names.end() - 1;
    }
    Sums& group = sums[static_cast<std::size_t>(found - names.begin())];
    const auto& ids = data.sequences[static_cast<std::size_t>(i)];
    SequenceEvaluation baseline = evaluate_sequence(*session.model, ids, all_full, false, i);
    SequenceEvaluation chosen = evaluate_sequence(*session.model, ids, plan, false, i);
    for (Sums* target : {&group, &total}) {
      target->sequences += 1;
      target->predictions += baseline.predictions;
      target->baseline += baseline.nll_sum;
      target->plan += chosen.nll_sum;
    }
    group.heldout = evaluation.source_heldout[static_cast<std::size_t>(source)];
    progress.update("per-domain loss (all F and plan)", i + 1, count, "sequences");
  }

  DomainLossReport report;
  int heldout_domains = 0;
  for (std::size_t g = 0; g < names.size(); ++g) {
    report.domains.push_back(sums[g].loss(names[g]));
    heldout_domains += sums[g].heldout;
  }
  total.heldout = heldout_domains > 0;
  report.all = total.loss("all");
  report.evaluated_on = heldout_domains == 0 ? "calibration"
                        : heldout_domains == static_cast<int>(names.size()) ? "heldout"
                                                                              : "mixed";
  if (report.evaluated_on == "mixed") report.all.split = "mixed";
  report.note = evaluation.note;
  return report;
}

}  // namespace indexcache
