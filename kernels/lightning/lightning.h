// Launcher interface of the fused lightning-indexer score kernel (plain C++: raw device
// pointers, sizes, a stream; no libtorch).
//
//   score[t, s] = sum_h w[t, h] * relu(softmax_scale * q[t, h, :] . k[s, :])      (s <= t)
//
// The kernel runs on Hopper tensor cores (wgmma, sm_90a): a persistent CTA owns a block of
// queries, keeps their q in shared memory and streams 64-key tiles of k through a TMA
// pipeline; two math warpgroups compute [64 keys x 128 (query, head)] tiles and reduce over
// heads in registers, so [tokens, heads, tokens] never exists (lightning_kernel.cuh has the
// design, config.h the tiles and the shared-memory plan). What happens to a finished
// [queries x 64 keys] score tile depends on the output kind:
//   TopKCandidates: a selection warp per query keeps only scores above a running threshold in
//                   a per-query candidate buffer; a second kernel (select_topk_from_candidates,
//                   select/topk_select.h) picks the exact top-k from it (the "streaming" top-k
//                   pipeline).
//   DenseScores:    writes scores [rows, row_end]: the default "chunked dense" top-k pipeline
//                   (blocks of ~2 GiB of queries, then select_topk_from_scores; why it is the
//                   default: lib/model/indexer_cuda.h and docs/PERFORMANCE.md), and tests.
//   RowMax:         max causal score per query (benchmarks: the scoring engine alone).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/topk_limit.h"

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
bool lightning_supported(ScoreElement element, int64_t heads, int64_t dim);
// True when this build holds sm_90a code and the current device runs it.
bool lightning_available();

// Entries per query of the candidate buffer: k + k + 1024 (policy in candidate_buffer.cuh).
int64_t candidate_capacity(int64_t topk);

cudaError_t lightning_scores_launch(const LightningProblem& problem, const LightningOutput& output,
                                    cudaStream_t stream);

}  // namespace indexcache::kernels
