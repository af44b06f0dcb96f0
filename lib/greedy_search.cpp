#include "greedy_search.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "error.h"
#include "evaluate.h"
#include "sequence_forward.h"

namespace indexcache {
namespace {

// For every sequence: its pattern-invariant head (sequence_forward.h, computed once), and the
// tail rows entering every layer and the selection each layer attended with under the current
// pattern: what a candidate evaluated from layer c starts from. Entries beyond the device budget
// live in host memory (pinned when they come from a GPU).
class PrefixCache {
 public:
  void reset(std::size_t sequences, int64_t layers, int64_t device_budget) {
    heads_.assign(sequences, SequenceHead());
    tail_.assign(sequences, std::vector<at::Tensor>(static_cast<std::size_t>(layers)));
    topk_.assign(sequences, std::vector<at::Tensor>(static_cast<std::size_t>(layers)));
    device_budget_ = device_budget;
    device_bytes_ = 0;
  }
  bool has_head(int64_t s) const { return !heads_[s].hidden.empty(); }
  void store_head(int64_t s, SequenceHead head) {
    for (at::Tensor& hidden : head.hidden) hidden = place(hidden);
    heads_[s] = std::move(head);
  }
  const SequenceHead& head(int64_t s) const { return heads_[s]; }
  void store(int64_t s, int64_t layer, const at::Tensor& tail, const at::Tensor& topk) {
    at::Tensor& slot = tail_[s][layer];
    if (slot.defined() && !slot.is_cpu()) device_bytes_ -= bytes(slot);
    slot = place(tail);
    topk_[s][layer] = topk;
  }
  at::Tensor tail(int64_t s, int64_t layer, const at::Device& device) const {
    return tail_[s][layer].to(device, /*non_blocking=*/true);
  }
  const at::Tensor& topk(int64_t s, int64_t layer) const { return topk_[s][layer]; }

 private:
  static int64_t bytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }
  // Where a new entry lives: on its device while the budget lasts, else in pinned host memory.
  at::Tensor place(const at::Tensor& t) {
    const bool on_device = !t.is_cpu();
    if (on_device && device_budget_ >= 0 && device_bytes_ + bytes(t) > device_budget_) {
      return t.to(at::kCPU).pin_memory();
    }
    if (on_device) device_bytes_ += bytes(t);
    return t;
  }
  std::vector<SequenceHead> heads_;
  std::vector<std::vector<at::Tensor>> tail_;
  std::vector<std::vector<at::Tensor>> topk_;
  int64_t device_budget_ = -1;
  int64_t device_bytes_ = 0;
};

class SearchRun {
 public:
  SearchRun(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences, const SearchOptions& options,
            Progress& progress)
      : model_(model), sequences_(sequences), options_(options), progress_(progress),
        layers_(model.config().num_hidden_layers) {
    for (const auto& ids : sequences_) predictions_ += static_cast<int64_t>(ids.size()) - 1;
  }

  // Forward of sequence `s` under `pattern` from layer `start` (using the cache before it),
  // returning its NLL; `record` stores the tail states it passes through into the cache. The
  // sequence's head is computed on first use and kept (it is the same under every pattern).
  double forward_from(int64_t s, const LayerPattern& pattern, int64_t start, bool record) {
    const auto& ids = sequences_[static_cast<std::size_t>(s)];
    // The first forward of a sequence (always from layer 0) computes its head alongside.
    const bool new_head = !cache_.has_head(s);
    if (new_head && start != 0) throw std::logic_error("greedy search: a sequence's first forward must start at layer 0");
    SequenceHead building = new_head ? start_head(model_, ids) : SequenceHead();
    const SequenceHead& head = new_head ? building : cache_.head(s);
    at::Tensor tail = start == 0 ? embed_tail(model_, ids, head.rows) : cache_.tail(s, start, model_.layer_device(start));
    at::Tensor last_full = start == 0 ? at::Tensor() : cache_.topk(s, pattern.source_layer(start - 1));
    for (int64_t layer = start; layer < layers_; ++layer) {
      LayerOutput out = forward_tail_layer(model_, layer, head.hidden[static_cast<std::size_t>(layer)], tail,
                                           pattern.is_full(layer) ? at::Tensor() : last_full);
      if (new_head) advance_head(model_, building, layer, ids, s);
      check_finite(out.hidden, layer, s);
      ++layer_forwards_run_;
      if (pattern.is_full(layer)) last_full = out.topk;
      if (record) cache_.store(s, layer, tail.to(model_.layer_device(layer)), out.topk);
      tail = out.hidden;
    }
    const double nll = head.nll + tail_nll(model_, tail, ids, head.rows);
    check_finite_loss(nll, s);
    if (new_head) cache_.store_head(s, std::move(building));
    return nll;
  }

  // Mean loss of `pattern` over all sequences, starting at layer `start`.
  double loss_from(const LayerPattern& pattern, int64_t start, bool record, const std::string& label) {
    record = record && options_.prefix_reuse;
    double nll = 0.0;
    const int64_t count = static_cast<int64_t>(sequences_.size());
    for (int64_t s = 0; s < count; ++s) {
      nll += forward_from(s, pattern, start, record);
      if (!label.empty()) progress_.update(label, s + 1, count, "sequences");
    }
    return nll / static_cast<double>(predictions_);
  }

  void prepare_cache() { cache_.reset(sequences_.size(), layers_, options_.device_cache_bytes); }

  bool pinned(int64_t layer) const {
    return layer == 0 ||
           std::find(options_.pinned_layers.begin(), options_.pinned_layers.end(), layer) != options_.pinned_layers.end();
  }

  std::vector<int64_t> candidates(const LayerPattern& pattern) const {
    std::vector<int64_t> result;
    for (int64_t layer : pattern.full_layers()) {
      if (!pinned(layer)) result.push_back(layer);
    }
    return result;
  }

  SearchStep evaluate_step(const LayerPattern& pattern, int64_t step, int64_t steps_total, double best_so_far) {
    SearchStep result;
    std::vector<int64_t> layers = candidates(pattern);
    for (std::size_t j = 0; j < layers.size(); ++j) {
      const int64_t layer = layers[j];
      char label[160];
      std::snprintf(label, sizeof label, "step %lld/%lld candidate %zu/%zu (layer %lld) best %.6f",
                    static_cast<long long>(step), static_cast<long long>(steps_total), j + 1, layers.size(),
                    static_cast<long long>(layer), best_so_far);
      double loss = loss_from(pattern.with_shared(layer), options_.prefix_reuse ? layer : 0, false, label);
      result.candidates.push_back({layer, loss});
      // Strictly lower wins, so equal losses keep the lowest layer index.
      if (result.candidates.size() == 1 || loss < result.loss) {
        result.loss = loss;
        result.removed = layer;
      }
    }
    result.pattern = pattern.with_shared(result.removed).text();
    return result;
  }

  // Layer forwards of one step over all sequences: each candidate c runs layers c..L-1 with
  // prefix reuse, all L layers without (the naive count).
  int64_t step_cost(const SearchStep& step, bool naive) const {
    int64_t cost = 0;
    for (const CandidateLoss& candidate : step.candidates) {
      cost += (naive || !options_.prefix_reuse) ? layers_ : layers_ - candidate.layer;
    }
    return cost * static_cast<int64_t>(sequences_.size());
  }
  // Refreshing the cache after committing `step`, needed only while the search goes on.
  int64_t refresh_cost(const SearchStep& step) const {
    return options_.prefix_reuse ? (layers_ - step.removed) * static_cast<int64_t>(sequences_.size()) : 0;
  }
  int64_t full_pass_cost() const { return layers_ * static_cast<int64_t>(sequences_.size()); }

  int64_t layer_forwards_run() const { return layer_forwards_run_; }
  int64_t layers() const { return layers_; }

 private:
  DsaModel& model_;
  const std::vector<std::vector<int64_t>>& sequences_;
  const SearchOptions& options_;
  Progress& progress_;
  int64_t layers_;
  int64_t predictions_ = 0;
  int64_t layer_forwards_run_ = 0;
  PrefixCache cache_;
};

}  // namespace

SearchResult greedy_search(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences,
                           const SearchOptions& options, Progress& progress, const std::vector<SearchStep>& resume_from,
                           const StepCommitted& on_commit) {
  SearchRun run(model, sequences, options, progress);
  const int64_t layers = run.layers();
  SearchResult result;
  LayerPattern pattern = LayerPattern::all_full(layers);
  const bool fresh = resume_from.empty();

  // The baseline forward also fills the prefix cache, unless a resumed pattern needs its own.
  run.prepare_cache();
  result.baseline_loss = run.loss_from(pattern, 0, /*record=*/fresh, "baseline (all F)");
  result.layer_forwards = result.naive_layer_forwards = run.full_pass_cost();
  for (const SearchStep& step : resume_from) {
    pattern = pattern.with_shared(step.removed);
    if (pattern.text() != step.pattern) {
      throw InputError("journal", "step removing layer " + std::to_string(step.removed) +
                                      " does not give the recorded pattern " + step.pattern);
    }
    result.trajectory.push_back(step);
    result.layer_forwards += run.step_cost(step, false) + (pattern.kept() > options.target_kept ? run.refresh_cost(step) : 0);
    result.naive_layer_forwards += run.step_cost(step, true);
  }
  if (!fresh && options.prefix_reuse) run.loss_from(pattern, 0, /*record=*/true, "rebuilding the resumed search's state");

  const int64_t steps_total = std::max<int64_t>(0, layers - options.target_kept);
  double current_loss = result.trajectory.empty() ? result.baseline_loss : result.trajectory.back().loss;
  const double limit = options.max_loss_increase ? result.baseline_loss * (1.0 + *options.max_loss_increase) : 0.0;
  result.stop_rule = "target-kept";
  while (pattern.kept() > options.target_kept) {
    if (run.candidates(pattern).empty()) {
      result.stop_rule = "no-candidates";
      break;
    }
    const int64_t step_number = static_cast<int64_t>(result.trajectory.size()) + 1;
    SearchStep step = run.evaluate_step(pattern, step_number, steps_total, current_loss);
    result.layer_forwards += run.step_cost(step, false);
    result.naive_layer_forwards += run.step_cost(step, true);
    if (options.max_loss_increase && step.loss > limit) {
      result.stop_rule = "max-loss-increase";
      result.stopped_at = step;
      break;
    }
    pattern = LayerPattern::parse(step.pattern, layers, "search");
    current_loss = step.loss;
    result.trajectory.push_back(step);
    if (on_commit) on_commit(step, result.baseline_loss);
    progress.message("step " + std::to_string(step_number) + ": layer " + std::to_string(step.removed) +
                     " -> S, loss " + std::to_string(step.loss) + ", pattern " + step.pattern);
    if (pattern.kept() > options.target_kept && options.prefix_reuse) {
      run.loss_from(pattern, step.removed, /*record=*/true, "");
      result.layer_forwards += run.refresh_cost(step);
    }
  }
  result.final_pattern = pattern.text();
  result.final_loss = current_loss;
  result.layer_forwards_run = run.layer_forwards_run();
  return result;
}

}  // namespace indexcache
