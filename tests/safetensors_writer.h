// Test-only helpers that write .safetensors files and checkpoint directories, well-formed or
// deliberately broken, plus a self-removing temporary directory to put them in.
//
// Typical use:
//   TempDir dir;
//   write_safetensors(dir.file("model.safetensors"),
//                     {writer_tensor("w", at::ones({2, 3})), {"raw", "F64", {1}, bytes_of(1.0)}});
//   write_bytes(dir.file("bad.safetensors"), safetensors_bytes_raw("[1, 2]", {}));
//
// Byte order: the helpers copy host memory, so they assume a little-endian host (as
// safetensors files are little-endian); every machine indexcache runs on is.
#pragma once

// Debian's libtorch pulls in glog, whose CHECK macro would replace Catch2's CHECK when this
// header comes after catch_shim.h; keep whatever CHECK meant before ATen was included.
#pragma push_macro("CHECK")
#include <ATen/ATen.h>
#pragma pop_macro("CHECK")
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "error.h"
#include "input_error.h"
#include "file_system.h"

namespace indexcache::test_support {

// One tensor to write. `dtype` is the safetensors spelling and is written as given, so a test
// can write dtypes the reader refuses ("F64", "I8"). `bytes` is the data, written as is: its
// size need not match dtype x shape, which lets a test write inconsistent entries.
struct WriterTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Raw bytes of any trivially copyable values (floats, uint16 bit patterns, ...).
template <typename Value>
std::vector<uint8_t> bytes_of(const std::vector<Value>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(Value));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}
template <typename Value>
std::vector<uint8_t> bytes_of(Value value) {
  return bytes_of(std::vector<Value>{value});
}

// The bytes of a tensor (any device, made contiguous on the CPU first).
inline std::vector<uint8_t> tensor_bytes(const at::Tensor& tensor) {
  const at::Tensor host = tensor.to(at::kCPU).contiguous();
  const auto* begin = static_cast<const uint8_t*>(host.data_ptr());
  return std::vector<uint8_t>(begin, begin + host.numel() * host.element_size());
}

// A WriterTensor holding `tensor`: float32 -> F32, bfloat16 -> BF16, float16 -> F16, and uint8
// -> F8_E4M3 (raw E4M3 bytes; pair it with a "<name>_scale_inv" F32 tensor).
inline WriterTensor writer_tensor(const std::string& name, const at::Tensor& tensor) {
  std::string dtype;
  switch (tensor.scalar_type()) {
    case at::kFloat: dtype = "F32"; break;
    case at::kBFloat16: dtype = "BF16"; break;
    case at::kHalf: dtype = "F16"; break;
    case at::kByte: dtype = "F8_E4M3"; break;
    default: throw std::invalid_argument("writer_tensor: unsupported dtype for " + name);
  }
  return {name, dtype, tensor.sizes().vec(), tensor_bytes(tensor)};
}

// The header JSON for `tensors` stored back to back in the given order: data_offsets follow
// from each tensor's byte count. `metadata` becomes "__metadata__" when not empty.
inline std::string safetensors_header(const std::vector<WriterTensor>& tensors,
                                      const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const WriterTensor& tensor : tensors) {
    const uint64_t end = offset + tensor.bytes.size();
    header[tensor.name] = {{"dtype", tensor.dtype}, {"shape", tensor.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  return header.dump();
}

// The concatenated data section of `tensors`, in order.
inline std::vector<uint8_t> safetensors_data(const std::vector<WriterTensor>& tensors) {
  std::vector<uint8_t> data;
  for (const WriterTensor& tensor : tensors) data.insert(data.end(), tensor.bytes.begin(), tensor.bytes.end());
  return data;
}

// A file from any header text and data section: 8-byte little-endian length, header, data.
// `header_length` replaces the length field (default: the header's size), for files whose
// length field lies. Nothing is padded or checked.
inline std::vector<uint8_t> safetensors_bytes_raw(const std::string& header, const std::vector<uint8_t>& data,
                                                  std::optional<uint64_t> header_length = std::nullopt) {
  const uint64_t length = header_length.value_or(header.size());
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(length >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

// A well-formed file (given well-formed tensors). The header is padded with spaces to a
// multiple of 8 bytes, as the reference writer does, unless `pad_header` is false: an unpadded
// header leaves the data section unaligned, which the reader must also handle.
inline std::vector<uint8_t> safetensors_bytes(const std::vector<WriterTensor>& tensors,
                                              const std::map<std::string, std::string>& metadata = {},
                                              bool pad_header = true) {
  std::string header = safetensors_header(tensors, metadata);
  if (pad_header) header.append((8 - header.size() % 8) % 8, ' ');
  return safetensors_bytes_raw(header, safetensors_data(tensors));
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!stream) throw std::runtime_error("test writer: cannot write " + path);
}

inline void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

inline void write_safetensors(const std::string& path, const std::vector<WriterTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  write_bytes(path, safetensors_bytes(tensors, metadata));
}

// model.safetensors.index.json text for a tensor name -> shard file name map.
inline std::string safetensors_index_json(const std::map<std::string, std::string>& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  return index.dump(2);
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() : path_(make_temporary_directory("indexcache-test-")) {}
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace indexcache::test_support
