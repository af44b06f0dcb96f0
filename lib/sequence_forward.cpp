#include "sequence_forward.h"

#include "evaluate.h"
#include "indexer.h"

namespace indexcache {

SequenceHead forward_head(DsaModel& model, const std::vector<int64_t>& ids, int64_t sequence_index) {
  const auto tokens = static_cast<int64_t>(ids.size());
  SequenceHead head;
  head.rows = model.pattern_invariant_rows(tokens);
  const std::vector<int64_t> head_ids(ids.begin(), ids.begin() + head.rows);
  at::Tensor hidden = model.embed(head_ids);
  // Every head row selects all of its causal keys: the indexer's answer, without running it.
  const at::Tensor all_causal = all_causal_topk(head.rows, model.config().index_topk, hidden.device());
  for (int64_t layer = 0; layer < model.config().num_hidden_layers; ++layer) {
    head.hidden.push_back(hidden);
    hidden = model.forward_layer(layer, hidden, all_causal).hidden;
    check_finite(hidden, layer, sequence_index);
  }
  head.nll = model.sequence_nll_range(hidden, ids, 0, head.rows);
  return head;
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

}  // namespace indexcache
