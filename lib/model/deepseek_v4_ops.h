// The pieces of the DeepSeek-V4 decoder as transformers 5.17 computes them (docs/ARCHITECTURE.md,
// "Model families", DeepSeek-V4), one sequence at a time. Shapes name tokens T, the rows being
// computed Q (the last Q of the T tokens), heads H, head dim D, compressed entries N.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace indexcache {

// cos / sin [positions, rotary / 2] (compute dtype) for the given positions.
struct V4RopeTables {
  at::Tensor cos;
  at::Tensor sin;
};

// Rotates the trailing `2 * tables.cos.size(-1)` channels of x [..., positions, (heads,) dim] in
// interleaved pairs (x[2i], x[2i+1]) written back in place order, leaving the leading channels
// as they are; `token_dim` is x's positions axis. `inverse` rotates by -angle (V4 undoes the
// rotation that values picked up as keys). Arithmetic in float32, result in x's dtype.
at::Tensor v4_rotate(const at::Tensor& x, const V4RopeTables& tables, int64_t token_dim, bool inverse = false);

// x * rsqrt(mean(x^2) + eps) over the last dimension, statistics in float32.
at::Tensor v4_unweighted_rms_norm(const at::Tensor& x, double eps);

// The mixing weights of one hyper-connection from the streams x [T, streams, hidden].
struct HyperMix {
  at::Tensor post;       // [T, streams] float32: how the block output spreads over the streams
  at::Tensor comb;       // [T, streams, streams] float32, doubly stochastic (Sinkhorn)
  at::Tensor collapsed;  // [T, hidden] in x's dtype: the block input
};
// `fn` [(2 + streams) * streams, streams * hidden], `base` [(2 + streams) * streams], `scale` [3].
HyperMix v4_hyper_mix(const at::Tensor& x, const at::Tensor& fn, const at::Tensor& base, const at::Tensor& scale,
                      double norm_eps, double hc_eps, int64_t sinkhorn_iters);
// post[t, i] * block_output[t] + sum_j comb[t, j, i] * x[t, j]: the streams after a block.
at::Tensor v4_hyper_combine(const HyperMix& mix, const at::Tensor& block_output, const at::Tensor& x);
// The final collapse of the streams [T, streams, hidden] to [T, hidden] (`hc_head`).
at::Tensor v4_hyper_head(const at::Tensor& x, const at::Tensor& fn, const at::Tensor& base, const at::Tensor& scale,
                         double norm_eps, double hc_eps);

// Compressed entries of the T raw positions, one per complete block of `rate` positions
// (N = T / rate, a trailing partial block gives none): entry w is the softmax(gate + ape)-
// weighted sum of its slots, RMS-normalised with `norm_weight`, and rotated at position
// w * rate. Overlapping (CSA): kv and gate [T, 2D]; entry w weighs the first D channels of block
// w-1 and the last D channels of block w (2 * rate slots; block -1 has none). Plain (HCA): kv and
// gate [T, D], entry w weighs block w. `ape` [rate, 2D or D]. Result [N, D].
at::Tensor v4_compress(const at::Tensor& kv, const at::Tensor& gate, const at::Tensor& ape, const at::Tensor& norm_weight,
                       int64_t rate, bool overlapping, const V4RopeTables& entry_rope, double eps);

// Compressed entries query t may see: those whose whole block ends at or before t, i.e.
// entry w with w < (t + 1) / rate (integer division).
int64_t v4_visible_entries(int64_t position, int64_t rate);

// The lightning indexer's choice over compressed entries for the queries at positions
// [first_position, first_position + Q): q [Q, heads, Di] (rotated), keys [N, Di] (rotated),
// head_weights [Q, heads] (already x heads^-0.5). Score of entry s: sum_h w_h * relu(q_h . k_s)
// * Di^-0.5, entries a query may not see at -inf; the top min(k, N) by score, equal scores in
// ascending entry order; picks past the query's visible entries are -1. Result [Q, min(k, N)]
// int64 (and the scores [Q, N] float32 through `scores` when given).
at::Tensor v4_indexer_select(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& head_weights, int64_t k,
                             int64_t rate, int64_t first_position, at::Tensor* scores = nullptr);

// The additive mask [Q, T + N] of queries at positions [first_position, first_position + Q)
// over the T raw keys (causal sliding window: t - window < s <= t) followed by the N compressed
// entries: for CSA (`selection` [Q, k] defined) exactly the selected entries >= 0, for HCA
// (undefined) every visible entry. 0 where attended, -inf elsewhere, in `dtype`.
at::Tensor v4_attention_mask(int64_t first_position, int64_t queries, int64_t tokens, int64_t entries, int64_t window,
                             int64_t rate, const at::Tensor& selection, at::ScalarType dtype, at::Device device);

// Eager attention with per-head sinks: q [H, Q, D], keys (= values) [K, D] shared by all heads,
// mask [Q, K], sinks [H] float32. softmax over [q.k * scale + mask, sink] with the sink column
// dropped after it, times the values. Result [Q, H, D].
at::Tensor v4_sink_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& mask, const at::Tensor& sinks,
                             double scale);

// The grouped output projection: attention [Q, H * D] in `groups` groups, each through its block
// of `o_a` [groups * rank, H * D / groups], then `o_b` [hidden, groups * rank]. Result [Q, hidden].
at::Tensor v4_grouped_output(const at::Tensor& attention, const at::Tensor& o_a, const at::Tensor& o_b, int64_t groups);

// SwiGLU with clamps: down(silu(min(gate(x), limit)) * clamp(up(x), -limit, limit)).
at::Tensor v4_clamped_swiglu(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& up, const at::Tensor& down,
                             double limit);

}  // namespace indexcache
