#include "sequence_forward.h"

#include <algorithm>

#include "evaluate.h"
#include "indexer.h"

namespace indexcache {

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

LayerOutput forward_tail_step(DsaModel& model, int64_t layer, const at::Tensor& head_hidden, const at::Tensor& tail,
                              bool full, at::Tensor& last_full, int64_t sequence_index) {
  LayerOutput out = forward_tail_layer(model, layer, head_hidden, tail, full ? at::Tensor() : last_full);
  check_finite(out.hidden, layer, sequence_index);
  if (full) last_full = out.topk;
  return out;
}

double tail_nll(DsaModel& model, const at::Tensor& tail, const std::vector<int64_t>& ids, int64_t head_rows) {
  return model.sequence_nll_range(tail, ids, head_rows, static_cast<int64_t>(ids.size()));
}

int64_t forward_state_bytes(const DsaModel& model, int64_t tokens) {
  const int64_t tail_rows = tokens - model.pattern_invariant_rows(tokens);
  const int64_t element = static_cast<int64_t>(at::elementSize(model.options().dtype));
  return tail_rows * model.config().hidden_size * element + tokens * model.config().index_topk * 8;
}

void run_grouped_forwards(const DsaModel& model, const GroupedForwards& f) {
  const int64_t layers = model.config().num_hidden_layers;
  const int64_t budget = model.options().forward_group_bytes;
  int64_t total = 0, done = 0;
  for (std::size_t i = 0; i < f.count; ++i) total += layers - f.first_layer(i);
  for (std::size_t first = 0; first < f.count;) {
    int64_t bytes = forward_state_bytes(model, f.tokens(first));
    std::size_t end = first + 1;
    while (end < f.count && budget > 0 && bytes + forward_state_bytes(model, f.tokens(end)) <= budget) {
      bytes += forward_state_bytes(model, f.tokens(end++));
    }
    int64_t from = layers;
    for (std::size_t i = first; i < end; ++i) from = std::min(from, f.first_layer(i));
    for (int64_t layer = from; layer < layers; ++layer) {
      for (std::size_t i = first; i < end; ++i) {
        if (f.first_layer(i) > layer) continue;
        f.run_layer(i, layer);
        ++done;
      }
      if (f.progress) f.progress(done, total);
    }
    for (std::size_t i = first; i < end; ++i) f.finish(i);
    first = end;
  }
}

}  // namespace indexcache
