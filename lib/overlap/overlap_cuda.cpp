// CUDA path of OverlapAccumulator::add (hook in overlap.cpp): the intersection counts of all
// layer pairs come from kernels/overlap/overlap_counts.h, without sorting and without the one-hot
// [queries, layers, tokens] membership tensor of the ATen path.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "overlap.h"
#include "overlap/overlap_counts.h"

namespace indexcache {

// Adds the counts of queries t = k, k + stride, ... (t < tokens) to `counts` ([layers, layers]
// float64, CPU). Returns false, changing nothing, when the kernel does not handle the shape.
bool overlap_add_cuda(const std::vector<at::Tensor>& topk, int64_t k, int64_t query_stride, at::Tensor& counts) {
  const int64_t layers = static_cast<int64_t>(topk.size());
  const int64_t tokens = topk.front().size(0);
  if (!kernels::overlap_counts_supported(layers, k) || tokens <= k) return false;
  const c10::cuda::CUDAGuard guard(topk.front().device());
  std::vector<at::Tensor> rows;
  std::vector<int64_t> pointers;
  for (const at::Tensor& layer : topk) {
    rows.push_back(layer.to(topk.front().device(), at::kLong).contiguous());
    pointers.push_back(reinterpret_cast<int64_t>(rows.back().data_ptr<int64_t>()));
  }
  auto options = rows.front().options();
  at::Tensor device_pointers = at::tensor(pointers, at::TensorOptions().dtype(at::kLong)).to(options.device());
  at::Tensor device_counts = at::zeros({layers, layers}, options);
  const int64_t measured = (tokens - k + query_stride - 1) / query_stride;
  const cudaError_t status = kernels::overlap_counts_launch(
      reinterpret_cast<const int64_t* const*>(device_pointers.data_ptr<int64_t>()), layers, tokens, k, k,
      query_stride, measured, reinterpret_cast<unsigned long long*>(device_counts.data_ptr<int64_t>()),
      at::cuda::getCurrentCUDAStream());
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("overlap counts kernel: ") + cudaGetErrorString(status));
  }
  counts += device_counts.to(at::kCPU).to(at::kDouble);
  return true;
}

}  // namespace indexcache
