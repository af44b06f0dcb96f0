#include "moe.h"

#include <limits>

#include "norm.h"

namespace indexcache {

at::Tensor dense_mlp(const DenseMlpWeights& w, const at::Tensor& x) {
  return apply_linear(at::silu(apply_linear(x, w.gate)) * apply_linear(x, w.up), w.down);
}

Routing route(const MoeWeights& w, const ModelConfig& c, const at::Tensor& x) {
  const int64_t tokens = x.size(0);
  const int64_t per_group = c.n_routed_experts / c.n_group;
  at::Tensor scores = at::sigmoid(apply_linear(x.to(at::kFloat), w.router));  // [tokens, experts]
  at::Tensor choice = scores + w.correction_bias;
  // A group's score is the sum of its two best experts; only the best topk_group groups compete.
  at::Tensor group_scores = std::get<0>(choice.view({tokens, c.n_group, per_group}).topk(2, -1)).sum(-1);
  at::Tensor groups = std::get<1>(group_scores.topk(c.topk_group, -1, /*largest=*/true, /*sorted=*/false));
  at::Tensor group_mask = at::zeros_like(group_scores).scatter_(1, groups, 1.0);
  at::Tensor expert_mask = group_mask.unsqueeze(-1).expand({tokens, c.n_group, per_group}).reshape({tokens, c.n_routed_experts});
  at::Tensor allowed = choice.masked_fill(expert_mask.logical_not(), -std::numeric_limits<float>::infinity());
  Routing routing;
  routing.experts = std::get<1>(allowed.topk(c.num_experts_per_tok, -1, /*largest=*/true, /*sorted=*/false));
  // Weights come from the uncorrected scores: the bias only steers the choice.
  at::Tensor weights = scores.gather(1, routing.experts);
  if (c.norm_topk_prob) weights = weights / (weights.sum(-1, /*keepdim=*/true) + 1e-20);
  routing.weights = weights * c.routed_scaling_factor;
  return routing;
}

at::Tensor moe_forward(const MoeWeights& w, const ModelConfig& c, const at::Tensor& x) {
  Routing routing = route(w, c, x);
  at::Tensor output = at::zeros_like(x);
  // Experts in ascending order, each over the tokens that chose it (slot-major, like
  // transformers), accumulated into the output in the compute dtype.
  // One stable sort groups the (slot, token) choices by expert, keeping slot-major order within
  // each expert, and one copy of the per-expert counts is the only host synchronisation: a
  // per-expert nonzero() would wait for the GPU once per expert (256 times a layer on
  // DeepSeek-V3.2).
  const int64_t tokens = x.size(0);
  at::Tensor by_expert = routing.experts.t().reshape({-1});  // [slots * tokens], slot-major
  at::Tensor order = std::get<1>(by_expert.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  at::Tensor counts = at::bincount(by_expert, {}, c.n_routed_experts).to(at::kCPU);
  const int64_t* count = counts.data_ptr<int64_t>();
  int64_t offset = 0;
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    const int64_t hits = count[e];
    if (hits == 0) continue;
    at::Tensor chosen = order.narrow(0, offset, hits);  // flat (slot * tokens + token), ascending
    offset += hits;
    at::Tensor slots = chosen.div(tokens, "floor");
    at::Tensor token_index = chosen - slots * tokens;
    at::Tensor expert_out = dense_mlp(w.experts[static_cast<std::size_t>(e)], x.index_select(0, token_index));
    at::Tensor flat = token_index * c.num_experts_per_tok + slots;
    at::Tensor scale = routing.weights.reshape({-1}).index_select(0, flat).unsqueeze(1);
    output.index_add_(0, token_index, (expert_out * scale).to(x.scalar_type()));
  }
  if (w.has_shared) output = output + dense_mlp(w.shared, x);
  return output;
}

}  // namespace indexcache
