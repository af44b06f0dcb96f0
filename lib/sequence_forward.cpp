#include "sequence_forward.h"

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

double tail_nll(DsaModel& model, const at::Tensor& tail, const std::vector<int64_t>& ids, int64_t head_rows) {
  return model.sequence_nll_range(tail, ids, head_rows, static_cast<int64_t>(ids.size()));
}

int64_t forward_state_bytes(const DsaModel& model, int64_t tokens) {
  const int64_t tail_rows = tokens - model.pattern_invariant_rows(tokens);
  const int64_t element = static_cast<int64_t>(at::elementSize(model.options().dtype));
  return tail_rows * model.config().hidden_size * element + tokens * model.config().index_topk * 8;
}

std::size_t forward_group_end(const DsaModel& model, std::size_t first, std::size_t count,
                              const std::function<int64_t(std::size_t)>& state_bytes) {
  const int64_t budget = model.options().forward_group_bytes;
  int64_t bytes = state_bytes(first);
  std::size_t end = first + 1;
  while (end < count && budget > 0 && bytes + state_bytes(end) <= budget) bytes += state_bytes(end++);
  return end;
}

}  // namespace indexcache
