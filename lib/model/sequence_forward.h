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
#include <vector>

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

// forward_tail_layer for one step of a forward under a pattern: layer `layer` is F when `full`
// (its selection then becomes `last_full`), else S attending with `last_full`. Throws when the
// output holds NaN or Inf, naming the layer and `sequence_index`.
LayerOutput forward_tail_step(DsaModel& model, int64_t layer, const at::Tensor& head_hidden, const at::Tensor& tail,
                              bool full, at::Tensor& last_full, int64_t sequence_index);

// NLL summed over the tail's predicted positions, from the tail rows leaving the last layer.
double tail_nll(DsaModel& model, const at::Tensor& tail, const std::vector<int64_t>& ids, int64_t head_rows);

// Bytes a forward of `tokens` tokens holds between layers: its tail rows and the selection
// [tokens, index_topk] int64 that later S layers reuse.
int64_t forward_state_bytes(const DsaModel& model, int64_t tokens);

// How a caller's forwards [0, count) run in run_grouped_forwards.
struct GroupedForwards {
  std::size_t count = 0;
  std::function<int64_t(std::size_t)> tokens;           // tokens of forward i
  std::function<int64_t(std::size_t)> first_layer;      // the layer forward i starts at
  std::function<void(std::size_t, int64_t)> run_layer;  // forward i through one layer
  std::function<void(std::size_t)> finish;              // forward i after its last layer
  std::function<void(int64_t, int64_t)> progress;       // (layer forwards done, total); optional
};

// Runs the forwards in consecutive groups whose state (forward_state_bytes) fits the model's
// forward_group_bytes, at least one per group. Within a group, layer-major: every forward of the
// group through layer l (from its own first layer on), then layer l + 1, so streamed weights are
// loaded once per group; each forward is finished when its group has passed the last layer.
void run_grouped_forwards(const DsaModel& model, const GroupedForwards& forwards);
}  // namespace indexcache
