// The paper's training-free greedy layer selection (IndexCache, Algorithm 1; docs/ARCHITECTURE.md "Greedy
// search"): start all-F; while more than the target number of F layers remain, try turning
// each F layer except layer 0 (and pinned layers) into S, evaluate the calibration loss, and
// commit the change with the lowest loss (ties: lowest layer index).
//
// Exact reuse, twice over:
//   - prefix: a change at layer c cannot affect layers before c, so the hidden states entering
//     every layer under the current pattern are kept and a candidate is evaluated from layer c
//     onward only;
//   - head rows: positions t < index_topk select all their causal keys under any pattern, so
//     their hidden states are computed once per sequence and every forward computes only the
//     later rows (sequence_forward.h).
// The losses are bit-identical to full forwards (every forward is computed the same two-part
// way: same operations on the same inputs); tests check it.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layer_pattern.h"
#include "model.h"
#include "progress.h"
#include "search_step.h"

namespace indexcache {

class RankGroup;

struct SearchOptions {
  int64_t target_kept = 1;                  // stop when this many F layers remain
  std::optional<double> max_loss_increase;  // stop before loss > baseline * (1 + R)
  std::vector<int64_t> pinned_layers;       // never turned into S (pipeline stage starts)
  bool prefix_reuse = true;                 // false: every candidate runs all layers (for tests/benchmarks)
  // Hidden states kept on the devices for prefix reuse, at most this many bytes; the rest is kept
  // in (pinned) host memory and copied back when used. < 0: no limit.
  int64_t device_cache_bytes = -1;
  // Several processes share each step's candidates (distributed.h): this rank evaluates its
  // contiguous block and the ranks exchange the losses. Null: this process evaluates them all.
  RankGroup* ranks = nullptr;
};

struct SearchResult {
  double baseline_loss = 0.0;
  std::vector<SearchStep> trajectory;
  LayerPattern final_pattern;
  double final_loss = 0.0;
  // "target-kept" (reached the target), "max-loss-increase" (the next step would exceed
  // baseline x (1 + R)) or "no-candidates" (every remaining F layer is pinned).
  std::string stop_rule;
  // With "max-loss-increase": the best step that was not taken.
  std::optional<SearchStep> stopped_at;
  // Layer forwards (one decoder layer over one sequence's rows after its pattern-invariant head;
  // the head's own forward, once per sequence, is not counted) an uninterrupted run does, with
  // prefix reuse, and what evaluating every candidate from layer 0 would take (the naive count).
  int64_t layer_forwards = 0;
  int64_t naive_layer_forwards = 0;
  // Layer forwards this process actually ran (differs from layer_forwards after --resume).
  int64_t layer_forwards_run = 0;
  // The prefix cache's peak size, on the devices and in host memory (on the CPU: all host).
  int64_t prefix_cache_device_bytes = 0;
  int64_t prefix_cache_host_bytes = 0;
};

// Called after each committed step (for the resume journal).
using StepCommitted = std::function<void(const SearchStep&, double baseline_loss)>;

// Runs the search on `sequences`. `resume_from` holds steps committed by an earlier run of the
// same search (from its journal): they are replayed without re-evaluating their candidates.
// `resume_baseline` is that run's baseline loss, checked against a fresh computation.
SearchResult greedy_search(DsaModel& model, const std::vector<std::vector<int64_t>>& sequences,
                           const SearchOptions& options, Progress& progress,
                           const std::vector<SearchStep>& resume_from = {}, const StepCommitted& on_commit = {});

}  // namespace indexcache
