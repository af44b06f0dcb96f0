// Host side of the fused score kernel (lightning.h): shape checks, TMA tensor maps, launch
// geometry; the kernel itself is compiled in instantiations/.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>

#include "common/ptx.cuh"  // INDEXCACHE_SM90A
#include "lightning/lightning.h"
#include "lightning/params.h"
#include "lightning/variants.h"

namespace indexcache::kernels {

namespace detail {
// Writes 1 when this build's code for the running device is sm_90a (has wgmma), else 0.
__global__ void sm90a_probe_kernel(int* flag) {
#ifdef INDEXCACHE_SM90A
  *flag = 1;
#else
  *flag = 0;
#endif
}
}  // namespace detail

namespace {

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled through the runtime's driver entry point, so nothing links libcuda.
EncodeTiled encode_tiled() {
  static EncodeTiled function = [] {
    void* pointer = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &pointer, 12000, cudaEnableDefault, &status) !=
            cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiled>(nullptr);
    }
    return reinterpret_cast<EncodeTiled>(pointer);
  }();
  return function;
}

// A [rows, dim] row-major matrix read in boxes of [box_rows, 128 bytes] with the 128-byte
// swizzle that the wgmma descriptors expect. Rows past the end read as zeros.
bool make_tensor_map(CUtensorMap* map, const void* base, bool fp8, uint64_t rows, uint64_t dim, uint32_t box_rows) {
  EncodeTiled encode = encode_tiled();
  if (encode == nullptr) return false;
  const uint64_t element_bytes = fp8 ? 1 : 2;
  const cuuint64_t dims[2] = {dim, rows};
  const cuuint64_t strides[1] = {dim * element_bytes};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(128 / element_bytes), box_rows};
  const cuuint32_t element_strides[2] = {1, 1};
  return encode(map, fp8 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2,
                const_cast<void*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int multiprocessors() {
  int device = 0, count = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
  return std::max(count, 1);
}

}  // namespace

bool lightning_supported(ScoreElement element, int64_t heads, int64_t dim) {
  const bool heads_ok = heads == 16 || heads == 32 || heads == 64;
  if (element == ScoreElement::Float8E4M3) return heads_ok && dim == 128;
  return heads_ok && (dim == 64 || dim == 128);
}

bool lightning_available() {
  static const bool available = [] {
    int device = 0;
    cudaDeviceProp properties{};
    if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&properties, device) != cudaSuccess) {
      return false;
    }
    if (properties.major != 9 || properties.minor != 0) return false;
    if (encode_tiled() == nullptr) return false;
    int* flag = nullptr;
    if (cudaMalloc(&flag, sizeof(int)) != cudaSuccess) return false;
    int host = 0;
    bool ok = cudaMemset(flag, 0, sizeof(int)) == cudaSuccess;
    detail::sm90a_probe_kernel<<<1, 1>>>(flag);
    ok = ok && cudaGetLastError() == cudaSuccess &&
         cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
    cudaFree(flag);
    cudaGetLastError();  // a missing kernel image must not leave a sticky error behind
    return ok && host == 1;
  }();
  return available;
}

int64_t candidate_capacity(int64_t topk) { return 2 * topk + 1024; }

cudaError_t lightning_scores_launch(const LightningProblem& problem, const LightningOutput& output,
                                    cudaStream_t stream) {
  const bool fp8 = problem.element == ScoreElement::Float8E4M3;
  if (!lightning_supported(problem.element, problem.heads, problem.dim)) return cudaErrorInvalidValue;
  if (output.row_begin < 0 || output.row_end > problem.tokens || output.row_begin > output.row_end) {
    return cudaErrorInvalidValue;
  }
  if (problem.tokens >= (int64_t{1} << 30) || problem.tokens * problem.heads >= (int64_t{1} << 31)) {
    return cudaErrorInvalidValue;
  }
  if (output.kind == ScoreOutput::TopKCandidates && (output.topk < 1 || output.topk > kMaxTopK)) {
    return cudaErrorInvalidValue;
  }
  if (fp8 && (problem.query_scales == nullptr || problem.key_scales == nullptr)) return cudaErrorInvalidValue;

  const int block_queries = static_cast<int>(256 / problem.heads);
  int64_t first = output.row_begin;
  if (output.kind == ScoreOutput::TopKCandidates) first = std::max(first, output.topk);
  if (first >= output.row_end) return cudaSuccess;  // nothing to score: every row selects all
  const int64_t blocks = (output.row_end - first + block_queries - 1) / block_queries;

  CUtensorMap q_map, k_map;
  if (!make_tensor_map(&q_map, problem.queries, fp8, static_cast<uint64_t>(problem.tokens * problem.heads),
                       static_cast<uint64_t>(problem.dim), 256) ||
      !make_tensor_map(&k_map, problem.keys, fp8, static_cast<uint64_t>(problem.tokens),
                       static_cast<uint64_t>(problem.dim), 64)) {
    return cudaErrorInvalidValue;
  }

  detail::LightningParams params{};
  params.weights = problem.weights;
  params.query_scales = problem.query_scales;
  params.key_scales = problem.key_scales;
  params.tokens = static_cast<int>(problem.tokens);
  params.softmax_scale = problem.softmax_scale;
  params.kind = static_cast<int>(output.kind);
  params.row_begin = static_cast<int>(output.row_begin);
  params.row_end = static_cast<int>(output.row_end);
  params.first_row = static_cast<int>(first);
  params.num_blocks = static_cast<int>(blocks);
  params.topk = static_cast<int>(output.topk);
  params.capacity = static_cast<int>(candidate_capacity(output.topk));
  params.candidates = output.candidates;
  params.counts = output.candidate_counts;
  params.scores = output.scores;
  params.turns = problem.warpgroup_turns ? 1 : 0;

  const int grid = static_cast<int>(std::min<int64_t>(blocks, multiprocessors()));
  const int heads = static_cast<int>(problem.heads);
  if (fp8) return detail::launch_lightning_fp8_d128(heads, q_map, k_map, params, grid, stream);
  if (problem.dim == 64) return detail::launch_lightning_bf16_d64(heads, q_map, k_map, params, grid, stream);
  return detail::launch_lightning_bf16_d128(heads, q_map, k_map, params, grid, stream);
}

}  // namespace indexcache::kernels
