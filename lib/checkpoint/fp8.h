// FP8 E4M3 (the "fn" variant used by DeepSeek/GLM checkpoints: no infinities, 0x7f/0xff NaN,
// bias 7, max 448) decoded by hand, since libtorch 1.13 has no float8 dtype.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace indexcache {

// Exact float value of one E4M3 byte.
float fp8_e4m3_to_float(uint8_t byte);

// Decodes raw E4M3 bytes (uint8 tensor of any shape, on any device) to float32, same shape.
at::Tensor fp8_e4m3_decode(const at::Tensor& bytes);

// value[r, c] * scale_inv[r / block_rows, c / block_cols] for a 2-D float weight; edge blocks
// may be partial. Shapes: weight [rows, cols], scale_inv [ceil(rows/br), ceil(cols/bc)].
at::Tensor fp8_apply_block_scales(const at::Tensor& weight, const at::Tensor& scale_inv,
                                  int64_t block_rows, int64_t block_cols);

// Rounds float values to the nearest E4M3 value (ties to even, saturating at +-448), returned
// as float32: what a value becomes after a round trip through FP8.
at::Tensor fp8_e4m3_round(const at::Tensor& values);

// Simulated FP8 quantization with one scale per row of the last dimension, as serving engines
// quantize the indexer's q (per token and head) and k (per token): scale = amax(|row|) / 448,
// row -> e4m3(row / scale) * scale. Float32 in, float32 out.
at::Tensor fp8_quantize_rows(const at::Tensor& values);

}  // namespace indexcache
