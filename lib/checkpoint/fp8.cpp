// FP8 E4M3 ("fn") decoding by table lookup and block-scale dequantisation, in plain ATen ops
// so the same code runs on CPU and CUDA tensors.
#include "fp8.h"

#include <array>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.h"
#include "safetensors.h"

namespace indexcache {

namespace {

// Bounds the int32 index temporary of one table lookup (4 bytes per element) when decoding
// a large weight: 16M elements = 64 MiB.
constexpr int64_t kDecodeChunkElements = int64_t{1} << 24;

std::array<float, 256> build_table() {
  std::array<float, 256> table{};
  for (int byte = 0; byte < 256; ++byte) table[byte] = fp8_e4m3_to_float(static_cast<uint8_t>(byte));
  return table;
}

int64_t ceil_div(int64_t value, int64_t divisor) { return value / divisor + (value % divisor != 0 ? 1 : 0); }

}  // namespace

float fp8_e4m3_to_float(uint8_t byte) {
  const bool negative = (byte & 0x80) != 0;
  const int exponent = (byte >> 3) & 0x0f;
  const int mantissa = byte & 0x07;
  // The "fn" variant gives up infinities: only all-ones exponent and mantissa is NaN, and the
  // rest of the top exponent holds ordinary values up to 448.
  if (exponent == 0x0f && mantissa == 0x07) return std::numeric_limits<float>::quiet_NaN();
  const float magnitude = exponent == 0
                              ? std::ldexp(static_cast<float>(mantissa), -9)  // subnormal: m/8 * 2^(1-7)
                              : std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  return negative ? -magnitude : magnitude;
}

at::Tensor fp8_e4m3_decode(const at::Tensor& bytes) {
  if (bytes.scalar_type() != at::kByte) {
    throw std::invalid_argument(std::string("fp8_e4m3_decode: expected a uint8 tensor, got ") +
                                c10::toString(bytes.scalar_type()));
  }
  // A constant table, built once; no mutable state is shared between calls.
  static const std::array<float, 256> host_table = build_table();
  const at::Tensor table =
      at::from_blob(const_cast<float*>(host_table.data()), {256}, at::kFloat)
          .to(bytes.device(), at::kFloat, /*non_blocking=*/false, /*copy=*/true);

  const at::Tensor input = bytes.contiguous().view({-1});
  at::Tensor output = at::empty(bytes.sizes(), bytes.options().dtype(at::kFloat));
  at::Tensor flat_output = output.view({-1});
  const int64_t total = input.numel();
  for (int64_t start = 0; start < total; start += kDecodeChunkElements) {
    const int64_t length = std::min(kDecodeChunkElements, total - start);
    // uint8 indices would mean a boolean mask to ATen, so look up through int32 positions.
    const at::Tensor positions = input.narrow(0, start, length).to(at::kInt);
    at::Tensor destination = flat_output.narrow(0, start, length);
    at::index_select_out(destination, table, 0, positions);
  }
  return output;
}

at::Tensor fp8_apply_block_scales(const at::Tensor& weight, const at::Tensor& scale_inv, int64_t block_rows,
                                  int64_t block_cols) {
  if (block_rows <= 0 || block_cols <= 0) {
    throw InputError("", "FP8 block size " + std::to_string(block_rows) + "x" + std::to_string(block_cols) +
                             " must be positive");
  }
  if (weight.dim() != 2) {
    throw InputError("", "FP8 block scales need a 2-D weight, got shape " + shape_text(weight.sizes().vec()));
  }
  const int64_t rows = weight.size(0);
  const int64_t cols = weight.size(1);
  const std::vector<int64_t> expected = {ceil_div(rows, block_rows), ceil_div(cols, block_cols)};
  if (scale_inv.sizes() != at::IntArrayRef(expected)) {
    throw InputError("", "scale_inv has shape " + shape_text(scale_inv.sizes().vec()) + " but a weight of shape " +
                             shape_text(weight.sizes().vec()) + " with " + std::to_string(block_rows) + "x" +
                             std::to_string(block_cols) + " blocks needs " + shape_text(expected));
  }
  // Spread each block's scale over its block, then cut the padded edge blocks back to the
  // weight's size: edge blocks hold fewer than block_rows x block_cols values.
  const at::Tensor scale = scale_inv.to(weight.device(), at::kFloat);
  const at::Tensor per_element = scale.repeat_interleave(block_rows, 0)
                                     .narrow(0, 0, rows)
                                     .repeat_interleave(block_cols, 1)
                                     .narrow(1, 0, cols);
  return weight.to(at::kFloat) * per_element;
}

at::Tensor fp8_e4m3_round(const at::Tensor& values) {
  at::Tensor x = values.to(at::kFloat);
  // Spacing of E4M3 values: 2^(e - 3) in binade e (3 mantissa bits), 2^-9 below the smallest
  // normal 2^-6. at::round rounds half to even, as the hardware conversion does.
  at::Tensor exponent = at::floor(at::log2(x.abs())).clamp_min(-6.0);
  at::Tensor step = at::exp2(exponent - 3.0);
  return (at::round(x / step) * step).clamp(-448.0, 448.0);
}

at::Tensor fp8_quantize_rows(const at::Tensor& values) {
  at::Tensor x = values.to(at::kFloat);
  at::Tensor scale = (std::get<0>(x.abs().max(-1, /*keepdim=*/true)) / 448.0).clamp_min(1e-12);
  return fp8_e4m3_round(x / scale) * scale;
}

}  // namespace indexcache
