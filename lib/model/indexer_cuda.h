// The lightning indexer on CUDA tensors (lib/model/indexer_cuda.cpp, built only against a CUDA
// libtorch with the kernels; indexer_topk in indexer.h dispatches here).
//
// Which kernels run, by IndexerPrecision (the choice keeps each mode's CPU semantics):
//   BFloat16, or Model with q and k exactly representable in bf16 (a bf16 model):
//       the tensor-core score kernel on bf16 operands (products exact, fp32 accumulation);
//   Float8: the tensor-core kernel on e4m3 q (scale per token and head) and k (scale per token),
//       quantised on the GPU the same way as the CPU simulation (fp8_quantize_rows);
//   Float32, or Model on a float32 model: fp32 scores by ATen (cuBLAS, no TF32), chunked over
//       queries, then the exact top-k kernel on those scores (the golden fp32 results stay
//       identical to the CPU's);
//   shapes the tensor-core kernel does not handle (heads other than 16/32/64, head dim other
//       than 64/128, fp8 with head dim 64): the same ATen fp32 path on the precision-rounded
//       values; k above 2048: ATen scores and ATen's selection.
#pragma once

#include <ATen/ATen.h>

#include "indexer.h"
#include "lightning/lightning.h"

namespace indexcache {

enum class IndexerCudaPath { TensorCoreBF16, TensorCoreFP8, DenseFP32 };
const char* indexer_cuda_path_label(IndexerCudaPath path);

// The indexer inputs in the form the chosen kernels read.
struct CudaIndexerInputs {
  IndexerCudaPath path = IndexerCudaPath::DenseFP32;
  IndexerProjection projection;  // the float32 projection (dense path and reference)
  at::Tensor queries;            // tensor-core paths: [tokens, heads, dim] bf16 or uint8 e4m3 bytes
  at::Tensor keys;               // [tokens, dim]
  at::Tensor weights;            // [tokens, heads] float32, contiguous
  at::Tensor query_scales;       // fp8: [tokens, heads]
  at::Tensor key_scales;         // fp8: [tokens]
};

CudaIndexerInputs prepare_cuda_indexer(const IndexerProjection& projection, int64_t k);

// How the tensor-core paths turn scores into the top-k (both give identical selections: the same
// score values and the same exact selection rule; tests compare them):
//   Streaming:    the score kernel keeps only candidates above a running threshold per query
//                 (TopKCandidates) and select_topk_from_candidates finishes; no scores stored.
//   ChunkedDense: the score kernel writes the causal fp32 scores of a block of queries
//                 ([rows, end], about kDenseScoreBytes at a time) and select_topk_from_scores
//                 reads them back. Costs memory traffic but keeps the score kernel's warps free
//                 of compactions (PERFORMANCE.md has the measurements that chose the default).
enum class TopKPipeline { Streaming, ChunkedDense };
constexpr TopKPipeline kDefaultTopKPipeline = TopKPipeline::ChunkedDense;
const char* topk_pipeline_label(TopKPipeline pipeline);

// Selected positions [tokens, k] int64 (the rule of indexer.h).
at::Tensor cuda_indexer_topk(const CudaIndexerInputs& inputs, int64_t k,
                             TopKPipeline pipeline = kDefaultTopKPipeline);
// Scores of queries [begin, end) against keys [0, end): [end - begin, end] float32, -inf where
// s > t (as lightning_scores). Materialises the scores: for tests and small inputs.
at::Tensor cuda_indexer_scores(const CudaIndexerInputs& inputs, int64_t begin, int64_t end);
// Highest causal score of every query, [tokens] float32: the score kernel with a trivial
// consumer, for timing the scoring alone.
at::Tensor cuda_indexer_rowmax(const CudaIndexerInputs& inputs);

at::Tensor indexer_topk_cuda(const IndexerProjection& projection, int64_t k);

// The kernel-level description of tensor-core inputs (benchmarks time the kernels one by one).
kernels::LightningProblem cuda_indexer_problem(const CudaIndexerInputs& inputs);

}  // namespace indexcache
