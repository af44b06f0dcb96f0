// Safetensors reader: the file is memory-mapped read-only and the whole header is checked
// before any tensor is handed out, so later code can trust every offset and size it sees.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "error.h"

namespace indexcache {

namespace {

using Json = nlohmann::json;

// The safetensors format itself caps the header at 100 MB; anything larger is a corrupt
// length field, and refusing it early avoids parsing gigabytes of tensor data as JSON.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

std::optional<DType> dtype_from_name(const std::string& name) {
  if (name == "F32") return DType::F32;
  if (name == "BF16") return DType::BF16;
  if (name == "F16") return DType::F16;
  if (name == "F8_E4M3") return DType::F8_E4M3;
  if (name == "I64") return DType::I64;
  if (name == "I32") return DType::I32;
  return std::nullopt;
}

// Closes the descriptor on every path out of open(); the mapping outlives it.
class FileDescriptor {
 public:
  explicit FileDescriptor(int descriptor) : descriptor_(descriptor) {}
  ~FileDescriptor() {
    if (descriptor_ >= 0) ::close(descriptor_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return descriptor_; }

 private:
  int descriptor_;
};

// Checks one header entry and turns it into a TensorInfo. `data_size` is the byte size of the
// data section. Every failure names the tensor and the field.
class EntryParser {
 public:
  EntryParser(const std::string& path, const std::string& name, uint64_t data_size)
      : path_(path), name_(name), data_size_(data_size) {}

  TensorInfo parse(const Json& entry) const {
    if (!entry.is_object()) fail(std::string("entry is ") + entry.type_name() + ", expected an object");
    TensorInfo info;
    info.name = name_;
    info.dtype = parse_dtype(field(entry, "dtype"));
    info.shape = parse_shape(field(entry, "shape"));
    const auto offsets = parse_offsets(field(entry, "data_offsets"));
    info.begin = offsets.first;
    info.end = offsets.second;
    check_byte_size(info);
    return info;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw InputError(path_, "tensor " + one_line(name_) + ": " + message);
  }

  const Json& field(const Json& entry, const char* key) const {
    const auto found = entry.find(key);
    if (found == entry.end()) fail(std::string("missing field ") + key);
    return *found;
  }

  DType parse_dtype(const Json& value) const {
    if (!value.is_string()) fail(std::string("dtype is ") + value.type_name() + ", expected a string");
    const std::string& name = value.get_ref<const std::string&>();
    const auto dtype = dtype_from_name(name);
    if (!dtype) {
      throw InputError(path_, "tensor " + one_line(name_) + " has dtype " + one_line(name) +
                                  ", which indexcache does not read (F32, BF16, F16, F8_E4M3, I64, I32)");
    }
    return *dtype;
  }

  // A non-negative JSON integer that fits `limit`; `what` names it in the error.
  uint64_t parse_count(const Json& value, const std::string& what, uint64_t limit) const {
    if (!value.is_number_integer()) {
      fail(what + " is " + value.type_name() + " " + one_line(value.dump()) +
           ", expected a non-negative integer");
    }
    if (value.is_number_unsigned()) {
      const uint64_t count = value.get<uint64_t>();
      if (count > limit) fail(what + " " + std::to_string(count) + " is too large");
      return count;
    }
    const int64_t count = value.get<int64_t>();
    if (count < 0) fail(what + " " + std::to_string(count) + " is negative");
    if (static_cast<uint64_t>(count) > limit) fail(what + " " + std::to_string(count) + " is too large");
    return static_cast<uint64_t>(count);
  }

  std::vector<int64_t> parse_shape(const Json& value) const {
    if (!value.is_array()) fail(std::string("shape is ") + value.type_name() + ", expected an array");
    std::vector<int64_t> shape;
    for (const Json& dimension : value) {
      const uint64_t size = parse_count(dimension, "shape dimension", std::numeric_limits<int64_t>::max());
      shape.push_back(static_cast<int64_t>(size));
    }
    return shape;
  }

  std::pair<uint64_t, uint64_t> parse_offsets(const Json& value) const {
    if (!value.is_array() || value.size() != 2) {
      fail("data_offsets is " + one_line(value.dump()) + ", expected [begin, end]");
    }
    const uint64_t limit = std::numeric_limits<uint64_t>::max();
    const uint64_t begin = parse_count(value[0], "data_offsets begin", limit);
    const uint64_t end = parse_count(value[1], "data_offsets end", limit);
    if (begin > end) {
      fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] end before they begin");
    }
    if (end > data_size_) {
      fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           "] run past the data section of " + std::to_string(data_size_) + " bytes");
    }
    return {begin, end};
  }

  // numel x element size must equal the stored range; both products are checked so that a
  // shape like [2^40, 2^40] is refused instead of wrapping around to a small number.
  void check_byte_size(const TensorInfo& info) const {
    int64_t numel = 1;
    for (const int64_t dimension : info.shape) {
      if (__builtin_mul_overflow(numel, dimension, &numel)) {
        fail("shape " + shape_text(info.shape) + " has more elements than fit in 64 bits");
      }
    }
    uint64_t needed = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), static_cast<uint64_t>(dtype_size(info.dtype)),
                               &needed)) {
      fail("shape " + shape_text(info.shape) + " in " + dtype_name(info.dtype) +
           " needs more bytes than fit in 64 bits");
    }
    const uint64_t stored = info.end - info.begin;
    if (stored != needed) {
      fail("data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "] give " +
           std::to_string(stored) + " bytes but shape " + shape_text(info.shape) + " in " +
           dtype_name(info.dtype) + " needs " + std::to_string(needed));
    }
  }

  const std::string& path_;
  const std::string& name_;
  uint64_t data_size_;
};

std::map<std::string, std::string> parse_metadata(const std::string& path, const Json& value) {
  if (!value.is_object()) {
    throw InputError(path, std::string("__metadata__ is ") + value.type_name() + ", expected an object");
  }
  std::map<std::string, std::string> metadata;
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) {
      throw InputError(path, "__metadata__ field " + one_line(item.key()) + " is " + item.value().type_name() +
                                 ", expected a string");
    }
    metadata[item.key()] = item.value().get<std::string>();
  }
  return metadata;
}

// Tensors may leave gaps between them, but no byte may belong to two tensors. Empty tensors
// own no bytes and are skipped.
void check_no_overlap(const std::string& path, const std::vector<TensorInfo>& tensors) {
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& tensor : tensors) {
    if (tensor.begin < tensor.end) by_offset.push_back(&tensor);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* left, const TensorInfo* right) {
    return left->begin != right->begin ? left->begin < right->begin : left->end < right->end;
  });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& previous = *by_offset[i - 1];
    const TensorInfo& current = *by_offset[i];
    if (current.begin < previous.end) {
      throw InputError(path, "tensor " + one_line(current.name) + ": data_offsets [" +
                                 std::to_string(current.begin) + ", " + std::to_string(current.end) +
                                 "] overlap tensor " + one_line(previous.name) + " at [" +
                                 std::to_string(previous.begin) + ", " + std::to_string(previous.end) + "]");
    }
  }
}

uint64_t read_little_endian_u64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// The header length field of a mapped file of `file_size` >= 8 bytes, checked to be non-zero,
// sane, and inside the file.
uint64_t checked_header_size(const std::string& path, const uint8_t* mapping, uint64_t file_size) {
  const uint64_t header_size = read_little_endian_u64(mapping);
  if (header_size == 0) throw InputError(path, "header length is 0");
  if (header_size > kMaxHeaderBytes) {
    throw InputError(path, "header length " + std::to_string(header_size) + " is over the " +
                               std::to_string(kMaxHeaderBytes) + "-byte limit (corrupt file?)");
  }
  if (header_size > file_size - 8) {
    throw InputError(path, "header length " + std::to_string(header_size) + " runs past the end of the file (" +
                               std::to_string(file_size) + " bytes)");
  }
  return header_size;
}

// The header as a JSON object; parser errors become InputError.
Json parse_header_json(const std::string& path, const char* header, uint64_t size) {
  Json root;
  try {
    root = Json::parse(header, header + size);
  } catch (const Json::exception& error) {
    throw InputError(path, "header is not valid JSON: " + json_error_text(error));
  }
  if (!root.is_object()) {
    throw InputError(path, std::string("header is a JSON ") + root.type_name() + ", expected an object");
  }
  return root;
}

}  // namespace

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F8_E4M3: return 1;
    case DType::I64: return 8;
    case DType::I32: return 4;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  // Shapes were checked against overflow when the file was opened.
  int64_t count = 1;
  for (const int64_t dimension : shape) count *= dimension;
  return count;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  // Owned from the start, so the destructor unmaps whatever open() throws after mapping.
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_file();
  file->parse_header();
  return file;
}

void SafetensorsFile::map_file() {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below); it changes
  // nothing for regular files.
  const FileDescriptor descriptor(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (descriptor.get() < 0) {
    throw InputError(path_, std::string("cannot open: ") + std::strerror(errno));
  }
  struct stat status {};
  if (::fstat(descriptor.get(), &status) != 0) {
    throw InputError(path_, std::string("cannot stat: ") + std::strerror(errno));
  }
  if (S_ISDIR(status.st_mode)) throw InputError(path_, "is a directory, expected a .safetensors file");
  if (!S_ISREG(status.st_mode)) throw InputError(path_, "is not a regular file");
  const auto size = static_cast<uint64_t>(status.st_size);
  if (size < 8) {
    throw InputError(path_, "file is " + std::to_string(size) +
                                " bytes, too short for the 8-byte header length of a .safetensors file");
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, descriptor.get(), 0);
  if (mapping == MAP_FAILED) throw InputError(path_, std::string("cannot map: ") + std::strerror(errno));
  mapping_ = static_cast<const uint8_t*>(mapping);
  mapping_size_ = size;
}

void SafetensorsFile::parse_header() {
  const uint64_t header_size = checked_header_size(path_, mapping_, mapping_size_);
  data_start_ = 8 + header_size;
  const Json root = parse_header_json(path_, reinterpret_cast<const char*>(mapping_ + 8), header_size);
  const uint64_t data_size = mapping_size_ - data_start_;
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__") {
      metadata_ = parse_metadata(path_, item.value());
      continue;
    }
    tensors_.push_back(EntryParser(path_, item.key(), data_size).parse(item.value()));
  }
  check_no_overlap(path_, tensors_);
  for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(const_cast<uint8_t*>(mapping_), mapping_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto found = index_.find(name);
  return found == index_.end() ? nullptr : &tensors_[found->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& tensor) const {
  return mapping_ + data_start_ + tensor.begin;
}

}  // namespace indexcache
