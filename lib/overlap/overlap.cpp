#include "overlap.h"

#include <algorithm>

namespace indexcache {

#ifdef INDEXCACHE_CUDA
// lib/overlap/overlap_cuda.cpp: the counts from the overlap kernel; false when it does not handle the shape.
bool overlap_add_cuda(const std::vector<at::Tensor>& topk, int64_t k, int64_t query_stride, at::Tensor& counts);
#endif

OverlapAccumulator::OverlapAccumulator(int64_t layers, int64_t k)
    : layers_(layers), k_(k), counts_(at::zeros({layers, layers}, at::kDouble)) {}

void OverlapAccumulator::add(const std::vector<at::Tensor>& topk, int64_t query_stride) {
  const int64_t tokens = topk.front().size(0);
  if (tokens <= k_) return;  // no query has more than k causal candidates
#ifdef INDEXCACHE_CUDA
  if (topk.front().is_cuda() && overlap_add_cuda(topk, k_, query_stride, counts_)) {
    measured_ += (tokens - k_ + query_stride - 1) / query_stride;
    return;
  }
#endif
  at::Tensor rows = at::arange(k_, tokens, query_stride, at::kLong).to(topk.front().device());
  std::vector<at::Tensor> picked;
  for (const at::Tensor& layer : topk) picked.push_back(layer.index_select(0, rows));
  at::Tensor selections = at::stack(picked, 1);  // [rows, layers, k]
  const int64_t measured = selections.size(0);
  // Per query, a [layers, tokens] 0/1 membership matrix times its transpose gives every pairwise
  // intersection size at once; chunk the queries to bound the one-hot memory (~128 MB).
  const int64_t bytes_per_query = std::max<int64_t>(1, layers_ * tokens * 4);
  const int64_t chunk = std::clamp<int64_t>((int64_t{128} << 20) / bytes_per_query, 1, measured);
  for (int64_t begin = 0; begin < measured; begin += chunk) {
    const int64_t count = std::min(chunk, measured - begin);
    at::Tensor chosen = selections.narrow(0, begin, count);
    at::Tensor membership = at::zeros({count, layers_, tokens}, chosen.options().dtype(at::kFloat));
    membership.scatter_(2, chosen, 1.0f);
    // Each per-query count is an exact small integer in float32; sum them in float64.
    at::Tensor intersections = at::bmm(membership, membership.transpose(1, 2)).to(at::kDouble).sum(0);
    counts_ += intersections.to(at::kCPU);
  }
  measured_ += measured;
}

std::vector<std::vector<double>> OverlapAccumulator::matrix() const {
  std::vector<std::vector<double>> result(static_cast<std::size_t>(layers_),
                                          std::vector<double>(static_cast<std::size_t>(layers_), 0.0));
  if (measured_ == 0) return result;
  at::Tensor mean = counts_ / static_cast<double>(measured_ * k_);
  auto values = mean.accessor<double, 2>();
  for (int64_t a = 0; a < layers_; ++a) {
    for (int64_t b = 0; b < layers_; ++b) result[a][b] = values[a][b];
  }
  return result;
}

}  // namespace indexcache
