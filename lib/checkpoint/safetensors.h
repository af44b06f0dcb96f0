// Reader for one .safetensors file: memory-mapped, header validated before any tensor is used.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data section.
// Each header entry maps a tensor name to {"dtype", "shape", "data_offsets": [begin, end]} with
// offsets relative to the start of the data section; "__metadata__" maps strings to strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace indexcache {

// The dtypes indexcache reads. Others (I8, F64, ...) are refused by name. I64 and I32 hold
// integer tables (DeepSeek-V4's hash-routing `tid2eid`), read with Checkpoint::load_integer.
enum class DType { F32, BF16, F16, F8_E4M3, I64, I32 };

// "F32", "BF16", "F16", "F8_E4M3", "I64", "I32" (the safetensors spelling).
const char* dtype_name(DType dtype);
// Bytes per element.
std::size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // row-major, outermost first
  uint64_t begin = 0;          // byte offset in the data section
  uint64_t end = 0;            // one past the last byte
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`: header length inside the file, JSON, known dtypes, shapes,
  // offsets inside the data section, no two tensors overlapping, byte size = numel x dtype size
  // (with overflow checks). Throws InputError naming the file and the tensor/field.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Every tensor of the file, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when the file has no tensor of that name.
  const TensorInfo* find(const std::string& name) const;
  // First byte of the tensor inside the mapping; valid while this object lives.
  const uint8_t* data(const TensorInfo& tensor) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  // open() in two steps: map the file (checking it is a regular file of at least 8 bytes),
  // then validate the header and fill tensors_, index_ and metadata_.
  void map_file();
  void parse_header();
  std::string path_;
  const uint8_t* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  std::size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// "[2, 3]": a shape as messages print it.
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace indexcache
