// A sequence's forward in two parts, the way every loss in indexcache is computed.
//
// Positions t < index_topk attend to every causal key under any F/S pattern (the indexer's
// selection rule, indexer.h), so their hidden states at every layer do not depend on the
// pattern. A forward is therefore computed as
//   1. the head: those rows as a sequence of their own (no indexer needed), and
//   2. the tail: the remaining rows, layer by layer, attending to the head's rows of the same
//      layer as keys and values.
// The head is computed once per calibration sequence and reused by every pattern the search
// tries, which saves its share (index_topk / tokens) of every candidate's work; computing every
// forward the same way keeps losses bit-identical between the search's shortcuts and full
// evaluations (same operations on the same shapes).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <vector>

#include "layer_pattern.h"
#include "model.h"

namespace indexcache {

struct SequenceHead {
  int64_t rows = 0;                // min(index_topk, tokens)
  std::vector<at::Tensor> hidden;  // [layers] of [rows, hidden]: the head entering each layer
  double nll = 0.0;                // NLL summed over the head's predicted positions
};

// The head of `ids`, a layer at a time, so a caller runs the head and the tail of a layer back to
// back (with --offload, one load of the layer's weights serves both): start_head embeds the head
// rows; advance_head runs layer `layer` on them (head.hidden must hold the head entering it) and,
// after the last layer, sets head.nll. `sequence_index` names the sequence in errors.
SequenceHead start_head(DsaModel& model, const std::vector<int64_t>& ids);
void advance_head(DsaModel& model, SequenceHead& head, int64_t layer, const std::vector<int64_t>& ids,
                  int64_t sequence_index);

// The tail rows entering layer 0: [tokens - head_rows, hidden].
at::Tensor embed_tail(DsaModel& model, const std::vector<int64_t>& ids, int64_t head_rows);

// Layer `layer` on the tail rows `tail` [tokens - head_rows, hidden] entering it, with the head's
// rows `head_hidden` [head_rows, hidden] of that layer in front: out.hidden is the tail leaving
// the layer, out.topk the selection of every row [tokens, index_topk].
LayerOutput forward_tail_layer(DsaModel& model, int64_t layer, const at::Tensor& head_hidden, const at::Tensor& tail,
                               const at::Tensor& shared_topk);

// NLL summed over the tail's predicted positions, from the tail rows leaving the last layer.
double tail_nll(DsaModel& model, const at::Tensor& tail, const std::vector<int64_t>& ids, int64_t head_rows);

// Bytes a forward of `tokens` tokens holds between layers: its tail rows and the selection
// [tokens, index_topk] int32 that later S layers reuse (at 128K tokens and k = 2048 that is
// 1 GiB a forward; int64 would be 2 GiB and halve the forwards that share a weight load).
int64_t forward_state_bytes(const DsaModel& model, int64_t tokens);

// Throws when `hidden` holds NaN or Inf ("layer L, calibration sequence S").
void check_finite(const at::Tensor& hidden, int64_t layer, int64_t sequence_index);
// Throws when a sequence's summed NLL is NaN or Inf (finite activations, overflowing logits):
// a loss like that must never reach the search or a plan.
void check_finite_loss(double nll_sum, int64_t sequence_index);

// Where a forward starts. Layer 0 with no head: the forward embeds the sequence and computes its
// head alongside. Later layers take what a prefix cache kept from an earlier forward.
struct ForwardStart {
  int64_t layer = 0;                   // the first layer to run
  const SequenceHead* head = nullptr;  // the sequence's head, computed earlier; null: computed alongside (layer 0)
  at::Tensor tail;                     // [tokens - head rows, hidden]: the tail entering `layer` (layer > 0)
  at::Tensor last_full;                // [tokens, index_topk] int32 or int64: the selection of the F layer before `layer` (layer > 0)
};

// One sequence's forward under a pattern, a layer at a time: the one driver behind every loss
// (search candidates, pattern evaluations, overlap, domain losses). F layers select and their
// selection becomes the one later S layers reuse; every layer's output is checked for NaN/Inf.
class PatternForward {
 public:
  PatternForward(DsaModel& model, const std::vector<int64_t>& ids, LayerPattern pattern, int64_t sequence_index,
                 const ForwardStart& start = {});
  int64_t layer() const { return layer_; }          // the layer the next step runs
  const at::Tensor& tail() const { return tail_; }  // the tail rows entering layer()
  // The selection later S layers reuse, [tokens, index_topk] int32 (undefined before the first
  // F layer): what the forward holds between layers besides its tail (forward_state_bytes).
  const at::Tensor& shared_selection() const { return last_full_; }
  // Runs layer(): out.hidden is the tail leaving it, out.topk its selection [tokens, index_topk].
  LayerOutput step();
  // After the last layer: the NLL summed over every predicted position (head and tail);
  // throws when it is not finite. Releases the forward's tensors.
  double finish();
  // Whether this forward computed the sequence's head, and that head (after finish(), for a cache).
  bool computes_head() const { return building_.has_value(); }
  SequenceHead take_head() { return std::move(*building_); }

 private:
  const SequenceHead& head() const { return building_ ? *building_ : *cached_; }

  DsaModel* model_;
  const std::vector<int64_t>* ids_;
  LayerPattern pattern_;
  int64_t sequence_index_;
  int64_t layer_;
  std::optional<SequenceHead> building_;
  const SequenceHead* cached_ = nullptr;
  at::Tensor tail_;
  at::Tensor last_full_;
};

// A forward for run_pattern_forwards: sequence `ids` (index `sequence` in errors) under `pattern`
// from layer `start` on.
struct PlannedForward {
  const std::vector<int64_t>* ids = nullptr;
  LayerPattern pattern;
  int64_t sequence = 0;
  int64_t start = 0;
};

// What a caller adds to the runner's forwards [0, count): where forward i starts (default: layer 0,
// head computed alongside), what to keep after each of its layers (the tail that entered it and
// the layer's output), and what to do with its NLL once it has passed the last layer.
struct ForwardHooks {
  std::function<ForwardStart(std::size_t)> start;
  std::function<void(std::size_t, int64_t, const at::Tensor&, const LayerOutput&)> after_layer;
  std::function<void(std::size_t, double, PatternForward&)> finished;
  std::function<void(int64_t, int64_t)> progress;  // (layer forwards done, total)
};

// Runs the forwards in consecutive groups whose state (forward_state_bytes) fits the model's
// forward_group_bytes, at least one per group. Within a group, layer-major: every forward of the
// group through layer l (from its own first layer on), then layer l + 1, so streamed weights are
// loaded once per group; a forward's state exists only while its group runs. Every forward
// computes the same operations on the same inputs in any grouping, so losses do not depend on it.
void run_pattern_forwards(DsaModel& model, const std::vector<PlannedForward>& forwards, const ForwardHooks& hooks);

}  // namespace indexcache
