#include "greedy_search.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "distributed.h"
#include "error.h"
#include "sequence_forward.h"

namespace indexcache {
namespace {

// For every sequence: its pattern-invariant head (sequence_forward.h, computed once), and the
// tail rows entering every layer and the selection of every F layer under the current pattern:
// what a candidate evaluated from layer c starts from. Entries beyond the device budget live in
// host memory (pinned when they come from a GPU); selections are kept as int32 (half the bytes of
// the int64 the model uses: 1 GB instead of 2 per F layer of a 128K-token sequence).
class PrefixCache {
 public:
  void reset(std::size_t sequences, int64_t layers, int64_t device_budget) {
    heads_.assign(sequences, SequenceHead());
    tail_.assign(sequences, std::vector<at::Tensor>(static_cast<std::size_t>(layers)));
    topk_.assign(sequences, std::vector<at::Tensor>(static_cast<std::size_t>(layers)));
    device_budget_ = device_budget;
    device_bytes_ = host_bytes_ = peak_device_bytes_ = peak_host_bytes_ = 0;
  }
  bool has_head(int64_t s) const { return !heads_[s].hidden.empty(); }
  void store_head(int64_t s, SequenceHead head) {
    for (at::Tensor& hidden : head.hidden) hidden = place(hidden);
    heads_[s] = std::move(head);
  }
  const SequenceHead& head(int64_t s) const { return heads_[s]; }
  // `topk` undefined for an S layer: its selection is its source F layer's, never read from here.
  void store(int64_t s, int64_t layer, const at::Tensor& tail, const at::Tensor& topk) {
    replace(tail_[s][layer], tail);
    replace(topk_[s][layer], topk.defined() ? topk.to(at::kInt) : at::Tensor());
  }
  at::Tensor tail(int64_t s, int64_t layer, const at::Device& device) const {
    return tail_[s][layer].to(device, /*non_blocking=*/true);
  }
  // The selection of F layer `layer` on `device`, int32 as a forward holds it between layers
  // (PatternForward widens it to int64 for each S layer's run only).
  at::Tensor topk(int64_t s, int64_t layer, const at::Device& device) const {
    const at::Tensor& stored = topk_[s][layer];
    if (!stored.defined()) throw std::logic_error("greedy search: no cached selection for layer " + std::to_string(layer));
    return stored.to(device, /*non_blocking=*/true);
  }
  int64_t peak_device_bytes() const { return peak_device_bytes_; }
  int64_t peak_host_bytes() const { return peak_host_bytes_; }

 private:
  static int64_t bytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }
  void replace(at::Tensor& slot, const at::Tensor& value) {
    if (slot.defined()) (slot.is_cpu() ? host_bytes_ : device_bytes_) -= bytes(slot);
    slot = value.defined() ? place(value) : at::Tensor();
  }
  // Where a new entry lives: on its device while the budget lasts, else in pinned host memory.
  at::Tensor place(const at::Tensor& t) {
    at::Tensor placed = t;
    if (!t.is_cpu() && device_budget_ >= 0 && device_bytes_ + bytes(t) > device_budget_) {
      placed = t.to(at::kCPU).pin_memory();
    }
    (placed.is_cpu() ? host_bytes_ : device_bytes_) += bytes(placed);
    peak_device_bytes_ = std::max(peak_device_bytes_, device_bytes_);
    peak_host_bytes_ = std::max(peak_host_bytes_, host_bytes_);
    return placed;
  }
  std::vector<SequenceHead> heads_;
  std::vector<std::vector<at::Tensor>> tail_;
  std::vector<std::vector<at::Tensor>> topk_;
  int64_t device_budget_ = -1;
  int64_t device_bytes_ = 0, host_bytes_ = 0;
  int64_t peak_device_bytes_ = 0, peak_host_bytes_ = 0;
};

class SearchRun {
 public:
  SearchRun(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences, const SearchOptions& options,
            Progress& progress)
      : model_(model), sequences_(sequences), options_(options), progress_(progress),
        layers_(model.config().num_hidden_layers) {
    for (const auto& ids : sequences_) predictions_ += static_cast<int64_t>(ids.size()) - 1;
  }

  // Runs `jobs` (run_pattern_forwards: grouped and layer-major, so with --offload a layer's
  // weights are loaded once per group rather than once per forward) and returns each job's NLL.
  // A job starting at layer c takes what enters c from the prefix cache; a job with `record`
  // stores the states it passes through; a sequence's first forward leaves its head in the cache.
  std::vector<double> run_jobs(const std::vector<PlannedForward>& jobs, bool record, const std::string& label) {
    std::vector<double> nll(jobs.size(), 0.0);
    ForwardHooks hooks;
    hooks.start = [&](std::size_t j) { return start_of(jobs[j]); };
    hooks.after_layer = [&](std::size_t j, int64_t layer, const at::Tensor& entering, const LayerOutput& out) {
      ++layer_forwards_run_;
      if (record) {
        const bool full = model_.family().runs_indexer(jobs[j].pattern, layer);
        cache_.store(jobs[j].sequence, layer, entering.to(model_.layer_device(layer)), full ? out.topk : at::Tensor());
      }
    };
    hooks.finished = [&](std::size_t j, double job_nll, PatternForward& forward) {
      nll[j] = job_nll;
      if (forward.computes_head()) cache_.store_head(jobs[j].sequence, forward.take_head());
    };
    if (!label.empty()) {
      hooks.progress = [&](int64_t done, int64_t total) { progress_.update(label, done, total, "layer forwards"); };
    }
    run_pattern_forwards(model_, jobs, hooks);
    return nll;
  }

  // Mean loss of `pattern` over all sequences, starting at layer `start`.
  double loss_from(const LayerPattern& pattern, int64_t start, bool record, const std::string& label) {
    std::vector<PlannedForward> jobs;
    for (std::size_t s = 0; s < sequences_.size(); ++s) jobs.push_back({&sequences_[s], pattern, static_cast<int64_t>(s), start});
    return mean_loss(run_jobs(jobs, record && options_.prefix_reuse, label), 0, jobs.size());
  }

  void prepare_cache() { cache_.reset(sequences_.size(), layers_, options_.device_cache_bytes); }

  bool pinned(int64_t layer) const {
    return layer == 0 ||
           std::find(options_.pinned_layers.begin(), options_.pinned_layers.end(), layer) != options_.pinned_layers.end();
  }

  // Pattern positions (model_family.h; V3.2 / GLM: decoder layers): the family's searchable F
  // positions, never a fixed one (the first, a declared-shared one), nor a pinned one.
  std::vector<int64_t> candidates(const LayerPattern& pattern) const {
    return model_.family().candidates(pattern, options_.pinned_layers);
  }
  // The decoder layer of pattern position `position`: where a candidate's forward starts.
  int64_t layer_of(int64_t position) const { return model_.family().layer_of(position); }

  // The step's candidates: this process evaluates all of them, or with ranks its contiguous block
  // (balanced by layer forwards) and the ranks exchange the losses. Either way every candidate's
  // loss comes from the same forwards, and the commit rule sees every candidate in layer order.
  SearchStep evaluate_step(const LayerPattern& pattern, int64_t step, int64_t steps_total, double best_so_far) {
    const std::vector<int64_t> layers = candidates(pattern);
    std::vector<int64_t> mine = layers;
    if (options_.ranks) {
      std::vector<int64_t> costs;
      for (int64_t layer : layers) costs.push_back(options_.prefix_reuse ? layers_ - layer_of(layer) : layers_);
      const CandidateBlock block = candidate_block(costs, options_.ranks->rank(), options_.ranks->world_size());
      mine.assign(layers.begin() + static_cast<std::ptrdiff_t>(block.first), layers.begin() + static_cast<std::ptrdiff_t>(block.end));
    }
    const std::string share = options_.ranks ? ", " + std::to_string(mine.size()) + " on this rank" : "";
    char label[200];
    std::snprintf(label, sizeof label, "step %lld/%lld: %zu candidates%s, best so far %.6f", static_cast<long long>(step),
                  static_cast<long long>(steps_total), layers.size(), share.c_str(), best_so_far);
    SearchStep result;
    result.candidates = evaluate_candidates(pattern, mine, label);
    if (options_.ranks) result.candidates = options_.ranks->gather_candidates(step, result.candidates, layers);
    const CandidateLoss best = lowest_loss(result.candidates);
    result.loss = best.loss;
    result.removed = best.layer;
    result.pattern = pattern.with_shared(result.removed);
    return result;
  }

  // Each of `layers` turned into S in `pattern`, over every sequence, as one set of jobs
  // (candidate-major, so a group of jobs holds whole candidates when it can).
  std::vector<CandidateLoss> evaluate_candidates(const LayerPattern& pattern, const std::vector<int64_t>& layers,
                                                 const std::string& label) {
    const std::size_t count = sequences_.size();
    std::vector<PlannedForward> jobs;
    for (int64_t layer : layers) {
      const LayerPattern candidate = pattern.with_shared(layer);
      for (std::size_t s = 0; s < count; ++s) {
        jobs.push_back({&sequences_[s], candidate, static_cast<int64_t>(s), options_.prefix_reuse ? layer_of(layer) : 0});
      }
    }
    const std::vector<double> nll = run_jobs(jobs, false, label);
    std::vector<CandidateLoss> losses;
    for (std::size_t j = 0; j < layers.size(); ++j) losses.push_back({layers[j], mean_loss(nll, j * count, (j + 1) * count)});
    return losses;
  }

  // Layer forwards of one step over all sequences: each candidate c runs layers c..L-1 with
  // prefix reuse, all L layers without (the naive count).
  int64_t step_cost(const SearchStep& step, bool naive) const {
    int64_t cost = 0;
    for (const CandidateLoss& candidate : step.candidates) {
      cost += (naive || !options_.prefix_reuse) ? layers_ : layers_ - layer_of(candidate.layer);
    }
    return cost * static_cast<int64_t>(sequences_.size());
  }
  // Refreshing the cache after committing `step`, needed only while the search goes on.
  int64_t refresh_cost(const SearchStep& step) const {
    return options_.prefix_reuse ? (layers_ - layer_of(step.removed)) * static_cast<int64_t>(sequences_.size()) : 0;
  }
  int64_t full_pass_cost() const { return layers_ * static_cast<int64_t>(sequences_.size()); }

  int64_t layer_forwards_run() const { return layer_forwards_run_; }
  const PrefixCache& cache() const { return cache_; }
  int64_t layers() const { return layers_; }

 private:
  // What enters job's first layer: nothing cached at layer 0 (the forward embeds the sequence, and
  // computes its head unless the cache has it); else the cached tail entering that layer and the
  // selection of the F layer before it, on that layer's device.
  ForwardStart start_of(const PlannedForward& job) const {
    ForwardStart start;
    start.layer = job.start;
    if (cache_.has_head(job.sequence)) start.head = &cache_.head(job.sequence);
    if (job.start > 0) {
      const at::Device device = model_.layer_device(job.start);
      start.tail = cache_.tail(job.sequence, job.start, device);
      start.last_full = cache_.topk(job.sequence, model_.family().last_full_layer(job.pattern, job.start - 1), device);
    }
    return start;
  }

  // Mean loss per predicted position over jobs [first, end) (one per sequence, in order).
  double mean_loss(const std::vector<double>& nll, std::size_t first, std::size_t end) const {
    double sum = 0.0;
    for (std::size_t j = first; j < end; ++j) sum += nll[j];
    return sum / static_cast<double>(predictions_);
  }

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
  SearchResult result;
  // Every indexer F, fixed-S positions S (model_family.h): the baseline the search starts from.
  LayerPattern pattern = model.family().full_pattern();
  const bool fresh = resume_from.empty();

  // The baseline forward also fills the prefix cache, unless a resumed pattern needs its own.
  run.prepare_cache();
  result.baseline_loss = run.loss_from(pattern, 0, /*record=*/fresh, "baseline (all F)");
  result.layer_forwards = result.naive_layer_forwards = run.full_pass_cost();
  for (const SearchStep& step : resume_from) {
    pattern = pattern.with_shared(step.removed);
    if (pattern != step.pattern) {
      throw InputError("journal", "step removing layer " + std::to_string(step.removed) +
                                      " does not give the recorded pattern " + step.pattern.text());
    }
    result.trajectory.push_back(step);
    result.layer_forwards += run.step_cost(step, false) + (pattern.kept() > options.target_kept ? run.refresh_cost(step) : 0);
    result.naive_layer_forwards += run.step_cost(step, true);
  }
  if (!fresh && options.prefix_reuse) run.loss_from(pattern, 0, /*record=*/true, "rebuilding the resumed search's state");

  const int64_t steps_total = std::max<int64_t>(0, model.family().indexer_count() - options.target_kept);
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
    pattern = step.pattern;
    current_loss = step.loss;
    result.trajectory.push_back(step);
    if (on_commit) on_commit(step, result.baseline_loss);
    progress.message("step " + std::to_string(step_number) + ": layer " + std::to_string(step.removed) +
                     " -> S, loss " + std::to_string(step.loss) + ", pattern " + step.pattern.text());
    if (pattern.kept() > options.target_kept && options.prefix_reuse) {
      run.loss_from(pattern, run.layer_of(step.removed), /*record=*/true, "");
      result.layer_forwards += run.refresh_cost(step);
    }
  }
  result.final_pattern = pattern;
  result.final_loss = current_loss;
  result.layer_forwards_run = run.layer_forwards_run();
  result.prefix_cache_device_bytes = run.cache().peak_device_bytes();
  result.prefix_cache_host_bytes = run.cache().peak_host_bytes();
  return result;
}

}  // namespace indexcache
