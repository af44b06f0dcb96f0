// Checkpoint: single-file and sharded directories, exact decoding of every stored dtype, FP8
// block dequantisation, and the errors for missing, malformed and non-finite inputs.
#include <ATen/ATen.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "error.h"
#include "fp8.h"
#include "safetensors_writer.h"
// Catch2 last: ATen on Debian brings glog, whose CHECK macro would clash with Catch2's.
#undef CHECK
#include "catch_shim.h"

using indexcache::Checkpoint;
using indexcache::DType;
using indexcache::Fp8BlockSize;
using namespace indexcache::test_support;

namespace {

const at::Device kCpu(at::kCPU);

// `action` must throw an InputError that is one line, starts with `where`, and contains each
// of `parts`.
template <typename Action>
void expect_input_error(Action&& action, const std::string& where, std::initializer_list<std::string> parts) {
  const auto message = input_error_message(action);
  REQUIRE(message.has_value());
  INFO("message: " << *message);
  CHECK(message->rfind(where + ": ", 0) == 0);
  CHECK(message->find('\n') == std::string::npos);
  for (const std::string& part : parts) {
    INFO("expected part: " << part);
    CHECK(message->find(part) != std::string::npos);
  }
}

std::vector<float> to_vector(const at::Tensor& tensor) {
  const at::Tensor host = tensor.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
}

// bfloat16 bit patterns of floats that bfloat16 holds exactly (the top half of the float).
std::vector<uint16_t> bf16_bits(const std::vector<float>& values) {
  std::vector<uint16_t> bits;
  for (const float value : values) {
    uint32_t word = 0;
    std::memcpy(&word, &value, sizeof word);
    REQUIRE((word & 0xffff) == 0);  // exactly representable
    bits.push_back(static_cast<uint16_t>(word >> 16));
  }
  return bits;
}

// Values exactly representable in bfloat16 and float16 alike.
const std::vector<float> kExactValues = {1.0f, -2.5f, 0.15625f, 3.0f, -0.0078125f, 1024.0f};

// A small checkpoint with every stored dtype, an FP8 weight with partial edge blocks and an
// MTP layer (index past num_hidden_layers), as tensors to write.
struct Fixture {
  at::Tensor f32 = at::tensor({0.5f, -1.25f, 3.0f, 1e-20f, -7.0f, 100.0f}).view({2, 3});
  at::Tensor fp8 = at::arange(300 * 200, at::TensorOptions().dtype(at::kLong)).remainder(126).to(at::kByte).view({300, 200});
  at::Tensor fp8_scale = at::tensor({0.5f, 2.0f, 0.25f, 4.0f, 1.0f, 0.125f}).view({3, 2});

  std::vector<WriterTensor> tensors() const {
    return {
        writer_tensor("model.embed_tokens.weight", f32),
        {"model.layers.0.input_layernorm.weight", "BF16", {6}, bytes_of(bf16_bits(kExactValues))},
        writer_tensor("model.layers.0.mlp.up_proj.weight", at::tensor(kExactValues).to(at::kHalf).view({3, 2})),
        writer_tensor("model.layers.0.self_attn.q_a_proj.weight", fp8),
        writer_tensor("model.layers.0.self_attn.q_a_proj.weight_scale_inv", fp8_scale),
        writer_tensor("model.layers.1.mlp.gate_proj.weight", at::ones({2, 2})),
        writer_tensor("model.layers.2.eh_proj.weight", at::full({2, 4}, 0.5f)),  // MTP layer
    };
  }

  // The FP8 weight dequantised element by element.
  std::vector<float> fp8_expected() const {
    std::vector<float> expected(300 * 200);
    const uint8_t* bytes = fp8.data_ptr<uint8_t>();
    const float* scale = fp8_scale.data_ptr<float>();
    for (int r = 0; r < 300; ++r) {
      for (int c = 0; c < 200; ++c) {
        expected[r * 200 + c] = indexcache::fp8_e4m3_to_float(bytes[r * 200 + c]) * scale[(r / 128) * 2 + c / 128];
      }
    }
    return expected;
  }
};

// Writes `tensors` as model.safetensors in `dir`.
void write_single(const TempDir& dir, const std::vector<WriterTensor>& tensors) {
  write_safetensors(dir.file("model.safetensors"), tensors);
}

// Writes `tensors` split over two shards (odd and even positions) with an index.
void write_two_shards(const TempDir& dir, const std::vector<WriterTensor>& tensors) {
  std::vector<WriterTensor> first, second;
  std::map<std::string, std::string> weight_map;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const bool in_first = i % 2 == 0;
    (in_first ? first : second).push_back(tensors[i]);
    weight_map[tensors[i].name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir.file("model-00001-of-00002.safetensors"), first);
  write_safetensors(dir.file("model-00002-of-00002.safetensors"), second);
  write_text(dir.file("model.safetensors.index.json"), safetensors_index_json(weight_map));
}

}  // namespace

TEST_CASE("checkpoint: lists names sorted, with info and raw bytes", "[checkpoint]") {
  TempDir dir;
  const Fixture fixture;
  const auto tensors = fixture.tensors();
  write_single(dir, tensors);
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  CHECK(checkpoint.dir() == dir.path());

  std::vector<std::string> expected_names;
  for (const auto& tensor : tensors) expected_names.push_back(tensor.name);
  std::sort(expected_names.begin(), expected_names.end());
  CHECK(checkpoint.names() == expected_names);
  CHECK(checkpoint.has("model.layers.2.eh_proj.weight"));  // MTP layers are listed like any other
  CHECK(!checkpoint.has("model.layers.0.mlp.down_proj.weight"));

  const auto& info = checkpoint.info("model.layers.0.self_attn.q_a_proj.weight");
  CHECK(info.dtype == DType::F8_E4M3);
  CHECK(info.shape == std::vector<int64_t>{300, 200});
  CHECK(checkpoint.info("model.layers.0.input_layernorm.weight").dtype == DType::BF16);

  for (const auto& tensor : tensors) {
    INFO(tensor.name);
    const auto [data, size] = checkpoint.raw_bytes(tensor.name);
    REQUIRE(size == tensor.bytes.size());
    CHECK(std::vector<uint8_t>(data, data + size) == tensor.bytes);
  }
}

TEST_CASE("checkpoint: F32, BF16 and F16 load exactly, in any requested dtype", "[checkpoint]") {
  TempDir dir;
  const Fixture fixture;
  write_single(dir, fixture.tensors());
  const Checkpoint checkpoint = Checkpoint::open(dir.path());

  const at::Tensor bf16 = checkpoint.load("model.layers.0.input_layernorm.weight", at::kFloat, kCpu);
  CHECK(bf16.scalar_type() == at::kFloat);
  CHECK(bf16.sizes() == at::IntArrayRef({6}));
  CHECK(to_vector(bf16) == kExactValues);

  const at::Tensor bf16_kept = checkpoint.load("model.layers.0.input_layernorm.weight", at::kBFloat16, kCpu);
  CHECK(bf16_kept.scalar_type() == at::kBFloat16);
  CHECK(to_vector(bf16_kept) == kExactValues);

  const at::Tensor f16 = checkpoint.load("model.layers.0.mlp.up_proj.weight", at::kFloat, kCpu, {3, 2});
  CHECK(f16.sizes() == at::IntArrayRef({3, 2}));
  CHECK(to_vector(f16) == kExactValues);
  CHECK(checkpoint.load("model.layers.0.mlp.up_proj.weight", at::kHalf, kCpu).scalar_type() == at::kHalf);

  const at::Tensor f32 = checkpoint.load("model.embed_tokens.weight", at::kFloat, kCpu);
  CHECK(at::equal(f32, fixture.f32));
  const at::Tensor f32_as_double = checkpoint.load("model.embed_tokens.weight", at::kDouble, kCpu);
  CHECK(f32_as_double.scalar_type() == at::kDouble);
  CHECK(at::equal(f32_as_double, fixture.f32.to(at::kDouble)));
  CHECK(at::equal(checkpoint.load("model.embed_tokens.weight", at::kBFloat16, kCpu), fixture.f32.to(at::kBFloat16)));
}

TEST_CASE("checkpoint: loaded tensors own their memory", "[checkpoint]") {
  TempDir dir;
  const Fixture fixture;
  write_single(dir, fixture.tensors());
  at::Tensor loaded;
  {
    const Checkpoint checkpoint = Checkpoint::open(dir.path());
    // Same stored and requested dtype on the CPU: the one case where a plain .to() would alias.
    loaded = checkpoint.load("model.embed_tokens.weight", at::kFloat, kCpu);
    const auto [data, size] = checkpoint.raw_bytes("model.embed_tokens.weight");
    const auto* loaded_begin = static_cast<const uint8_t*>(loaded.data_ptr());
    CHECK((loaded_begin + size <= data || loaded_begin >= data + size));
    loaded.mul_(2.0f);  // the mapping is read-only: writing through an alias would crash
    CHECK(std::vector<uint8_t>(data, data + size) == tensor_bytes(fixture.f32));
  }
  // The checkpoint and its mapping are gone; the tensor is still valid.
  CHECK(at::equal(loaded, fixture.f32 * 2.0f));
}

TEST_CASE("checkpoint: an unaligned data section loads correctly", "[checkpoint]") {
  TempDir dir;
  const std::vector<float> values = {1.5f, -3.0f, 0.25f, 8.0f};
  std::string header = safetensors_header({{"w", "F32", {2, 2}, bytes_of(values)}});
  if (header.size() % 4 == 0) header += " ";
  write_bytes(dir.file("model.safetensors"), safetensors_bytes_raw(header, bytes_of(values)));
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  REQUIRE(reinterpret_cast<uintptr_t>(checkpoint.raw_bytes("w").first) % 4 != 0);
  CHECK(to_vector(checkpoint.load("w", at::kFloat, kCpu)) == values);
  CHECK(to_vector(checkpoint.load("w", at::kHalf, kCpu)) == values);
}

TEST_CASE("checkpoint: FP8 weights are dequantised with their block scales", "[checkpoint][fp8]") {
  TempDir dir;
  const Fixture fixture;
  write_single(dir, fixture.tensors());
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  const std::string name = "model.layers.0.self_attn.q_a_proj.weight";
  const at::Tensor weight = checkpoint.load(name, at::kFloat, kCpu, {300, 200});
  CHECK(weight.scalar_type() == at::kFloat);
  CHECK(weight.sizes() == at::IntArrayRef({300, 200}));
  const std::vector<float> expected = fixture.fp8_expected();
  CHECK(to_vector(weight) == expected);

  const at::Tensor as_bf16 = checkpoint.load(name, at::kBFloat16, kCpu);
  CHECK(as_bf16.scalar_type() == at::kBFloat16);
  const at::Tensor expected_tensor = at::from_blob(const_cast<float*>(expected.data()), {300, 200}, at::kFloat);
  CHECK(at::equal(as_bf16, expected_tensor.to(at::kBFloat16)));
}

TEST_CASE("checkpoint: FP8 block size other than 128x128", "[checkpoint][fp8]") {
  TempDir dir;
  const at::Tensor bytes = at::full({5, 7}, 0x38, at::kByte);  // every value 1.0
  const at::Tensor scale = at::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}).view({3, 2});
  write_single(dir, {writer_tensor("w", bytes), writer_tensor("w_scale_inv", scale)});
  const Checkpoint checkpoint = Checkpoint::open(dir.path(), Fp8BlockSize{2, 4});
  const std::vector<float> loaded = to_vector(checkpoint.load("w", at::kFloat, kCpu));
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 7; ++c) CHECK(loaded[r * 7 + c] == static_cast<float>((r / 2) * 2 + c / 4 + 1));
  }
  // The same files read with 128x128 blocks need a [1, 1] scale.
  const Checkpoint default_blocks = Checkpoint::open(dir.path());
  expect_input_error([&] { default_blocks.load("w", at::kFloat, kCpu); }, dir.file("model.safetensors"),
                     {"tensor w_scale_inv has shape [3, 2]", "needs [1, 1]"});
}

TEST_CASE("checkpoint: a sharded checkpoint loads the same values as a single file", "[checkpoint]") {
  TempDir single_dir, sharded_dir;
  const Fixture fixture;
  write_single(single_dir, fixture.tensors());
  write_two_shards(sharded_dir, fixture.tensors());
  const Checkpoint single = Checkpoint::open(single_dir.path());
  const Checkpoint sharded = Checkpoint::open(sharded_dir.path());
  REQUIRE(sharded.names() == single.names());
  // The FP8 weight (position 3) and its scale (position 4) sit in different shards.
  for (const std::string& name : single.names()) {
    INFO(name);
    const at::Tensor expected = single.load(name, at::kFloat, kCpu);
    const at::Tensor loaded = sharded.load(name, at::kFloat, kCpu);
    CHECK(at::equal(loaded, expected));
    const auto single_raw = single.raw_bytes(name);
    const auto sharded_raw = sharded.raw_bytes(name);
    REQUIRE(single_raw.second == sharded_raw.second);
    CHECK(std::memcmp(single_raw.first, sharded_raw.first, single_raw.second) == 0);
  }
  CHECK(to_vector(sharded.load("model.layers.0.self_attn.q_a_proj.weight", at::kFloat, kCpu)) ==
        fixture.fp8_expected());
}

TEST_CASE("checkpoint: directory missing, not a directory, or without weights", "[checkpoint][errors]") {
  TempDir dir;
  const std::string missing = dir.file("no-such-model");
  expect_input_error([&] { Checkpoint::open(missing); }, missing, {"does not exist"});
  const std::string file = dir.file("config.json");
  write_text(file, "{}");
  expect_input_error([&] { Checkpoint::open(file); }, file, {"is not a directory"});
  expect_input_error([&] { Checkpoint::open(dir.path()); }, dir.path(),
                     {"no model.safetensors or model.safetensors.index.json"});
  expect_input_error([&] { Checkpoint::open(dir.path(), Fp8BlockSize{0, 128}); }, dir.path(),
                     {"FP8 block size 0x128"});
}

TEST_CASE("checkpoint: model.safetensors that is a directory or corrupt", "[checkpoint][errors]") {
  TempDir dir;
  const std::string weights = dir.file("model.safetensors");
  ::mkdir(weights.c_str(), 0755);
  expect_input_error([&] { Checkpoint::open(dir.path()); }, weights, {"is a directory"});
  ::rmdir(weights.c_str());
  write_bytes(weights, safetensors_bytes_raw("{", {}));
  expect_input_error([&] { Checkpoint::open(dir.path()); }, weights, {"header is not valid JSON"});
}

TEST_CASE("checkpoint: index.json errors name the index file and the shard", "[checkpoint][errors]") {
  TempDir dir;
  const std::string index = dir.file("model.safetensors.index.json");
  const std::string shard = "model-00001-of-00002.safetensors";
  write_safetensors(dir.file(shard), {writer_tensor("a", at::ones({2}))});

  SECTION("not JSON") {
    write_text(index, "{\"weight_map\": {");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"not valid JSON"});
  }
  SECTION("JSON but not an object") {
    write_text(index, "[\"weight_map\"]");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"is a JSON array", "expected an object"});
  }
  SECTION("no weight_map") {
    write_text(index, R"({"metadata": {}})");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"missing field weight_map"});
  }
  SECTION("weight_map of the wrong type") {
    write_text(index, R"({"weight_map": ["a"]})");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"weight_map is array"});
  }
  SECTION("empty weight_map") {
    write_text(index, R"({"weight_map": {}})");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"weight_map is empty"});
  }
  SECTION("shard name of the wrong type") {
    write_text(index, R"({"weight_map": {"a": 1}})");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"tensor a maps to number"});
  }
  SECTION("shard outside the directory") {
    write_text(index, R"({"weight_map": {"a": "../model.safetensors"}})");
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index, {"../model.safetensors", "not a file name inside"});
  }
  SECTION("shard that does not exist") {
    write_text(index, safetensors_index_json({{"a", shard}, {"b", "model-00002-of-00002.safetensors"}}));
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index,
                       {"shard model-00002-of-00002.safetensors", "tensor b", "does not exist"});
  }
  SECTION("tensor not in the shard the index names") {
    write_text(index, safetensors_index_json({{"a", shard}, {"c", shard}}));
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index,
                       {"tensor c", "shard " + shard, "does not contain it"});
  }
  SECTION("tensor stored in two shards") {
    write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                      {writer_tensor("a", at::zeros({2})), writer_tensor("b", at::ones({1}))});
    write_text(index, safetensors_index_json({{"a", shard}, {"b", "model-00002-of-00002.safetensors"}}));
    expect_input_error([&] { Checkpoint::open(dir.path()); }, index,
                       {"tensor a is stored twice", shard, "model-00002-of-00002.safetensors"});
  }
  SECTION("a valid index opens each shard once") {
    write_text(index, safetensors_index_json({{"a", shard}}));
    const Checkpoint checkpoint = Checkpoint::open(dir.path());
    CHECK(checkpoint.names() == std::vector<std::string>{"a"});
  }
}

TEST_CASE("checkpoint: loading an absent tensor", "[checkpoint][errors]") {
  TempDir dir;
  write_single(dir, {writer_tensor("a", at::ones({2}))});
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  expect_input_error([&] { checkpoint.load("model.norm.weight", at::kFloat, kCpu); }, dir.path(),
                     {"tensor model.norm.weight is missing"});
  expect_input_error([&] { checkpoint.info("model.norm.weight"); }, dir.path(), {"tensor model.norm.weight is missing"});
  expect_input_error([&] { checkpoint.raw_bytes("model.norm.weight"); }, dir.path(), {"is missing"});
}

TEST_CASE("checkpoint: expected shape mismatch", "[checkpoint][errors]") {
  TempDir dir;
  write_single(dir, {writer_tensor("model.norm.weight", at::ones({4, 8}))});
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  CHECK(checkpoint.load("model.norm.weight", at::kFloat, kCpu, {4, 8}).sizes() == at::IntArrayRef({4, 8}));
  expect_input_error([&] { checkpoint.load("model.norm.weight", at::kFloat, kCpu, {8, 4}); },
                     dir.file("model.safetensors"),
                     {"tensor model.norm.weight has shape [4, 8] but [8, 4] was expected"});
  expect_input_error([&] { checkpoint.load("model.norm.weight", at::kFloat, kCpu, {32}); },
                     dir.file("model.safetensors"), {"shape [4, 8] but [32] was expected"});
}

TEST_CASE("checkpoint: FP8 without its scale, with a wrong scale, or not 2-D", "[checkpoint][errors][fp8]") {
  TempDir dir;
  const std::string file = dir.file("model.safetensors");
  const at::Tensor bytes = at::full({300, 200}, 0x38, at::kByte);

  SECTION("scale missing") {
    write_single(dir, {writer_tensor("model.layers.0.mlp.up_proj.weight", bytes)});
    const Checkpoint checkpoint = Checkpoint::open(dir.path());
    expect_input_error([&] { checkpoint.load("model.layers.0.mlp.up_proj.weight", at::kFloat, kCpu); }, file,
                       {"tensor model.layers.0.mlp.up_proj.weight is F8_E4M3 but "
                        "model.layers.0.mlp.up_proj.weight_scale_inv is missing"});
  }
  SECTION("scale of the wrong shape (floor instead of ceiling)") {
    write_single(dir, {writer_tensor("w", bytes), writer_tensor("w_scale_inv", at::ones({2, 1}))});
    const Checkpoint checkpoint = Checkpoint::open(dir.path());
    expect_input_error([&] { checkpoint.load("w", at::kFloat, kCpu); }, file,
                       {"tensor w_scale_inv has shape [2, 1]", "weight w [300, 200]", "128x128", "needs [3, 2]"});
  }
  SECTION("scale of the wrong dtype") {
    write_single(dir, {writer_tensor("w", bytes), writer_tensor("w_scale_inv", at::ones({3, 2}, at::kBFloat16))});
    const Checkpoint checkpoint = Checkpoint::open(dir.path());
    expect_input_error([&] { checkpoint.load("w", at::kFloat, kCpu); }, file,
                       {"tensor w_scale_inv has dtype BF16", "expected F32"});
  }
  SECTION("1-D and 3-D FP8 tensors") {
    write_single(dir, {writer_tensor("flat", at::full({10}, 0x38, at::kByte)),
                       writer_tensor("flat_scale_inv", at::ones({1})),
                       writer_tensor("cube", at::full({2, 2, 2}, 0x38, at::kByte))});
    const Checkpoint checkpoint = Checkpoint::open(dir.path());
    expect_input_error([&] { checkpoint.load("flat", at::kFloat, kCpu); }, file,
                       {"tensor flat is F8_E4M3 with shape [10]", "must be 2-D"});
    expect_input_error([&] { checkpoint.load("cube", at::kFloat, kCpu); }, file,
                       {"tensor cube is F8_E4M3 with shape [2, 2, 2]", "must be 2-D"});
  }
}

TEST_CASE("checkpoint: NaN and Inf are refused, naming the tensor", "[checkpoint][errors]") {
  TempDir dir;
  const std::string file = dir.file("model.safetensors");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor fp8_with_nan = at::full({4, 4}, 0x38, at::kByte);
  fp8_with_nan[2][3] = 0x7f;
  write_single(dir, {
                        writer_tensor("model.layers.3.self_attn.indexer.wq_b.weight", at::tensor({1.0f, nan, 2.0f})),
                        writer_tensor("bf16_inf", at::tensor({1.0f, -inf}).to(at::kBFloat16)),
                        writer_tensor("f16_nan", at::tensor({nan}).to(at::kHalf)),
                        writer_tensor("fp8_nan", fp8_with_nan),
                        writer_tensor("fp8_nan_scale_inv", at::ones({1, 1})),
                        writer_tensor("fp8_bad_scale", at::full({4, 4}, 0x38, at::kByte)),
                        writer_tensor("fp8_bad_scale_scale_inv", at::tensor({inf}).view({1, 1})),
                        writer_tensor("large", at::tensor({1e10f, 2.0f})),
                    });
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  expect_input_error([&] { checkpoint.load("model.layers.3.self_attn.indexer.wq_b.weight", at::kFloat, kCpu); },
                     file, {"tensor model.layers.3.self_attn.indexer.wq_b.weight contains NaN or Inf"});
  expect_input_error([&] { checkpoint.load("bf16_inf", at::kFloat, kCpu); }, file,
                     {"tensor bf16_inf contains NaN or Inf"});
  expect_input_error([&] { checkpoint.load("f16_nan", at::kHalf, kCpu); }, file, {"tensor f16_nan contains NaN or Inf"});
  expect_input_error([&] { checkpoint.load("fp8_nan", at::kFloat, kCpu); }, file, {"tensor fp8_nan contains NaN or Inf"});
  expect_input_error([&] { checkpoint.load("fp8_bad_scale", at::kFloat, kCpu); }, file,
                     {"tensor fp8_bad_scale_scale_inv contains NaN or Inf"});
  // Finite in the file, but not in the requested dtype.
  CHECK(checkpoint.load("large", at::kFloat, kCpu).defined());
  expect_input_error([&] { checkpoint.load("large", at::kHalf, kCpu); }, file,
                     {"tensor large has values too large for Half"});
}

TEST_CASE("checkpoint: load asks for a floating dtype", "[checkpoint][errors]") {
  TempDir dir;
  write_single(dir, {writer_tensor("a", at::ones({2}))});
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  CHECK_THROWS_AS(checkpoint.load("a", at::kLong, kCpu), std::invalid_argument);
}
