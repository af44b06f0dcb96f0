// Cross-layer overlap of top-k selections (docs/ARCHITECTURE.md "Overlap"): for layers a, b and each query
// t with t + 1 > k, |A_t ∩ B_t| / k; the matrix entry is the mean over all measured
// (sequence, t). Rows with t + 1 <= k select everything and are not measured.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace indexcache {

class OverlapAccumulator {
 public:
  OverlapAccumulator(int64_t layers, int64_t k);

  // One sequence: `topk` holds [tokens, k] int64 selections for every layer. Queries t >= k are
  // measured, every `query_stride`-th one from t = k (sub-sampling long inputs).
  void add(const std::vector<at::Tensor>& topk, int64_t query_stride = 1);

  int64_t layers() const { return layers_; }
  int64_t measured_queries() const { return measured_; }
  // Intersection counts summed over measured queries: [layers, layers] float64.
  const at::Tensor& counts() const { return counts_; }
  // Mean overlap fraction per layer pair; all zeros when nothing was measured.
  std::vector<std::vector<double>> matrix() const;

 private:
  int64_t layers_;
  int64_t k_;
  int64_t measured_ = 0;
  at::Tensor counts_;
};

}  // namespace indexcache
