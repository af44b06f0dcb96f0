// FP8 E4M3 decoding against an independent computation, and block-scale dequantisation
// (including partial edge blocks) against a naive per-element loop.
#include <ATen/ATen.h>

#include <cmath>
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.h"
#include "fp8.h"
#include "safetensors_writer.h"
// Catch2 last: ATen on Debian brings glog, whose CHECK macro would clash with Catch2's.
#undef CHECK
#include "catch_shim.h"

using indexcache::fp8_apply_block_scales;
using indexcache::fp8_e4m3_decode;
using indexcache::fp8_e4m3_to_float;
using indexcache::InputError;
using indexcache::test_support::input_error_message;

namespace {

// E4M3 written out from the definition, in double: value = (-1)^s x 2^(e-7) x (1 + m/8) for
// e > 0, (-1)^s x 2^-6 x (m/8) for e = 0; S.1111.111 is NaN. Returns NaN as a double.
double reference_e4m3(int byte) {
  const int sign = byte >> 7;
  const int exponent = (byte >> 3) & 15;
  const int mantissa = byte & 7;
  if (exponent == 15 && mantissa == 7) return std::nan("");
  const double magnitude =
      exponent == 0 ? std::ldexp(mantissa / 8.0, -6) : std::ldexp(1.0 + mantissa / 8.0, exponent - 7);
  return sign != 0 ? -magnitude : magnitude;
}

at::Tensor all_bytes() { return at::arange(256, at::TensorOptions().dtype(at::kInt)).to(at::kByte); }

// weight[r][c] * scale[r / br][c / bc], element by element, in float as the library computes.
std::vector<float> naive_dequant(const std::vector<float>& weight, int64_t rows, int64_t cols,
                                 const std::vector<float>& scale, int64_t scale_cols, int64_t block_rows,
                                 int64_t block_cols) {
  std::vector<float> result(weight.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      result[r * cols + c] = weight[r * cols + c] * scale[(r / block_rows) * scale_cols + c / block_cols];
    }
  }
  return result;
}

std::vector<float> to_vector(const at::Tensor& tensor) {
  const at::Tensor host = tensor.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
}

// Random E4M3 bytes without the two NaN patterns, reproducible.
at::Tensor random_finite_fp8(int64_t rows, int64_t cols, uint64_t seed) {
  at::Tensor bytes = at::empty({rows, cols}, at::kByte);
  uint8_t* data = bytes.data_ptr<uint8_t>();
  uint64_t state = seed;
  for (int64_t i = 0; i < rows * cols; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    uint8_t byte = static_cast<uint8_t>(state >> 56);
    if ((byte & 0x7f) == 0x7f) byte = 0x7e;
    data[i] = byte;
  }
  return bytes;
}

// Checks dequantisation of a random [rows, cols] weight with the given blocks.
void check_dequant(int64_t rows, int64_t cols, int64_t block_rows, int64_t block_cols) {
  INFO("weight " << rows << "x" << cols << ", blocks " << block_rows << "x" << block_cols);
  const int64_t scale_rows = (rows + block_rows - 1) / block_rows;
  const int64_t scale_cols = (cols + block_cols - 1) / block_cols;
  const at::Tensor weight = fp8_e4m3_decode(random_finite_fp8(rows, cols, 7 + rows));
  // Distinct scales per block, so a block mixed up with its neighbour shows.
  const at::Tensor scale =
      at::arange(1, scale_rows * scale_cols + 1, at::TensorOptions().dtype(at::kFloat)).view({scale_rows, scale_cols}) *
      0.125f;
  const at::Tensor result = fp8_apply_block_scales(weight, scale, block_rows, block_cols);
  CHECK(result.scalar_type() == at::kFloat);
  CHECK(result.sizes() == weight.sizes());
  const std::vector<float> expected =
      naive_dequant(to_vector(weight), rows, cols, to_vector(scale), scale_cols, block_rows, block_cols);
  CHECK(to_vector(result) == expected);
}

}  // namespace

TEST_CASE("fp8: every byte decodes to the value of the E4M3 definition", "[fp8]") {
  const std::vector<float> decoded = to_vector(fp8_e4m3_decode(all_bytes()));
  REQUIRE(decoded.size() == 256);
  int nan_count = 0;
  for (int byte = 0; byte < 256; ++byte) {
    INFO("byte 0x" << std::hex << byte);
    const double expected = reference_e4m3(byte);
    const float scalar = fp8_e4m3_to_float(static_cast<uint8_t>(byte));
    if (std::isnan(expected)) {
      ++nan_count;
      CHECK(std::isnan(scalar));
      CHECK(std::isnan(decoded[byte]));
    } else {
      CHECK(static_cast<double>(scalar) == expected);
      CHECK(static_cast<double>(decoded[byte]) == expected);
      CHECK(std::signbit(scalar) == ((byte & 0x80) != 0));
    }
    CHECK(!std::isinf(scalar));
  }
  CHECK(nan_count == 2);
}

TEST_CASE("fp8: known values", "[fp8]") {
  CHECK(fp8_e4m3_to_float(0x7e) == 448.0f);
  CHECK(fp8_e4m3_to_float(0xfe) == -448.0f);
  CHECK(fp8_e4m3_to_float(0x01) == std::ldexp(1.0f, -9));
  CHECK(fp8_e4m3_to_float(0x07) == 7 * std::ldexp(1.0f, -9));
  CHECK(fp8_e4m3_to_float(0x08) == std::ldexp(1.0f, -6));
  CHECK(fp8_e4m3_to_float(0x38) == 1.0f);
  CHECK(fp8_e4m3_to_float(0xb8) == -1.0f);
  CHECK(fp8_e4m3_to_float(0x40) == 2.0f);
  CHECK(fp8_e4m3_to_float(0x3c) == 1.5f);
  CHECK(fp8_e4m3_to_float(0x78) == 256.0f);
  CHECK(fp8_e4m3_to_float(0x00) == 0.0f);
  CHECK(!std::signbit(fp8_e4m3_to_float(0x00)));
  CHECK(fp8_e4m3_to_float(0x80) == 0.0f);
  CHECK(std::signbit(fp8_e4m3_to_float(0x80)));
  CHECK(std::isnan(fp8_e4m3_to_float(0x7f)));
  CHECK(std::isnan(fp8_e4m3_to_float(0xff)));
  // No value beyond 448: the largest finite magnitude.
  float largest = 0;
  for (int byte = 0; byte < 256; ++byte) {
    const float value = fp8_e4m3_to_float(static_cast<uint8_t>(byte));
    if (!std::isnan(value)) largest = std::max(largest, std::fabs(value));
  }
  CHECK(largest == 448.0f);
}

TEST_CASE("fp8: decode keeps the shape and handles non-contiguous input", "[fp8]") {
  const at::Tensor bytes = all_bytes().view({4, 8, 8});
  const at::Tensor decoded = fp8_e4m3_decode(bytes);
  CHECK(decoded.sizes() == bytes.sizes());
  CHECK(decoded.scalar_type() == at::kFloat);
  CHECK(decoded.device() == bytes.device());

  const at::Tensor transposed = all_bytes().view({16, 16}).t();
  REQUIRE(!transposed.is_contiguous());
  const std::vector<float> result = to_vector(fp8_e4m3_decode(transposed));
  const at::Tensor transposed_copy = transposed.contiguous();
  const uint8_t* expected_bytes = transposed_copy.data_ptr<uint8_t>();
  for (int i = 0; i < 256; ++i) {
    if (std::isnan(result[i])) {
      CHECK((expected_bytes[i] & 0x7f) == 0x7f);
    } else {
      CHECK(result[i] == fp8_e4m3_to_float(expected_bytes[i]));
    }
  }

  const at::Tensor empty = fp8_e4m3_decode(at::empty({0, 5}, at::kByte));
  CHECK(empty.sizes() == at::IntArrayRef({0, 5}));
  CHECK(fp8_e4m3_decode(at::full({}, 0x38, at::kByte)).item<float>() == 1.0f);
}

TEST_CASE("fp8: decode across chunk boundaries of a large tensor", "[fp8]") {
  // More than one 16M-element lookup chunk; the expected values come from at::take with
  // int64 positions into a table of the scalar decoder.
  const int64_t count = (int64_t{1} << 24) + 1000;
  const at::Tensor bytes =
      (at::arange(count, at::TensorOptions().dtype(at::kLong)) * 37 % 255).to(at::kByte);  // never 0xff
  std::vector<float> table(256);
  for (int byte = 0; byte < 256; ++byte) table[byte] = fp8_e4m3_to_float(static_cast<uint8_t>(byte));
  const at::Tensor table_tensor = at::from_blob(table.data(), {256}, at::kFloat).clone();
  const at::Tensor expected = at::take(table_tensor, bytes.to(at::kLong));
  const at::Tensor decoded = fp8_e4m3_decode(bytes);
  // 0x7f decodes to NaN on both sides; compare with NaN == NaN.
  CHECK(at::equal(at::nan_to_num(decoded, 1000.0), at::nan_to_num(expected, 1000.0)));
}

TEST_CASE("fp8: decode refuses tensors that are not uint8", "[fp8]") {
  CHECK_THROWS_AS(fp8_e4m3_decode(at::zeros({4}, at::kFloat)), std::invalid_argument);
  CHECK_THROWS_AS(fp8_e4m3_decode(at::zeros({4}, at::kChar)), std::invalid_argument);
}

TEST_CASE("fp8: block scales on a 300x200 weight with 128x128 blocks (partial edge blocks)", "[fp8]") {
  check_dequant(300, 200, 128, 128);
}

TEST_CASE("fp8: block scales with exact, tiny and non-square blocks", "[fp8]") {
  check_dequant(256, 384, 128, 128);
  check_dequant(5, 7, 2, 3);
  check_dequant(1, 1, 128, 128);
  check_dequant(129, 127, 128, 128);
  check_dequant(64, 64, 1, 1);
  check_dequant(0, 10, 128, 128);
}

TEST_CASE("fp8: block scales of a bfloat16 weight and a float64 scale come out float32", "[fp8]") {
  const at::Tensor weight = at::full({3, 3}, 2.0, at::TensorOptions().dtype(at::kBFloat16));
  const at::Tensor scale = at::full({2, 2}, 0.5, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor result = fp8_apply_block_scales(weight, scale, 2, 2);
  CHECK(result.scalar_type() == at::kFloat);
  CHECK(at::equal(result, at::ones({3, 3}, at::kFloat)));
}

TEST_CASE("fp8: block scales of the wrong shape, 1-D weights and bad block sizes", "[fp8][errors]") {
  const at::Tensor weight = at::ones({300, 200}, at::kFloat);
  auto message = input_error_message([&] { fp8_apply_block_scales(weight, at::ones({2, 2}), 128, 128); });
  REQUIRE(message.has_value());
  INFO(*message);
  CHECK(message->find("scale_inv has shape [2, 2]") != std::string::npos);
  CHECK(message->find("[300, 200]") != std::string::npos);
  CHECK(message->find("128x128") != std::string::npos);
  CHECK(message->find("needs [3, 2]") != std::string::npos);

  CHECK(input_error_message([&] { fp8_apply_block_scales(weight, at::ones({3, 2, 1}), 128, 128); }).has_value());
  CHECK(input_error_message([&] { fp8_apply_block_scales(weight, at::ones({6}), 128, 128); }).has_value());
  // Floor instead of ceiling is the typical mistake.
  CHECK(input_error_message([&] { fp8_apply_block_scales(weight, at::ones({2, 1}), 128, 128); }).has_value());

  message = input_error_message([&] { fp8_apply_block_scales(at::ones({300}), at::ones({3}), 128, 128); });
  REQUIRE(message.has_value());
  CHECK(message->find("2-D weight") != std::string::npos);

  message = input_error_message([&] { fp8_apply_block_scales(weight, at::ones({3, 2}), 0, 128); });
  REQUIRE(message.has_value());
  CHECK(message->find("block size 0x128") != std::string::npos);
}
