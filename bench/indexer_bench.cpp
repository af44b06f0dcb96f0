// Lightning-indexer benchmark on one GPU (docs/PERFORMANCE.md, "Indexer kernels").
//
//   indexer_bench [--tokens 4096,16384,65536,131072] [--heads 64,32] [--dim 128] [--k 2048]
//                 [--no-eager] [--no-chunked]
//
// For each shape, on fresh random inputs (q, k ~ N(0,1) rounded to bf16, weights ~ N(0,1)/sqrt(H)):
//   ours scores   the fused tensor-core score kernel with a trivial consumer (row max): the
//                 scoring engine alone; TFLOP/s counts the causal work T(T+1)/2 x H x D x 2;
//   ours top-k    scores + exact top-k by the default pipeline (what the model runs), and each
//                 pipeline timed (streaming candidates; chunked dense scores; indexer_cuda.h),
//                 with the number of rows where their selections differ (expected 0);
//   fp8           the same with e4m3 q and k (per-token / per-(token, head) scales);
//   breakdown     the score kernel without warpgroup turns (the earlier schedule); the dense
//                 pipeline's heaviest chunk in its two kernels, the select's read rate in GB/s
//                 against a device-to-device copy of the same GPU;
//   (a) eager     transformers-style: einsum to [T, H, T] bf16, relu, weight, sum, mask, topk
//                 (skipped or "OOM" where it does not fit);
//   (b) chunked   the best plain-torch version: per query chunk, keys [0, end) only,
//                 matmul -> relu_ -> bmm with the weights -> mask -> topk, ~2 GB per chunk.
// Also measures the dense bf16 matmul rate (8192^3) of the same GPU. Times are medians of CUDA
// event timings after a warm-up call (repeats scale down with the time of one call).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "indexer.h"
#include "indexer_cuda.h"
#include "lightning/lightning.h"
#include "select/topk_select.h"

using namespace indexcache;

namespace {

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) values.push_back(std::stoll(item));
  return values;
}

// Median milliseconds of `fn`: one warm-up call, then repeats chosen from its duration
// (about `budget_ms` in total, between 1 and max_repeats).
double time_ms(const std::function<void()>& fn, double budget_ms = 1500.0, int max_repeats = 10) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  const auto once = [&] {
    cudaEventRecord(start, stream);
    fn();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    return static_cast<double>(ms);
  };
  const double first = once();
  const int repeats = std::clamp(static_cast<int>(budget_ms / std::max(first, 1e-3)), 1, max_repeats);
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) times.push_back(once());
  std::sort(times.begin(), times.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(cudaGetErrorString(status));
  return times[times.size() / 2];
}

double matmul_tflops() {
  const int64_t n = 8192;
  auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor a = at::randn({n, n}, options);
  const at::Tensor b = at::randn({n, n}, options);
  at::Tensor c;
  for (int i = 0; i < 3; ++i) c = at::matmul(a, b);
  const double ms = time_ms([&] { c = at::matmul(a, b); }, 2000.0, 20);
  return 2.0 * n * n * n / (ms * 1e-3) / 1e12;
}

// Device memory bandwidth: a 2 GiB device-to-device copy, counting the bytes read and written.
double copy_gbps() {
  const int64_t bytes = int64_t{2} << 30;
  const at::Tensor source = at::empty({bytes}, at::TensorOptions().device(at::kCUDA).dtype(at::kByte));
  at::Tensor destination = at::empty_like(source);
  const double ms = time_ms([&] { destination.copy_(source); }, 1000.0, 10);
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

// (a) transformers-style eager indexer: the whole [T, H, T] tensor at once.
at::Tensor eager_topk(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w, int64_t topk) {
  const int64_t tokens = q.size(0);
  at::Tensor scores = at::einsum("shd,td->sht", {q, k});               // [T, H, T] bf16
  scores = at::relu(scores);
  scores = (scores * w.unsqueeze(-1)).sum(1);                           // [T, T]
  const at::Tensor mask = at::ones({tokens, tokens}, q.options().dtype(at::kBool)).triu(1);
  scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  return std::get<1>(at::topk(scores, std::min(topk, tokens), -1));
}

// (b) query-chunked plain torch: keys [0, end) per chunk, in-place relu, weights by bmm.
at::Tensor chunked_topk(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w, int64_t topk,
                        int64_t chunk_bytes = int64_t{2} << 30) {
  const int64_t tokens = q.size(0), heads = q.size(1), dim = q.size(2);
  at::Tensor result = at::full({tokens, topk}, -1, q.options().dtype(at::kLong));
  const int64_t chunk = std::max<int64_t>(1, chunk_bytes / (heads * tokens * 2));
  for (int64_t begin = 0; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    const int64_t rows = end - begin;
    at::Tensor s = at::matmul(q.narrow(0, begin, rows).reshape({rows * heads, dim}), k.narrow(0, 0, end).t());
    s.relu_();
    s = at::bmm(w.narrow(0, begin, rows).unsqueeze(1), s.view({rows, heads, end})).squeeze(1).to(at::kFloat);
    const at::Tensor positions = at::arange(end, result.options()).unsqueeze(0);
    const at::Tensor queries = at::arange(begin, end, result.options()).unsqueeze(1);
    s.masked_fill_(positions > queries, -std::numeric_limits<float>::infinity());
    const int64_t take = std::min(topk, end);
    result.narrow(0, begin, rows).narrow(1, 0, take).copy_(std::get<1>(at::topk(s, take, -1)));
  }
  return result;
}

// Mean fraction of our selected positions that the other selection also holds, over the
// last `rows` queries.
double agreement(const at::Tensor& ours, const at::Tensor& other, int64_t rows) {
  const int64_t tokens = ours.size(0);
  rows = std::min(rows, tokens);
  double total = 0.0;
  for (int64_t t = tokens - rows; t < tokens; ++t) {
    total += at::isin(ours[t], other[t]).to(at::kFloat).mean().item<double>();
  }
  return total / static_cast<double>(rows);
}

// The row-max score kernel (into row_max, [tokens] float) with the math warpgroups
// interleaving their MMAs (the earlier schedule).
void rowmax_without_turns(kernels::LightningProblem problem, at::Tensor& row_max, cudaStream_t stream) {
  problem.warpgroup_turns = false;
  kernels::LightningOutput output;
  output.kind = kernels::ScoreOutput::RowMax;
  output.row_end = row_max.size(0);
  output.scores = row_max.data_ptr<float>();
  kernels::lightning_scores_launch(problem, output, stream);
}

std::string fmt(double value, const char* format = "%.2f") {
  if (std::isnan(value)) return "-";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

struct Row {
  int64_t heads = 0, tokens = 0;
  double scores_ms = NAN, topk_ms = NAN, fp8_scores_ms = NAN, fp8_topk_ms = NAN;
  double streaming_ms = NAN, dense_ms = NAN;  // each top-k pipeline
  int64_t pipeline_mismatches = -1;            // rows whose selections differ between them
  double candidates_ms = NAN, candidate_select_ms = NAN;  // the two kernels of the streaming top-k, alone
  double interleaved_ms = NAN, fp8_interleaved_ms = NAN;  // scores without warpgroup turns
  // The dense pipeline's last (heaviest) chunk alone: score kernel writing [rows, T], then the
  // select reading the causal part back (bytes, for GB/s).
  int64_t select_rows = 0;
  double select_bytes = NAN, dense_scores_ms = NAN, select_ms = NAN;
  double eager_ms = NAN, chunked_ms = NAN, agree = NAN;
  std::string eager_note;
};

// The dense pipeline's heaviest chunk (the last ~2 GiB of rows) timed in its two kernels.
void dense_select_breakdown(const kernels::LightningProblem& problem, int64_t tokens, int64_t topk,
                            at::Tensor& selected, cudaStream_t stream, Row& row) {
  const int64_t rows = std::clamp<int64_t>((int64_t{2} << 30) / (tokens * 4), 1, std::max<int64_t>(tokens - topk, 1));
  const int64_t begin = tokens - rows;
  at::Tensor scores = at::empty({rows * tokens}, at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
  kernels::LightningOutput output;
  output.kind = kernels::ScoreOutput::DenseScores;
  output.row_begin = begin;
  output.row_end = tokens;
  output.scores = scores.data_ptr<float>();
  row.select_rows = rows;
  row.dense_scores_ms = time_ms([&] { kernels::lightning_scores_launch(problem, output, stream); });
  row.select_ms = time_ms([&] {
    kernels::select_topk_from_scores(output.scores, tokens, begin, rows, topk, selected.data_ptr<int64_t>(), stream);
  });
  // Causal entries read: rows t in [begin, tokens), t + 1 each (rows t < k read nothing).
  const int64_t first = std::max(begin, topk);
  const double entries = first < tokens ? (static_cast<double>(tokens) * (tokens + 1) - static_cast<double>(first) * (first + 1)) / 2.0 : 0.0;
  row.select_bytes = 4.0 * entries;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> token_list = {4096, 16384, 65536, 131072};
  std::vector<int64_t> head_list = {64, 32};
  int64_t dim = 128, topk = 2048;
  bool eager = true, chunked = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--tokens") token_list = parse_list(next());
    else if (arg == "--heads") head_list = parse_list(next());
    else if (arg == "--dim") dim = std::stoll(next());
    else if (arg == "--k") topk = std::stoll(next());
    else if (arg == "--no-eager") eager = false;
    else if (arg == "--no-chunked") chunked = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "indexer_bench needs a GPU\n");
    return 1;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d", std::gmtime(&now));
  std::printf("indexer_bench %s on %s (%d SMs), head dim %lld, k %lld\n", date, properties.name,
              properties.multiProcessorCount, static_cast<long long>(dim), static_cast<long long>(topk));
  const double matmul = matmul_tflops();
  std::printf("dense bf16 matmul 8192^3: %.0f TFLOP/s\n", matmul);
  const double bandwidth = copy_gbps();
  std::printf("device copy 2 GiB: %.0f GB/s (read + write)\n", bandwidth);
  std::fflush(stdout);

  std::vector<Row> rows;
  for (const int64_t heads : head_list) {
    for (const int64_t tokens : token_list) {
      Row row;
      row.heads = heads;
      row.tokens = tokens;
      auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
      IndexerProjection p;
      p.queries = at::randn({tokens, heads, dim}, options).to(at::kBFloat16).to(at::kFloat);
      p.keys = at::randn({tokens, dim}, options).to(at::kBFloat16).to(at::kFloat);
      p.weights = at::randn({tokens, heads}, options) * std::pow(static_cast<double>(heads), -0.5);
      p.softmax_scale = std::pow(static_cast<double>(dim), -0.5);
      p.precision = IndexerPrecision::BFloat16;
      at::Tensor ours;
      {
        const CudaIndexerInputs in = prepare_cuda_indexer(p, topk);
        if (in.path != IndexerCudaPath::TensorCoreBF16) {
          std::fprintf(stderr, "shape not handled by the tensor-core kernel\n");
          return 1;
        }
        row.scores_ms = time_ms([&] { cuda_indexer_rowmax(in); });
        row.topk_ms = time_ms([&] { ours = cuda_indexer_topk(in, topk); });
        at::Tensor streaming, dense;
        row.streaming_ms = time_ms([&] { streaming = cuda_indexer_topk(in, topk, TopKPipeline::Streaming); });
        row.dense_ms = time_ms([&] { dense = cuda_indexer_topk(in, topk, TopKPipeline::ChunkedDense); });
        row.pipeline_mismatches = (streaming != dense).any(1).sum().item<int64_t>();
        streaming = dense = at::Tensor();
        // Breakdown: the fused score + candidate kernel over all rows at once, then the exact select.
        const int64_t capacity = kernels::candidate_capacity(topk);
        at::Tensor candidates = at::empty({tokens, capacity}, options.dtype(at::kLong));
        at::Tensor counts = at::empty({tokens}, options.dtype(at::kInt));
        at::Tensor selected = at::empty({tokens, topk}, options.dtype(at::kLong));
        kernels::LightningOutput output;
        output.kind = kernels::ScoreOutput::TopKCandidates;
        output.row_end = tokens;
        output.topk = topk;
        output.candidates = reinterpret_cast<uint64_t*>(candidates.data_ptr<int64_t>());
        output.candidate_counts = counts.data_ptr<int32_t>();
        const kernels::LightningProblem problem = cuda_indexer_problem(in);
        const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
        row.candidates_ms = time_ms([&] { kernels::lightning_scores_launch(problem, output, stream); });
        row.candidate_select_ms = time_ms([&] {
          kernels::select_topk_from_candidates(output.candidates, output.candidate_counts, capacity, 0, tokens, topk,
                                               selected.data_ptr<int64_t>(), stream);
        });
        candidates = counts = at::Tensor();
        at::Tensor row_max = at::empty({tokens}, options);
        row.interleaved_ms = time_ms([&] { rowmax_without_turns(problem, row_max, stream); });
        dense_select_breakdown(problem, tokens, topk, selected, stream, row);
      }
      {
        IndexerProjection p8 = p;
        p8.precision = IndexerPrecision::Float8;
        const CudaIndexerInputs in = prepare_cuda_indexer(p8, topk);
        row.fp8_scores_ms = time_ms([&] { cuda_indexer_rowmax(in); });
        row.fp8_topk_ms = time_ms([&] { cuda_indexer_topk(in, topk); });
        at::Tensor row_max = at::empty({tokens}, options);
        row.fp8_interleaved_ms = time_ms(
            [&] { rowmax_without_turns(cuda_indexer_problem(in), row_max, at::cuda::getCurrentCUDAStream()); });
      }
      const at::Tensor q = p.queries.to(at::kBFloat16);
      const at::Tensor k = p.keys.to(at::kBFloat16);
      const at::Tensor w = (p.weights * p.softmax_scale).to(at::kBFloat16);
      p = IndexerProjection();
      if (eager) {
        try {
          row.eager_ms = time_ms([&] { eager_topk(q, k, w, topk); }, 1000.0, 3);
        } catch (const std::exception&) {
          row.eager_note = "OOM";
        }
        c10::cuda::CUDACachingAllocator::emptyCache();
      }
      if (chunked) {
        at::Tensor theirs;
        row.chunked_ms = time_ms([&] { theirs = chunked_topk(q, k, w, topk); }, 1000.0, 3);
        if (tokens > topk) row.agree = agreement(ours, theirs, 64);
      }
      c10::cuda::CUDACachingAllocator::emptyCache();
      const double flops = static_cast<double>(tokens) * (tokens + 1) / 2.0 * heads * dim * 2.0;
      std::printf("H=%lld T=%lld: scores %.2f ms (%.0f TFLOP/s, %.0f%% of matmul), top-k %.2f ms (streaming %.2f, dense %.2f, "
                  "%lld rows differ), fp8 scores %.2f ms, fp8 top-k %.2f ms, eager %s ms, chunked %s ms, agreement with chunked %s; top-k = candidates %.2f ms + candidate select "
                  "%.2f ms\n",
                  static_cast<long long>(heads), static_cast<long long>(tokens), row.scores_ms,
                  flops / (row.scores_ms * 1e-3) / 1e12, 100.0 * flops / (row.scores_ms * 1e-3) / 1e12 / matmul,
                  row.topk_ms, row.streaming_ms, row.dense_ms, static_cast<long long>(row.pipeline_mismatches), row.fp8_scores_ms, row.fp8_topk_ms,
                  row.eager_note.empty() ? fmt(row.eager_ms).c_str() : row.eager_note.c_str(),
                  fmt(row.chunked_ms).c_str(), fmt(row.agree, "%.4f").c_str(), row.candidates_ms, row.candidate_select_ms);
      std::fflush(stdout);
      rows.push_back(row);
    }
  }

  std::printf("\n| heads | T | scores ms | scores TFLOP/s | %% of matmul | top-k ms | top-k TFLOP/s | streaming ms | dense ms | rows differing | "
              "fp8 scores ms | fp8 top-k ms | (a) eager ms | (b) chunked ms | (b) / top-k | agreement with (b) | candidates ms | candidate select ms |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const double flops = static_cast<double>(r.tokens) * (r.tokens + 1) / 2.0 * r.heads * dim * 2.0;
    const double scores_tflops = flops / (r.scores_ms * 1e-3) / 1e12;
    const double topk_tflops = flops / (r.topk_ms * 1e-3) / 1e12;
    std::printf("| %lld | %lldK | %s | %s | %s | %s | %s | %s | %s | %lld | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                static_cast<long long>(r.heads), static_cast<long long>(r.tokens / 1024), fmt(r.scores_ms).c_str(),
                fmt(scores_tflops, "%.0f").c_str(), fmt(100.0 * scores_tflops / matmul, "%.0f%%").c_str(),
                fmt(r.topk_ms).c_str(), fmt(topk_tflops, "%.0f").c_str(), fmt(r.streaming_ms).c_str(),
                fmt(r.dense_ms).c_str(), static_cast<long long>(r.pipeline_mismatches), fmt(r.fp8_scores_ms).c_str(),
                fmt(r.fp8_topk_ms).c_str(), r.eager_note.empty() ? fmt(r.eager_ms).c_str() : r.eager_note.c_str(),
                fmt(r.chunked_ms).c_str(), fmt(r.chunked_ms / r.topk_ms, "%.1fx").c_str(),
                fmt(r.agree, "%.4f").c_str(), fmt(r.candidates_ms).c_str(), fmt(r.candidate_select_ms).c_str());
  }
  std::printf("dense bf16 matmul (8192^3, same GPU): %.0f TFLOP/s\n", matmul);

  // Breakdown: the score kernel with and without warpgroup turns; the dense pipeline's heaviest
  // chunk in its two kernels, the select's read rate against the device's copy rate.
  std::printf("\n| heads | T | scores ms, turns | interleaved ms | turns speed-up | fp8 scores ms, turns | fp8 interleaved ms | "
              "last chunk rows | dense scores ms | select ms | select GB/s | %% of copy |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const double select_gbps = r.select_bytes / (r.select_ms * 1e-3) / 1e9;
    std::printf("| %lld | %lldK | %s | %s | %s | %s | %s | %lld | %s | %s | %s | %s |\n", static_cast<long long>(r.heads),
                static_cast<long long>(r.tokens / 1024), fmt(r.scores_ms).c_str(), fmt(r.interleaved_ms).c_str(),
                fmt(r.interleaved_ms / r.scores_ms, "%.2fx").c_str(), fmt(r.fp8_scores_ms).c_str(),
                fmt(r.fp8_interleaved_ms).c_str(), static_cast<long long>(r.select_rows), fmt(r.dense_scores_ms).c_str(),
                fmt(r.select_ms).c_str(), fmt(select_gbps, "%.0f").c_str(),
                fmt(100.0 * select_gbps / bandwidth, "%.0f%%").c_str());
  }
  std::printf("device copy (2 GiB, read + write, same GPU): %.0f GB/s\n", bandwidth);
  return 0;
}
