#include "deepseek_v4_ops.h"

#include <cmath>
#include <limits>
#include <vector>

#include "norm.h"

namespace indexcache {

at::Tensor v4_rotate(const at::Tensor& x, const V4RopeTables& tables, int64_t token_dim, bool inverse) {
  const int64_t half = tables.cos.size(-1);
  const int64_t rotary = 2 * half;
  const int64_t dim = x.size(-1);
  const int64_t axis = token_dim < 0 ? token_dim + x.dim() : token_dim;
  // cos/sin shaped [.., positions at `axis`, .., half] to broadcast over x's other axes.
  std::vector<int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
  shape[static_cast<std::size_t>(axis)] = x.size(axis);
  shape.back() = half;
  const at::Tensor cos = tables.cos.to(at::kFloat).reshape(shape);
  at::Tensor sin = tables.sin.to(at::kFloat).reshape(shape);
  if (inverse) sin = -sin;
  const at::Tensor rope = x.narrow(-1, dim - rotary, rotary);
  const at::Tensor even = rope.slice(-1, 0, rotary, 2).to(at::kFloat);
  const at::Tensor odd = rope.slice(-1, 1, rotary, 2).to(at::kFloat);
  // Pairs stay in place: (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin), as transformers'
  // rotate_half(stack(-odd, even)) writes them. The values feed the output projection, so the
  // channel order matters here (unlike a dot product of two rotated vectors).
  const at::Tensor rotated =
      at::stack({even * cos - odd * sin, odd * cos + even * sin}, -1).flatten(-2).to(x.scalar_type());
  if (rotary == dim) return rotated;
  return at::cat({x.narrow(-1, 0, dim - rotary), rotated}, -1);
}

at::Tensor v4_unweighted_rms_norm(const at::Tensor& x, double eps) {
  return x * at::rsqrt(x.to(at::kFloat).square().mean(-1, /*keepdim=*/true) + eps).to(x.scalar_type());
}

HyperMix v4_hyper_mix(const at::Tensor& x, const at::Tensor& fn, const at::Tensor& base, const at::Tensor& scale,
                      double norm_eps, double hc_eps, int64_t sinkhorn_iters) {
  const int64_t tokens = x.size(0);
  const int64_t streams = x.size(1);
  at::Tensor flat = v4_unweighted_rms_norm(x.reshape({tokens, -1}).to(at::kFloat), norm_eps);
  const at::Tensor mix = at::linear(flat, fn.to(at::kFloat));
  const at::Tensor base32 = base.to(at::kFloat);
  const at::Tensor scale32 = scale.to(at::kFloat);
  const at::Tensor pre_w = mix.narrow(-1, 0, streams);
  const at::Tensor post_w = mix.narrow(-1, streams, streams);
  const at::Tensor comb_w = mix.narrow(-1, 2 * streams, streams * streams).reshape({tokens, streams, streams});
  const at::Tensor pre_b = base32.narrow(0, 0, streams);
  const at::Tensor post_b = base32.narrow(0, streams, streams);
  const at::Tensor comb_b = base32.narrow(0, 2 * streams, streams * streams).reshape({streams, streams});

  HyperMix mix_out;
  const at::Tensor pre = at::sigmoid(pre_w * scale32[0] + pre_b) + hc_eps;
  mix_out.post = 2 * at::sigmoid(post_w * scale32[1] + post_b);
  // Rows then columns normalised in turn (Sinkhorn-Knopp), columns first and last: the
  // residual mixing stays doubly stochastic, so the streams' norm cannot grow layer over layer.
  at::Tensor comb = at::softmax(comb_w * scale32[2] + comb_b, -1) + hc_eps;
  comb = comb / (comb.sum(-2, /*keepdim=*/true) + hc_eps);
  for (int64_t i = 1; i < sinkhorn_iters; ++i) {
    comb = comb / (comb.sum(-1, /*keepdim=*/true) + hc_eps);
    comb = comb / (comb.sum(-2, /*keepdim=*/true) + hc_eps);
  }
  mix_out.comb = comb;
  mix_out.collapsed = (pre.unsqueeze(-1) * x).sum(1).to(x.scalar_type());
  return mix_out;
}

at::Tensor v4_hyper_combine(const HyperMix& mix, const at::Tensor& block_output, const at::Tensor& x) {
  const at::ScalarType dtype = x.scalar_type();
  return mix.post.to(dtype).unsqueeze(-1) * block_output.unsqueeze(-2) +
         at::matmul(mix.comb.to(dtype).transpose(-1, -2), x);
}

at::Tensor v4_hyper_head(const at::Tensor& x, const at::Tensor& fn, const at::Tensor& base, const at::Tensor& scale,
                         double norm_eps, double hc_eps) {
  const at::Tensor flat = v4_unweighted_rms_norm(x.flatten(1).to(at::kFloat), norm_eps);
  const at::Tensor mixes = at::linear(flat, fn.to(at::kFloat));
  const at::Tensor pre = at::sigmoid(mixes * scale.to(at::kFloat) + base.to(at::kFloat)) + hc_eps;
  return (pre.unsqueeze(-1) * x).sum(1).to(x.scalar_type());
}

at::Tensor v4_compress(const at::Tensor& kv, const at::Tensor& gate, const at::Tensor& ape, const at::Tensor& norm_weight,
                       int64_t rate, bool overlapping, const V4RopeTables& entry_rope, double eps) {
  const int64_t entries = kv.size(0) / rate;
  const int64_t channels = kv.size(1);
  const int64_t dim = overlapping ? channels / 2 : channels;
  if (entries == 0) return at::zeros({0, dim}, kv.options());
  const at::Tensor blocks = kv.narrow(0, 0, entries * rate).reshape({entries, rate, channels});
  const at::Tensor gates = gate.narrow(0, 0, entries * rate).reshape({entries, rate, channels}) + ape;
  at::Tensor slots = blocks;
  at::Tensor slot_gates = gates;
  if (overlapping) {
    // 2 * rate slots per entry: block w-1's first half of the channels, then block w's second
    // half. Entry 0 has no block before it: zero values with -inf gates (softmax weight 0).
    slots = at::zeros({entries, 2 * rate, dim}, kv.options());
    slot_gates = at::full({entries, 2 * rate, dim}, -std::numeric_limits<double>::infinity(), gates.options());
    slots.narrow(1, rate, rate).copy_(blocks.narrow(-1, dim, dim));
    slot_gates.narrow(1, rate, rate).copy_(gates.narrow(-1, dim, dim));
    if (entries > 1) {
      slots.narrow(0, 1, entries - 1).narrow(1, 0, rate).copy_(blocks.narrow(0, 0, entries - 1).narrow(-1, 0, dim));
      slot_gates.narrow(0, 1, entries - 1)
          .narrow(1, 0, rate)
          .copy_(gates.narrow(0, 0, entries - 1).narrow(-1, 0, dim));
    }
  }
  const at::Tensor weights = at::softmax(slot_gates, 1, at::kFloat).to(kv.scalar_type());
  const at::Tensor pooled = (slots * weights).sum(1);
  const at::Tensor normalised = rms_norm(pooled, norm_weight, eps).to(kv.scalar_type());
  return v4_rotate(normalised, entry_rope, 0);
}

int64_t v4_visible_entries(int64_t position, int64_t rate) { return (position + 1) / rate; }

at::Tensor v4_indexer_select(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& head_weights, int64_t k,
                             int64_t rate, int64_t first_position, at::Tensor* scores_out) {
  const int64_t queries = q.size(0);
  const int64_t entries = keys.size(0);
  const int64_t take = std::min(k, entries);
  const at::Device device = q.device();
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(device);
  if (take == 0) return at::empty({queries, 0}, long_options);
  const double softmax_scale = std::pow(static_cast<double>(q.size(-1)), -0.5);
  at::Tensor per_head = at::relu(at::matmul(q.to(at::kFloat), keys.to(at::kFloat).t())) * softmax_scale;  // [Q, H, N]
  at::Tensor scores = (per_head * head_weights.to(at::kFloat).unsqueeze(-1)).sum(1);                    // [Q, N]
  const at::Tensor positions = at::arange(first_position, first_position + queries, long_options);
  const at::Tensor visible = at::div(positions + 1, rate, "floor").unsqueeze(-1);  // [Q, 1]
  const at::Tensor entry = at::arange(entries, long_options).unsqueeze(0);          // [1, N]
  scores = scores.masked_fill(entry >= visible, -std::numeric_limits<double>::infinity());
  if (scores_out != nullptr) *scores_out = scores;
  // A stable descending sort: equal scores keep ascending entry order (docs/ARCHITECTURE.md, "Ties").
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/-1, /*descending=*/true));
  const at::Tensor chosen = order.narrow(-1, 0, take);
  return at::where(chosen >= visible, at::full_like(chosen, -1), chosen);
}

at::Tensor v4_attention_mask(int64_t first_position, int64_t queries, int64_t tokens, int64_t entries, int64_t window,
                             int64_t rate, const at::Tensor& selection, at::ScalarType dtype, at::Device device) {
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor query = at::arange(first_position, first_position + queries, long_options).unsqueeze(-1);
  const at::Tensor key = at::arange(tokens, long_options).unsqueeze(0);
  const at::Tensor raw_allowed = (key <= query).logical_and(key > query - window);  // [Q, T]
  at::Tensor entry_allowed;
  if (entries == 0) {
    entry_allowed = at::zeros({queries, 0}, long_options.dtype(at::kBool));
  } else if (selection.defined()) {
    // One extra column catches the -1 picks, then is dropped.
    at::Tensor target = at::where(selection >= 0, selection, at::full_like(selection, entries));
    entry_allowed = at::zeros({queries, entries + 1}, long_options.dtype(at::kBool));
    entry_allowed.scatter_(1, target, true);
    entry_allowed = entry_allowed.narrow(1, 0, entries);
  } else {
    const at::Tensor entry = at::arange(entries, long_options).unsqueeze(0);
    entry_allowed = entry < at::div(query + 1, rate, "floor");
  }
  const at::Tensor allowed = at::cat({raw_allowed, entry_allowed}, 1);
  at::Tensor mask = at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype).device(device));
  return mask.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
}

at::Tensor v4_sink_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& mask, const at::Tensor& sinks,
                             double scale) {
  const int64_t heads = q.size(0);
  const int64_t queries = q.size(1);
  const at::Tensor logits = at::matmul(q, keys.t()) * scale + mask;  // [H, Q, K]
  const at::Tensor sink_column = sinks.to(at::kFloat).reshape({heads, 1, 1}).expand({heads, queries, 1});
  // The sinks are float32 (as transformers keeps them), so the softmax runs in float32.
  at::Tensor combined = at::cat({logits.to(at::kFloat), sink_column}, -1);
  combined = combined - std::get<0>(combined.max(-1, /*keepdim=*/true));
  const at::Tensor probabilities = at::softmax(combined, -1).narrow(-1, 0, keys.size(0)).to(keys.scalar_type());
  return at::matmul(probabilities, keys).transpose(0, 1);  // [Q, H, D]
}

at::Tensor v4_grouped_output(const at::Tensor& attention, const at::Tensor& o_a, const at::Tensor& o_b, int64_t groups) {
  const int64_t queries = attention.size(0);
  const int64_t per_group = attention.size(1) / groups;
  const at::Tensor blocks = o_a.reshape({groups, -1, per_group}).transpose(1, 2);        // [G, in, rank]
  const at::Tensor grouped = attention.reshape({queries, groups, per_group}).transpose(0, 1);  // [G, Q, in]
  const at::Tensor projected = at::bmm(grouped, blocks).transpose(0, 1).reshape({queries, -1});
  return at::linear(projected, o_b);
}

at::Tensor v4_clamped_swiglu(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& up, const at::Tensor& down,
                             double limit) {
  const at::Tensor gated = at::silu(at::linear(x, gate).clamp_max(limit));
  const at::Tensor lifted = at::linear(x, up).clamp(-limit, limit);
  return at::linear(gated * lifted, down);
}

}  // namespace indexcache
