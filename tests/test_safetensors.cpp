// SafetensorsFile: well-formed files read back exactly; every malformed header or size is
// refused with a one-line InputError naming the file and the tensor/field.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>
#include <limits>

#include "error.h"
#include "safetensors.h"
#include "safetensors_writer.h"
// Catch2 last: ATen on Debian brings glog, whose CHECK macro would clash with Catch2's.
#undef CHECK
#include "catch_shim.h"

using indexcache::DType;
using indexcache::InputError;
using indexcache::SafetensorsFile;
using namespace indexcache::test_support;

namespace {

// Opening `path` must throw an InputError that starts with the path, is one line, and
// contains each of `parts`.
void expect_open_error(const std::string& path, std::initializer_list<std::string> parts) {
  const auto message = input_error_message([&] { SafetensorsFile::open(path); });
  REQUIRE(message.has_value());
  INFO("message: " << *message);
  CHECK(message->rfind(path + ": ", 0) == 0);
  CHECK(message->find('\n') == std::string::npos);
  for (const std::string& part : parts) {
    INFO("expected part: " << part);
    CHECK(message->find(part) != std::string::npos);
  }
}

// A file whose header is `header` followed by `data`, with the length field telling the truth.
std::string write_with_header(const TempDir& dir, const std::string& header, const std::vector<uint8_t>& data = {}) {
  const std::string path = dir.file("model.safetensors");
  write_bytes(path, safetensors_bytes_raw(header, data));
  return path;
}

std::vector<uint8_t> zeros(std::size_t count) { return std::vector<uint8_t>(count, 0); }

}  // namespace

TEST_CASE("safetensors: dtype names and sizes", "[safetensors]") {
  CHECK(std::string(indexcache::dtype_name(DType::F32)) == "F32");
  CHECK(std::string(indexcache::dtype_name(DType::BF16)) == "BF16");
  CHECK(std::string(indexcache::dtype_name(DType::F16)) == "F16");
  CHECK(std::string(indexcache::dtype_name(DType::F8_E4M3)) == "F8_E4M3");
  CHECK(indexcache::dtype_size(DType::F32) == 4);
  CHECK(indexcache::dtype_size(DType::BF16) == 2);
  CHECK(indexcache::dtype_size(DType::F16) == 2);
  CHECK(indexcache::dtype_size(DType::F8_E4M3) == 1);
}

TEST_CASE("safetensors: reads tensors, offsets, bytes and metadata", "[safetensors]") {
  TempDir dir;
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 1e-30f, 65504.0f};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc020, 0x0001, 0x7f7f};  // 1, -2.5, tiny, max
  const std::vector<uint16_t> f16 = {0x3c00, 0xc100, 0x7bff};            // 1, -2.5, 65504
  const std::vector<uint8_t> fp8 = {0x38, 0xb8, 0x7e, 0x01, 0x08, 0x00};
  const std::vector<WriterTensor> tensors = {
      {"b.f32", "F32", {2, 3}, bytes_of(f32)},
      {"a.bf16", "BF16", {4}, bytes_of(bf16)},
      {"c.f16", "F16", {3, 1}, bytes_of(f16)},
      {"d.fp8", "F8_E4M3", {2, 3}, fp8},
      {"e.scalar", "F32", {}, bytes_of(7.0f)},
      {"f.empty", "BF16", {0, 4}, {}},
  };
  const std::string path = dir.file("model.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "test"}});

  const auto file = SafetensorsFile::open(path);
  CHECK(file->path() == path);
  REQUIRE(file->tensors().size() == tensors.size());
  CHECK(file->tensors().front().name == "a.bf16");  // sorted by name, not by offset
  CHECK(file->tensors().back().name == "f.empty");
  CHECK(file->metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "test"}});
  CHECK(file->find("missing") == nullptr);
  CHECK(file->find("__metadata__") == nullptr);

  uint64_t offset = 0;
  for (const WriterTensor& written : tensors) {
    INFO("tensor " << written.name);
    const indexcache::TensorInfo* info = file->find(written.name);
    REQUIRE(info != nullptr);
    CHECK(info->name == written.name);
    CHECK(indexcache::dtype_name(info->dtype) == written.dtype);
    CHECK(info->shape == written.shape);
    CHECK(info->begin == offset);
    CHECK(info->end == offset + written.bytes.size());
    const std::vector<uint8_t> read(file->data(*info), file->data(*info) + (info->end - info->begin));
    CHECK(read == written.bytes);
    offset += written.bytes.size();
  }
  CHECK(file->find("b.f32")->numel() == 6);
  CHECK(file->find("e.scalar")->numel() == 1);
  CHECK(file->find("f.empty")->numel() == 0);
  float first = 0;
  std::memcpy(&first, file->data(*file->find("b.f32")), sizeof first);
  CHECK(first == 1.0f);
}

TEST_CASE("safetensors: an unpadded header leaves the data unaligned and still reads", "[safetensors]") {
  TempDir dir;
  const std::vector<float> values = {0.5f, -4.0f, 3.0f};
  const std::string path = dir.file("odd.safetensors");
  // An odd header length, so the data section starts unaligned.
  std::string header = safetensors_header({{"x", "F32", {3}, bytes_of(values)}});
  if (header.size() % 2 == 0) header += " ";
  write_bytes(path, safetensors_bytes_raw(header, bytes_of(values)));
  const auto file = SafetensorsFile::open(path);
  const auto* info = file->find("x");
  REQUIRE(info != nullptr);
  std::vector<float> read(3);
  std::memcpy(read.data(), file->data(*info), 12);
  CHECK(read == values);
}

TEST_CASE("safetensors: a file with only metadata and no tensors is valid", "[safetensors]") {
  TempDir dir;
  const std::string path = write_with_header(dir, R"({"__metadata__": {"format": "pt"}})");
  const auto file = SafetensorsFile::open(path);
  CHECK(file->tensors().empty());
  CHECK(file->metadata().at("format") == "pt");
}

TEST_CASE("safetensors: missing file, directory, unreadable file", "[safetensors][errors]") {
  TempDir dir;
  expect_open_error(dir.file("nothing.safetensors"), {"cannot open", "No such file"});
  expect_open_error(dir.path(), {"is a directory"});
  const std::string path = dir.file("locked.safetensors");
  write_safetensors(path, {{"x", "F32", {1}, bytes_of(1.0f)}});
  ::chmod(path.c_str(), 0);
  // root reads files whatever their mode, so the check only means something for other users.
  if (::geteuid() != 0) expect_open_error(path, {"cannot open", "Permission denied"});
}

TEST_CASE("safetensors: files too short for the length field", "[safetensors][errors]") {
  TempDir dir;
  const std::string empty = dir.file("empty.safetensors");
  write_bytes(empty, {});
  expect_open_error(empty, {"0 bytes", "too short"});
  const std::string short_file = dir.file("short.safetensors");
  write_bytes(short_file, {1, 0, 0, 0, 0, 0, 0});
  expect_open_error(short_file, {"7 bytes", "too short"});
}

TEST_CASE("safetensors: header length 0, absurd, or past the end of the file", "[safetensors][errors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  write_bytes(path, safetensors_bytes_raw("{}", {}, 0));
  expect_open_error(path, {"header length is 0"});

  write_bytes(path, safetensors_bytes_raw("{}", zeros(64), uint64_t{1} << 63));
  expect_open_error(path, {"header length 9223372036854775808", "limit"});

  write_bytes(path, safetensors_bytes_raw("{}", zeros(10), 1000));
  expect_open_error(path, {"header length 1000", "past the end of the file", "20 bytes"});

  // All ones: must not wrap around when added to 8.
  write_bytes(path, safetensors_bytes_raw("{}", {}, std::numeric_limits<uint64_t>::max()));
  expect_open_error(path, {"header length 18446744073709551615"});
}

TEST_CASE("safetensors: truncated files are refused, never read past the end", "[safetensors][errors]") {
  TempDir dir;
  const std::vector<float> values(16, 1.5f);
  const std::vector<WriterTensor> tensors = {{"a", "F32", {4, 4}, bytes_of(values)},
                                             {"b", "F32", {2}, bytes_of(std::vector<float>{2.0f, 3.0f})}};
  const auto full = safetensors_bytes(tensors);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | full[i];
  const std::string path = dir.file("cut.safetensors");
  auto write_prefix = [&](std::size_t size) {
    write_bytes(path, std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(size)));
  };

  SECTION("at 0 bytes") {
    write_prefix(0);
    expect_open_error(path, {"too short"});
  }
  SECTION("at 4 bytes, inside the length field") {
    write_prefix(4);
    expect_open_error(path, {"4 bytes", "too short"});
  }
  SECTION("at 8 bytes, right after the length field") {
    write_prefix(8);
    expect_open_error(path, {"past the end of the file"});
  }
  SECTION("halfway through the header") {
    write_prefix(8 + header_size / 2);
    expect_open_error(path, {"past the end of the file"});
  }
  SECTION("inside the data section") {
    write_prefix(full.size() - 3);
    expect_open_error(path, {"tensor b", "data_offsets [64, 72]", "past the data section of 69 bytes"});
  }
  SECTION("the whole file opens") {
    write_prefix(full.size());
    CHECK(SafetensorsFile::open(path)->tensors().size() == 2);
  }
}

TEST_CASE("safetensors: a header that is not JSON, or not an object", "[safetensors][errors]") {
  TempDir dir;
  expect_open_error(write_with_header(dir, "{\"a\": {\"dtype\": "), {"header is not valid JSON"});
  expect_open_error(write_with_header(dir, "not json at all"), {"header is not valid JSON"});
  expect_open_error(write_with_header(dir, "{\"a\": \"\xff\xfe\"}"), {"header is not valid JSON"});
  expect_open_error(write_with_header(dir, "[1, 2, 3]"), {"header is a JSON array", "expected an object"});
  expect_open_error(write_with_header(dir, "\"text\""), {"header is a JSON string"});
  expect_open_error(write_with_header(dir, "42"), {"header is a JSON number"});
}

TEST_CASE("safetensors: wrong JSON types in an entry name the tensor and field", "[safetensors][errors]") {
  TempDir dir;
  const auto data = zeros(16);
  auto header_for = [](const std::string& entry) { return "{\"w\": " + entry + "}"; };

  expect_open_error(write_with_header(dir, header_for("[1, 2]"), data), {"tensor w", "entry is array"});
  expect_open_error(write_with_header(dir, header_for("null"), data), {"tensor w", "entry is null"});
  expect_open_error(write_with_header(dir, header_for(R"({"shape": [4], "data_offsets": [0, 16]})"), data),
                    {"tensor w", "missing field dtype"});
  expect_open_error(write_with_header(dir, header_for(R"({"dtype": "F32", "data_offsets": [0, 16]})"), data),
                    {"tensor w", "missing field shape"});
  expect_open_error(write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4]})"), data),
                    {"tensor w", "missing field data_offsets"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": 32, "shape": [4], "data_offsets": [0, 16]})"), data),
      {"tensor w", "dtype is number", "expected a string"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": "4", "data_offsets": [0, 16]})"), data),
      {"tensor w", "shape is string", "expected an array"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]})"), data),
      {"tensor w", "shape dimension is number 4.0", "non-negative integer"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]})"), data),
      {"tensor w", "shape dimension is string"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]})"), data),
      {"tensor w", "shape dimension -4 is negative"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4], "data_offsets": "0-16"})"), data),
      {"tensor w", "data_offsets is \"0-16\"", "expected [begin, end]"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]})"), data),
      {"tensor w", "data_offsets is [0,8,16]"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16.5]})"), data),
      {"tensor w", "data_offsets end is number"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]})"), data),
      {"tensor w", "data_offsets begin -16 is negative"});
  expect_open_error(
      write_with_header(dir, header_for(R"({"dtype": "F32", "shape": [4], "data_offsets": [null, 16]})"), data),
      {"tensor w", "data_offsets begin is null"});
}

TEST_CASE("safetensors: __metadata__ must be an object of strings", "[safetensors][errors]") {
  TempDir dir;
  expect_open_error(write_with_header(dir, R"({"__metadata__": ["pt"]})"),
                    {"__metadata__ is array", "expected an object"});
  expect_open_error(write_with_header(dir, R"({"__metadata__": {"format": "pt", "version": 2}})"),
                    {"__metadata__ field version is number", "expected a string"});
}

TEST_CASE("safetensors: dtypes indexcache does not read are refused by name", "[safetensors][errors]") {
  TempDir dir;
  for (const std::string dtype : {"F64", "I8", "BOOL", "F8_E5M2", "I16", "U8", "bf16"}) {
    const std::string header =
        R"({"model.norm.weight": {"dtype": ")" + dtype + R"(", "shape": [2], "data_offsets": [0, 16]}})";
    expect_open_error(write_with_header(dir, header, zeros(16)),
                      {"tensor model.norm.weight has dtype " + dtype +
                       ", which indexcache does not read (F32, BF16, F16, F8_E4M3, I64, I32)"});
  }
}

TEST_CASE("safetensors: offsets out of range or reversed", "[safetensors][errors]") {
  TempDir dir;
  expect_open_error(write_with_header(dir, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [4, 20]}})",
                                      zeros(16)),
                    {"tensor w", "data_offsets [4, 20] run past the data section of 16 bytes"});
  expect_open_error(write_with_header(dir, R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})",
                                      zeros(16)),
                    {"tensor w", "data_offsets [8, 4] end before they begin"});
  expect_open_error(
      write_with_header(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551616]}})",
                        zeros(16)),
      {"tensor w", "data_offsets end is number"});
}

TEST_CASE("safetensors: overlapping tensors", "[safetensors][errors]") {
  TempDir dir;
  const std::string header = R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                             R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})";
  expect_open_error(write_with_header(dir, header, zeros(16)),
                    {"tensor b: data_offsets [8, 16] overlap tensor a at [0, 16]"});
  // Same range twice.
  const std::string same = R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                           R"( "b": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}})";
  expect_open_error(write_with_header(dir, same, zeros(16)), {"overlap"});
  // Touching ranges, gaps and empty tensors are fine.
  const std::string fine = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                           R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},)"
                           R"( "c": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},)"
                           R"( "d": {"dtype": "F16", "shape": [1], "data_offsets": [14, 16]}})";
  CHECK(SafetensorsFile::open(write_with_header(dir, fine, zeros(16)))->tensors().size() == 4);
}

TEST_CASE("safetensors: byte size must equal numel x dtype size", "[safetensors][errors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  write_safetensors(path, {{"model.layers.0.mlp.up_proj.weight", "F32", {4, 8}, zeros(96)}});
  const auto message = input_error_message([&] { SafetensorsFile::open(path); });
  REQUIRE(message.has_value());
  CHECK(*message == path +
                        ": tensor model.layers.0.mlp.up_proj.weight: data_offsets [0, 96] give 96 bytes but "
                        "shape [4, 8] in F32 needs 128");

  write_safetensors(path, {{"w", "BF16", {3}, zeros(8)}});
  expect_open_error(path, {"tensor w", "give 8 bytes but shape [3] in BF16 needs 6"});
  write_safetensors(path, {{"w", "F8_E4M3", {}, zeros(2)}});
  expect_open_error(path, {"tensor w", "give 2 bytes but shape [] in F8_E4M3 needs 1"});
}

TEST_CASE("safetensors: huge shapes do not overflow", "[safetensors][errors]") {
  TempDir dir;
  auto header_with_shape = [](const std::string& dtype, const std::string& shape) {
    return R"({"w": {"dtype": ")" + dtype + R"(", "shape": )" + shape + R"(, "data_offsets": [0, 16]}})";
  };
  // 2^40 x 2^40 elements overflows int64.
  expect_open_error(write_with_header(dir, header_with_shape("F32", "[1099511627776, 1099511627776]"), zeros(16)),
                    {"tensor w", "shape [1099511627776, 1099511627776]", "more elements than fit in 64 bits"});
  // (2^62 + 1) x 4 elements: unchecked 64-bit math wraps to 4 elements = exactly the 16 bytes.
  expect_open_error(write_with_header(dir, header_with_shape("F32", "[4611686018427387905, 4]"), zeros(16)),
                    {"tensor w", "more elements than fit in 64 bits"});
  // 2^62 + 4 elements fit in int64, but x 4 bytes wraps to exactly 16 bytes without checks.
  expect_open_error(write_with_header(dir, header_with_shape("F32", "[4611686018427387908]"), zeros(16)),
                    {"tensor w", "needs more bytes than fit in 64 bits"});
  expect_open_error(write_with_header(dir, header_with_shape("F8_E4M3", "[4294967296, 4294967296, 16]"), zeros(16)),
                    {"tensor w", "more elements than fit in 64 bits"});
  // A zero anywhere makes the product 0, however large the other dims.
  expect_open_error(write_with_header(dir, header_with_shape("F32", "[0, 9223372036854775807]"), zeros(16)),
                    {"tensor w", "give 16 bytes but shape [0, 9223372036854775807] in F32 needs 0"});
  // Dimensions beyond int64.
  expect_open_error(write_with_header(dir, header_with_shape("F32", "[9223372036854775808]"), zeros(16)),
                    {"tensor w", "shape dimension 9223372036854775808 is too large"});
  expect_open_error(write_with_header(dir, header_with_shape("F32", "[1e30]"), zeros(16)),
                    {"tensor w", "shape dimension is number"});
}

TEST_CASE("safetensors: control characters in names stay out of the one-line message", "[safetensors][errors]") {
  TempDir dir;
  const std::string header = R"({"bad\nname": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})";
  expect_open_error(write_with_header(dir, header, zeros(8)), {"tensor bad name has dtype F64"});
}
