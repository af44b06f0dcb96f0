// Lightning-indexer kernels (plain C++ interface: raw device pointers, sizes, a stream).
//
//   score[t, s] = sum_h w[t, h] * relu(softmax_scale * q[t, h, :] . k[s, :])      (s <= t)
//
// The score kernel (lightning_scores_launch) runs on Hopper tensor cores (wgmma, sm_90a): a
// persistent CTA owns a block of queries, keeps their q in shared memory and streams 64-key
// tiles of k through a TMA pipeline; two math warpgroups compute [64 keys x 128 (query, head)]
// tiles and reduce over heads in registers, so [tokens, heads, tokens] never exists. What
// happens to a finished [queries x 64 keys] score tile depends on the output kind:
//   TopKCandidates: a selection warp per query keeps only scores above a running threshold in
//                   a per-query candidate buffer; a second kernel (select_topk_from_candidates)
//                   picks the exact top-k from it (the "streaming" top-k pipeline).
//   DenseScores:    writes scores [rows, row_end]: the default "chunked dense" top-k pipeline
//                   (blocks of ~2 GiB of queries, then select_topk_from_scores; why it is the
//                   default: lib/indexer_cuda.h and docs/PERFORMANCE.md), and tests.
//   RowMax:         max causal score per query (benchmarks: the scoring engine alone).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace indexcache::kernels {

enum class ScoreElement { BFloat16, Float8E4M3 };
enum class ScoreOutput { TopKCandidates, DenseScores, RowMax };

struct LightningProblem {
  const void* queries = nullptr;         // [tokens, heads, dim] bf16 or e4m3 bytes, contiguous
  const void* keys = nullptr;            // [tokens, dim], same element type
  const float* weights = nullptr;        // [tokens, heads] (already includes heads^-0.5)
  const float* query_scales = nullptr;   // e4m3 only: [tokens, heads] dequantisation scales
  const float* key_scales = nullptr;     // e4m3 only: [tokens]
  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t dim = 0;
  float softmax_scale = 1.0f;
  ScoreElement element = ScoreElement::BFloat16;
  // The two math warpgroups take turns issuing their MMAs (lightning_kernel.cuh); false lets
  // them interleave, as before (kept for the benchmark's comparison).
  bool warpgroup_turns = true;
};

struct LightningOutput {
  ScoreOutput kind = ScoreOutput::TopKCandidates;
  int64_t row_begin = 0;  // queries [row_begin, row_end) against keys [0, row_end)
  int64_t row_end = 0;
  int64_t topk = 0;                        // TopKCandidates: rows t < topk are left untouched
  uint64_t* candidates = nullptr;          // TopKCandidates: [rows, candidate_capacity(topk)]
  int32_t* candidate_counts = nullptr;     // TopKCandidates: [rows]
  // DenseScores: [rows, row_end], causal entries and -inf for s > t within the key tiles of the
  // query's block, the rest untouched (prefill -inf to read whole rows); RowMax: [rows].
  float* scores = nullptr;
};

// Shapes the tensor-core kernel handles (others go through the dense path): bf16 with head dim
// 64 or 128, e4m3 with head dim 128; heads 16, 32 or 64; top-k up to kMaxTopK.
constexpr int64_t kMaxTopK = 2048;
bool lightning_supported(ScoreElement element, int64_t heads, int64_t dim);
// True when this build holds sm_90a code and the current device runs it.
bool lightning_available();

// Entries per query of the candidate buffer: k + k + 1024 (policy in lightning_kernel.cuh).
int64_t candidate_capacity(int64_t topk);

cudaError_t lightning_scores_launch(const LightningProblem& problem, const LightningOutput& output,
                                    cudaStream_t stream);

// Exact top-k of rows [row_begin, row_begin + rows) (query t = row_begin + r) into out
// [rows, k] int64: rows with t + 1 <= k get 0..t then -1; other rows the k best positions
// (higher score first, exact ties to the lower position) in ascending position order.
//   from candidates: the TopKCandidates buffers of lightning_scores_launch;
//   from scores:     a dense float row per query, `ld` floats apart, causal part [0, t].
cudaError_t select_topk_from_candidates(const uint64_t* candidates, const int32_t* counts, int64_t capacity,
                                        int64_t row_begin, int64_t rows, int64_t k, int64_t* out,
                                        cudaStream_t stream);
cudaError_t select_topk_from_scores(const float* scores, int64_t ld, int64_t row_begin, int64_t rows, int64_t k,
                                    int64_t* out, cudaStream_t stream);

// FP8 e4m3 quantisation with one scale per row, as serving engines quantise the indexer's q
// (per token and head) and k (per token): scale = max(amax(|row|) / 448, 1e-12), byte =
// e4m3(x / scale) rounded to nearest even, saturating. CPU reference: fp8_quantize_rows.
cudaError_t fp8_quantize_rows_launch(const float* input, int64_t rows, int64_t dim, uint8_t* bytes, float* scales,
                                     cudaStream_t stream);

}  // namespace indexcache::kernels
