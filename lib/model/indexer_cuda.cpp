// CUDA dispatch of the lightning indexer (see indexer_cuda.h): prepares the kernel inputs,
// chunks queries so the candidate buffers stay bounded, and launches the kernels of
// the kernels of kernels/lightning, kernels/select and kernels/fp8 on the current stream.
#include "indexer_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "fp8/fp8_quantize.h"
#include "lightning/lightning.h"
#include "select/topk_select.h"

namespace indexcache {

namespace {

namespace k = kernels;

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA indexer: ") + what + ": " + cudaGetErrorString(status));
  }
}

// Candidate buffers of one launch stay under about this many bytes.
constexpr int64_t kCandidateBytes = int64_t{512} << 20;
// The dense path's [rows, heads, keys] float32 intermediate stays under about this.
constexpr int64_t kDenseChunkBytes = int64_t{1} << 30;
// The chunked-dense pipeline's [rows, keys] float32 scores stay under about this: at 128K tokens
// 4K query rows per chunk, enough query blocks per launch to fill every SM.
constexpr int64_t kDenseScoreBytes = int64_t{2} << 30;

bool exactly_bfloat16(const at::Tensor& values) {
  return at::equal(values.to(at::kBFloat16).to(at::kFloat), values);
}

}  // namespace

k::LightningProblem cuda_indexer_problem(const CudaIndexerInputs& in) {
  k::LightningProblem problem;
  problem.queries = in.queries.data_ptr();
  problem.keys = in.keys.data_ptr();
  problem.weights = in.weights.data_ptr<float>();
  problem.tokens = in.queries.size(0);
  problem.heads = in.queries.size(1);
  problem.dim = in.queries.size(2);
  problem.softmax_scale = static_cast<float>(in.projection.softmax_scale);
  if (in.path == IndexerCudaPath::TensorCoreFP8) {
    problem.element = k::ScoreElement::Float8E4M3;
    problem.query_scales = in.query_scales.data_ptr<float>();
    problem.key_scales = in.key_scales.data_ptr<float>();
  }
  return problem;
}

namespace {

int64_t dense_chunk_rows(const IndexerProjection& p) {
  const int64_t tokens = p.queries.size(0);
  const int64_t bytes_per_row = std::max<int64_t>(1, p.queries.size(1) * tokens * 4);
  return std::clamp<int64_t>(kDenseChunkBytes / bytes_per_row, 1, std::max<int64_t>(tokens, 1));
}

}  // namespace

const char* topk_pipeline_label(TopKPipeline pipeline) {
  return pipeline == TopKPipeline::Streaming ? "streaming candidates" : "chunked dense scores";
}

const char* indexer_cuda_path_label(IndexerCudaPath path) {
  switch (path) {
    case IndexerCudaPath::TensorCoreBF16: return "bf16 tensor-core kernel";
    case IndexerCudaPath::TensorCoreFP8: return "fp8 tensor-core kernel";
    case IndexerCudaPath::DenseFP32: break;
  }
  return "fp32 ATen scores + top-k kernel";
}

CudaIndexerInputs prepare_cuda_indexer(const IndexerProjection& projection, int64_t topk) {
  const c10::cuda::CUDAGuard guard(projection.queries.device());
  CudaIndexerInputs in;
  in.projection = projection;
  in.projection.queries = projection.queries.to(at::kFloat).contiguous();
  in.projection.keys = projection.keys.to(at::kFloat).contiguous();
  in.projection.weights = projection.weights.to(at::kFloat).contiguous();
  in.weights = in.projection.weights;
  const int64_t tokens = in.projection.queries.size(0);
  const int64_t heads = in.projection.queries.size(1);
  const int64_t dim = in.projection.queries.size(2);
  if (tokens == 0 || topk > k::kMaxTopK || !k::lightning_available()) return in;

  const IndexerPrecision precision = projection.precision;
  if (precision == IndexerPrecision::Float8) {
    if (!k::lightning_supported(k::ScoreElement::Float8E4M3, heads, dim)) return in;
    auto options = in.projection.queries.options();
    in.queries = at::empty({tokens, heads, dim}, options.dtype(at::kByte));
    in.keys = at::empty({tokens, dim}, options.dtype(at::kByte));
    in.query_scales = at::empty({tokens, heads}, options);
    in.key_scales = at::empty({tokens}, options);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    check_cuda(k::fp8_quantize_rows_launch(in.projection.queries.data_ptr<float>(), tokens * heads, dim,
                                           in.queries.data_ptr<uint8_t>(), in.query_scales.data_ptr<float>(), stream),
               "fp8 quantisation of q");
    check_cuda(k::fp8_quantize_rows_launch(in.projection.keys.data_ptr<float>(), tokens, dim,
                                           in.keys.data_ptr<uint8_t>(), in.key_scales.data_ptr<float>(), stream),
               "fp8 quantisation of k");
    in.path = IndexerCudaPath::TensorCoreFP8;
    return in;
  }
  if (precision == IndexerPrecision::Float32) return in;
  if (!k::lightning_supported(k::ScoreElement::BFloat16, heads, dim)) return in;
  if (precision == IndexerPrecision::Model &&
      !(exactly_bfloat16(in.projection.queries) && exactly_bfloat16(in.projection.keys))) {
    return in;  // a float32 model: keep float32 scores
  }
  in.queries = in.projection.queries.to(at::kBFloat16).contiguous();
  in.keys = in.projection.keys.to(at::kBFloat16).contiguous();
  in.path = IndexerCudaPath::TensorCoreBF16;
  return in;
}

namespace {

// Tensor-core scores, selection on the fly: candidate buffers bounded by kCandidateBytes per launch.
void streaming_topk(const CudaIndexerInputs& in, int64_t topk, at::Tensor& result, cudaStream_t stream) {
  const int64_t tokens = in.projection.queries.size(0);
  auto long_options = in.projection.queries.options().dtype(at::kLong);
  const k::LightningProblem problem = cuda_indexer_problem(in);
  const int64_t capacity = k::candidate_capacity(topk);
  const int64_t chunk = std::min<int64_t>(tokens, std::max<int64_t>(kCandidateBytes / (capacity * 8), 1024));
  at::Tensor candidates = at::empty({chunk, capacity}, long_options);
  at::Tensor counts = at::empty({chunk}, long_options.dtype(at::kInt));
  for (int64_t begin = 0; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    k::LightningOutput output;
    output.kind = k::ScoreOutput::TopKCandidates;
    output.row_begin = begin;
    output.row_end = end;
    output.topk = topk;
    output.candidates = reinterpret_cast<uint64_t*>(candidates.data_ptr<int64_t>());
    output.candidate_counts = counts.data_ptr<int32_t>();
    check_cuda(k::lightning_scores_launch(problem, output, stream), "score kernel");
    check_cuda(k::select_topk_from_candidates(output.candidates, output.candidate_counts, capacity, begin,
                                              end - begin, topk, result.data_ptr<int64_t>() + begin * topk, stream),
               "top-k of candidates");
  }
}

// Tensor-core scores written densely for a block of queries, then the exact top-k of each row.
// Rows t < topk need no scores (they select 0..t), so scoring starts at row topk.
void chunked_dense_topk(const CudaIndexerInputs& in, int64_t topk, at::Tensor& result, cudaStream_t stream) {
  const int64_t tokens = in.projection.queries.size(0);
  int64_t* out = result.data_ptr<int64_t>();
  const int64_t invariant = std::min(topk, tokens);
  check_cuda(k::select_topk_from_scores(nullptr, 0, 0, invariant, topk, out, stream), "top-k of the first rows");
  if (invariant == tokens) return;
  const k::LightningProblem problem = cuda_indexer_problem(in);
  // Later chunks have longer rows: size the chunk by the longest row (the last one).
  const int64_t chunk = std::clamp<int64_t>(kDenseScoreBytes / (tokens * 4), 1, tokens - invariant);
  at::Tensor scores = at::empty({chunk * tokens}, in.projection.queries.options());
  for (int64_t begin = invariant; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    k::LightningOutput output;
    output.kind = k::ScoreOutput::DenseScores;
    output.row_begin = begin;
    output.row_end = end;
    output.scores = scores.data_ptr<float>();
    check_cuda(k::lightning_scores_launch(problem, output, stream), "score kernel (dense)");
    check_cuda(k::select_topk_from_scores(output.scores, end, begin, end - begin, topk, out + begin * topk, stream),
               "top-k of dense scores");
  }
}

}  // namespace

at::Tensor cuda_indexer_topk(const CudaIndexerInputs& in, int64_t topk, TopKPipeline pipeline) {
  const c10::cuda::CUDAGuard guard(in.projection.queries.device());
  const int64_t tokens = in.projection.queries.size(0);
  auto long_options = in.projection.queries.options().dtype(at::kLong);
  at::Tensor result = at::empty({tokens, topk}, long_options);
  if (tokens == 0) return result;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  if (in.path == IndexerCudaPath::DenseFP32) {
    const int64_t chunk = dense_chunk_rows(in.projection);
    for (int64_t begin = 0; begin < tokens; begin += chunk) {
      const int64_t end = std::min(tokens, begin + chunk);
      at::Tensor scores = lightning_scores(in.projection, begin, end).contiguous();
      if (topk <= k::kMaxTopK) {
        check_cuda(k::select_topk_from_scores(scores.data_ptr<float>(), end, begin, end - begin, topk,
                                              result.data_ptr<int64_t>() + begin * topk, stream),
                   "top-k of dense scores");
      } else {
        result.narrow(0, begin, end - begin).copy_(select_topk(scores, begin, topk));
      }
    }
    return result;
  }

  if (pipeline == TopKPipeline::ChunkedDense) {
    chunked_dense_topk(in, topk, result, stream);
  } else {
    streaming_topk(in, topk, result, stream);
  }
  return result;
}

at::Tensor cuda_indexer_scores(const CudaIndexerInputs& in, int64_t begin, int64_t end) {
  const c10::cuda::CUDAGuard guard(in.projection.queries.device());
  if (in.path == IndexerCudaPath::DenseFP32) return lightning_scores(in.projection, begin, end);
  at::Tensor scores = at::full({end - begin, end}, -std::numeric_limits<float>::infinity(),
                               in.projection.queries.options());
  if (end <= begin) return scores;
  k::LightningOutput output;
  output.kind = k::ScoreOutput::DenseScores;
  output.row_begin = begin;
  output.row_end = end;
  output.scores = scores.data_ptr<float>();
  check_cuda(k::lightning_scores_launch(cuda_indexer_problem(in), output, at::cuda::getCurrentCUDAStream()), "score kernel");
  return scores;
}

at::Tensor cuda_indexer_rowmax(const CudaIndexerInputs& in) {
  const c10::cuda::CUDAGuard guard(in.projection.queries.device());
  const int64_t tokens = in.projection.queries.size(0);
  if (in.path == IndexerCudaPath::DenseFP32) {
    at::Tensor result = at::empty({tokens}, in.projection.queries.options());
    const int64_t chunk = dense_chunk_rows(in.projection);
    for (int64_t begin = 0; begin < tokens; begin += chunk) {
      const int64_t end = std::min(tokens, begin + chunk);
      result.narrow(0, begin, end - begin).copy_(std::get<0>(lightning_scores(in.projection, begin, end).max(1)));
    }
    return result;
  }
  at::Tensor result = at::empty({tokens}, in.projection.queries.options());
  if (tokens == 0) return result;
  k::LightningOutput output;
  output.kind = k::ScoreOutput::RowMax;
  output.row_begin = 0;
  output.row_end = tokens;
  output.scores = result.data_ptr<float>();
  check_cuda(k::lightning_scores_launch(cuda_indexer_problem(in), output, at::cuda::getCurrentCUDAStream()), "score kernel");
  return result;
}

at::Tensor indexer_topk_cuda(const IndexerProjection& projection, int64_t topk) {
  return cuda_indexer_topk(prepare_cuda_indexer(projection, topk), topk);
}

}  // namespace indexcache
