#include "sequence_forward.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "error.h"
#include "indexer.h"

namespace indexcache {

void check_finite(const at::Tensor& hidden, int64_t layer, int64_t sequence_index) {
  if (!at::isfinite(hidden).all().item<bool>()) {
    throw InputError("calibration sequence " + std::to_string(sequence_index),
                     "layer " + std::to_string(layer) +
                         " produced NaN or Inf activations (weights or inputs out of range); no result is written");
  }
}

void check_finite_loss(double nll_sum, int64_t sequence_index) {
  if (!std::isfinite(nll_sum)) {
    throw InputError("calibration sequence " + std::to_string(sequence_index),
                     "the output head gave a NaN or Inf loss (lm_head or final norm weights out of range); "
                     "no result is written");
  }
}

SequenceHead start_head(DsaModel& model, const std::vector<int64_t>& ids) {
  SequenceHead head;
  head.rows = model.pattern_invariant_rows(static_cast<int64_t>(ids.size()));
  head.hidden.push_back(model.embed(std::vector<int64_t>(ids.begin(), ids.begin() + head.rows)));
  return head;
}

void advance_head(DsaModel& model, SequenceHead& head, int64_t layer, const std::vector<int64_t>& ids,
                  int64_t sequence_index) {
  const at::Tensor& entering = head.hidden[static_cast<std::size_t>(layer)];
  // Every head row selects all of its causal keys: the indexer's answer, without running it.
  const at::Tensor all_causal = all_causal_topk(head.rows, model.config().index_topk, entering.device());
  at::Tensor leaving = model.forward_layer(layer, entering, all_causal).hidden;
  check_finite(leaving, layer, sequence_index);
  if (layer + 1 < model.config().num_hidden_layers) {
    head.hidden.push_back(leaving);
  } else {
    head.nll = model.sequence_nll_range(leaving, ids, 0, head.rows);
  }
}

at::Tensor embed_tail(DsaModel& model, const std::vector<int64_t>& ids, int64_t head_rows) {
  return model.embed(std::vector<int64_t>(ids.begin() + head_rows, ids.end()));
}

LayerOutput forward_tail_layer(DsaModel& model, int64_t layer, const at::Tensor& head_hidden, const at::Tensor& tail,
                               const at::Tensor& shared_topk) {
  const at::Device& device = model.layer_device(layer);
  at::Tensor input = at::cat({head_hidden.to(device), tail.to(device)});
  return model.forward_layer(layer, input, shared_topk, head_hidden.size(0));
}

PatternForward::PatternForward(DsaModel& model, const std::vector<int64_t>& ids, LayerPattern pattern,
                               int64_t sequence_index, const ForwardStart& start)
    : model_(&model), ids_(&ids), pattern_(std::move(pattern)), sequence_index_(sequence_index), layer_(start.layer),
      cached_(start.head) {
  if (cached_ == nullptr) {
    if (start.layer != 0) throw std::logic_error("a forward that computes its sequence's head must start at layer 0");
    building_ = start_head(model, ids);
  }
  const int64_t head_rows = model.pattern_invariant_rows(static_cast<int64_t>(ids.size()));
  tail_ = start.layer == 0 ? embed_tail(model, ids, head_rows) : start.tail;
  last_full_ = start.last_full.defined() ? start.last_full.to(at::kInt) : at::Tensor();
}

LayerOutput PatternForward::step() {
  const int64_t layer = layer_;
  const bool full = model_->family().runs_indexer(pattern_, layer);
  // The held selection is int32 (half the bytes of every forward waiting in a group); the
  // attention gathers with int64, so an S layer gets an int64 copy on its device for its run only.
  const at::Tensor shared = full ? at::Tensor() : last_full_.to(model_->layer_device(layer), at::kLong);
  LayerOutput out = forward_tail_layer(*model_, layer, head().hidden[static_cast<std::size_t>(layer)], tail_, shared);
  check_finite(out.hidden, layer, sequence_index_);
  if (full) last_full_ = out.topk.to(at::kInt);
  // After the tail: advancing the head appends to the hidden states the tail just read.
  if (building_) advance_head(*model_, *building_, layer, *ids_, sequence_index_);
  tail_ = out.hidden;
  ++layer_;
  return out;
}

double PatternForward::finish() {
  const SequenceHead& sequence_head = head();
  const double nll = sequence_head.nll + tail_nll(*model_, tail_, *ids_, sequence_head.rows);
  check_finite_loss(nll, sequence_index_);
  tail_ = last_full_ = at::Tensor();
  return nll;
}

double tail_nll(DsaModel& model, const at::Tensor& tail, const std::vector<int64_t>& ids, int64_t head_rows) {
  return model.sequence_nll_range(tail, ids, head_rows, static_cast<int64_t>(ids.size()));
}

int64_t forward_state_bytes(const DsaModel& model, int64_t tokens) {
  const int64_t tail_rows = tokens - model.pattern_invariant_rows(tokens);
  const int64_t element = static_cast<int64_t>(at::elementSize(model.options().dtype));
  constexpr int64_t kSelectionElement = 4;  // int32 positions (PatternForward::shared_selection)
  return tail_rows * model.config().hidden_size * element + tokens * model.config().index_topk * kSelectionElement;
}

void run_pattern_forwards(DsaModel& model, const std::vector<PlannedForward>& forwards, const ForwardHooks& hooks) {
  const int64_t layers = model.config().num_hidden_layers;
  const int64_t budget = model.options().forward_group_bytes;
  auto tokens = [&](std::size_t i) { return static_cast<int64_t>(forwards[i].ids->size()); };
  int64_t total = 0, done = 0;
  for (const PlannedForward& forward : forwards) total += layers - forward.start;
  std::vector<std::optional<PatternForward>> running(forwards.size());
  for (std::size_t first = 0; first < forwards.size();) {
    int64_t bytes = forward_state_bytes(model, tokens(first));
    std::size_t end = first + 1;
    while (end < forwards.size() && budget > 0 && bytes + forward_state_bytes(model, tokens(end)) <= budget) {
      bytes += forward_state_bytes(model, tokens(end++));
    }
    int64_t from = layers;
    for (std::size_t i = first; i < end; ++i) from = std::min(from, forwards[i].start);
    for (int64_t layer = from; layer < layers; ++layer) {
      for (std::size_t i = first; i < end; ++i) {
        const PlannedForward& planned = forwards[i];
        if (planned.start > layer) continue;
        if (!running[i]) {
          running[i].emplace(model, *planned.ids, planned.pattern, planned.sequence,
                             hooks.start ? hooks.start(i) : ForwardStart{});
        }
        const at::Tensor entering = running[i]->tail();
        const LayerOutput out = running[i]->step();
        if (hooks.after_layer) hooks.after_layer(i, layer, entering, out);
        ++done;
      }
      if (hooks.progress) hooks.progress(done, total);
    }
    for (std::size_t i = first; i < end; ++i) {
      const double nll = running[i]->finish();
      hooks.finished(i, nll, *running[i]);
      running[i].reset();
    }
    first = end;
  }
}

}  // namespace indexcache
