// FP8 e4m3 quantisation for the indexer's FP8 mode (plain C++ launcher: raw device pointers,
// sizes, a stream).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace indexcache::kernels {

// One scale per row, as serving engines quantise the indexer's q (per token and head) and k
// (per token): input [rows, dim] fp32, bytes [rows, dim] e4m3, scales [rows] fp32 with
// scale = max(amax(|row|) / 448, 1e-12) and byte = e4m3(x / scale) rounded to nearest even,
// saturating. CPU reference: fp8_quantize_rows.
cudaError_t fp8_quantize_rows_launch(const float* input, int64_t rows, int64_t dim, uint8_t* bytes, float* scales,
                                     cudaStream_t stream);

}  // namespace indexcache::kernels
