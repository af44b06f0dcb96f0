// Exact per-row top-k (plain C++ launchers: raw device pointers, sizes, a stream). The
// algorithm is described in topk_select.cu; the CPU reference is select_topk in
// lib/model/indexer.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/topk_limit.h"

namespace indexcache::kernels {

// Exact top-k of rows [row_begin, row_begin + rows) (query t = row_begin + r) into out
// [rows, k] int64: rows with t + 1 <= k get 0..t then -1; other rows the k best positions
// (higher score first, exact ties to the lower position) in ascending position order.
// k is at most kMaxTopK.
//   from candidates: the TopKCandidates buffers of lightning_scores_launch (lightning/lightning.h):
//                    candidates [rows, capacity] uint64 composites, counts [rows] entries used;
//   from scores:     a dense float row per query, `ld` floats apart, causal part [0, t].
cudaError_t select_topk_from_candidates(const uint64_t* candidates, const int32_t* counts, int64_t capacity,
                                        int64_t row_begin, int64_t rows, int64_t k, int64_t* out,
                                        cudaStream_t stream);
cudaError_t select_topk_from_scores(const float* scores, int64_t ld, int64_t row_begin, int64_t rows, int64_t k,
                                    int64_t* out, cudaStream_t stream);

}  // namespace indexcache::kernels
