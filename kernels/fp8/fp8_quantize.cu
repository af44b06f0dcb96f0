// Per-row FP8 e4m3 quantisation for the indexer's FP8 mode (see fp8_quantize.h). One warp
// per row: amax by a warp reduction, then each element divided by the scale and converted with
// the hardware's round-to-nearest-even, saturating conversion, exactly as the CPU simulation
// (fp8_quantize_rows: at::round of x / step, clamped to +-448) rounds.
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "fp8/fp8_quantize.h"

namespace indexcache::kernels {

namespace {

constexpr int kRowsPerBlock = 8;

__global__ void __launch_bounds__(32 * kRowsPerBlock)
    fp8_quantize_rows_kernel(const float* input, int64_t rows, int64_t dim, uint8_t* bytes, float* scales) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* in = input + row * dim;
  float amax = 0.0f;
  for (int64_t i = lane; i < dim; i += 32) amax = fmaxf(amax, fabsf(in[i]));
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  const float scale = fmaxf(amax / 448.0f, 1e-12f);
  uint8_t* out = bytes + row * dim;
  for (int64_t i = lane; i < dim; i += 32) {
    out[i] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(in[i] / scale, __NV_SATFINITE, __NV_E4M3));
  }
  if (lane == 0) scales[row] = scale;
}

}  // namespace

cudaError_t fp8_quantize_rows_launch(const float* input, int64_t rows, int64_t dim, uint8_t* bytes, float* scales,
                                     cudaStream_t stream) {
  if (rows < 0 || dim < 1) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  fp8_quantize_rows_kernel<<<static_cast<unsigned>(blocks), 32 * kRowsPerBlock, 0, stream>>>(input, rows, dim, bytes,
                                                                                             scales);
  return cudaGetLastError();
}

}  // namespace indexcache::kernels
