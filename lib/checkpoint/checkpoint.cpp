// A checkpoint directory: finds the safetensors file(s), builds one sorted name -> file table,
// and decodes single tensors on request (F32/BF16/F16 by conversion, F8_E4M3 by table and
// block scales).
#include "checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "error.h"
#include "file_system.h"
#include "fp8.h"

namespace indexcache {

namespace {

using Json = nlohmann::json;

const char* const kSingleFile = "model.safetensors";
const char* const kIndexFile = "model.safetensors.index.json";
const char* const kScaleSuffix = "_scale_inv";

// Names from the checkpoint (file names, shard names in the index) always resolve under `dir`,
// even one starting with '/' (file_system.h's join_path would take that as absolute).
std::string path_under(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

// Whether `path` leads to something, following symbolic links (path_exists looks at the entry).
bool target_exists(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0;
}

int64_t ceil_div(int64_t value, int64_t divisor) { return value / divisor + (value % divisor != 0 ? 1 : 0); }

at::ScalarType stored_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return at::kFloat;
    case DType::BF16: return at::kBFloat16;
    case DType::F16: return at::kHalf;
    case DType::F8_E4M3: return at::kByte;  // raw bytes; decoded by fp8_e4m3_decode
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
  }
  return at::kByte;
}

std::string read_text_file(const std::string& path) {
  if (is_directory(path)) throw InputError(path, "is a directory, expected a JSON file");
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
  // A FIFO or device would block or never end; only regular files are read.
  if (!S_ISREG(status.st_mode)) throw InputError(path, "is not a regular file");
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream text;
  text << stream.rdbuf();
  if (stream.bad()) throw InputError(path, "read failed");
  return text.str();
}

// A shard name must stay inside the checkpoint directory.
void check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& shard) {
  const bool escapes = shard.empty() || shard.front() == '/' || shard == ".." || shard.rfind("../", 0) == 0 ||
                       shard.find("/../") != std::string::npos ||
                       (shard.size() >= 3 && shard.compare(shard.size() - 3, 3, "/..") == 0);
  if (escapes) {
    throw InputError(index_path, "weight_map: tensor " + one_line(tensor) + " names shard \"" + one_line(shard) +
                                     "\", which is not a file name inside the checkpoint directory");
  }
}

// weight_map of model.safetensors.index.json: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  Json root;
  try {
    root = Json::parse(read_text_file(index_path));
  } catch (const Json::exception& error) {
    throw InputError(index_path, "not valid JSON: " + json_error_text(error));
  }
  if (!root.is_object()) {
    throw InputError(index_path, std::string("is a JSON ") + root.type_name() + ", expected an object");
  }
  const auto found = root.find("weight_map");
  if (found == root.end()) throw InputError(index_path, "missing field weight_map");
  if (!found->is_object()) {
    throw InputError(index_path, std::string("weight_map is ") + found->type_name() + ", expected an object");
  }
  if (found->empty()) throw InputError(index_path, "weight_map is empty");
  std::map<std::string, std::string> weight_map;
  for (const auto& item : found->items()) {
    if (!item.value().is_string()) {
      throw InputError(index_path, "weight_map: tensor " + one_line(item.key()) + " maps to " +
                                       item.value().type_name() + ", expected a shard file name");
    }
    const std::string shard = item.value().get<std::string>();
    check_shard_name(index_path, item.key(), shard);
    weight_map[item.key()] = shard;
  }
  return weight_map;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir, Fp8BlockSize fp8_block) {
  if (!target_exists(dir)) throw InputError(dir, "checkpoint directory does not exist");
  if (!is_directory(dir)) throw InputError(dir, "is not a directory (expected a checkpoint directory)");
  if (fp8_block.rows <= 0 || fp8_block.cols <= 0) {
    throw InputError(dir, "FP8 block size " + std::to_string(fp8_block.rows) + "x" +
                              std::to_string(fp8_block.cols) + " must be positive");
  }
  Checkpoint checkpoint;
  checkpoint.dir_ = dir;
  checkpoint.fp8_block_ = fp8_block;
  const std::string index_path = path_under(dir, kIndexFile);
  const std::string single_path = path_under(dir, kSingleFile);
  // path_exists looks at the entry itself: a dangling link or a symlink loop is found here, and
  // the open below names what is wrong with it instead of "no model.safetensors".
  if (path_exists(index_path)) {
    checkpoint.open_shards(index_path);
  } else if (path_exists(single_path)) {
    checkpoint.files_.push_back(SafetensorsFile::open(single_path));
    checkpoint.build_table(single_path);
  } else {
    throw InputError(dir, std::string("no ") + kSingleFile + " or " + kIndexFile);
  }
  return checkpoint;
}

void Checkpoint::open_shards(const std::string& index_path) {
  const std::map<std::string, std::string> weight_map = read_weight_map(index_path);
  std::map<std::string, std::size_t> shard_index;  // shard file name -> position in files_
  for (const auto& [tensor, shard] : weight_map) {
    if (shard_index.count(shard) != 0) continue;
    const std::string shard_path = path_under(dir_, shard);
    if (!path_exists(shard_path)) {
      throw InputError(index_path, "shard " + one_line(shard) + " (named for tensor " + one_line(tensor) +
                                       ") does not exist in " + dir_);
    }
    shard_index[shard] = files_.size();
    files_.push_back(SafetensorsFile::open(shard_path));
  }
  build_table(index_path);
  for (const auto& [tensor, shard] : weight_map) {
    const SafetensorsFile& file = *files_[shard_index.at(shard)];
    if (file.find(tensor) == nullptr) {
      throw InputError(index_path, "weight_map puts tensor " + one_line(tensor) + " in shard " + one_line(shard) +
                                       ", which does not contain it");
    }
  }
}

void Checkpoint::build_table(const std::string& where) {
  for (std::size_t file = 0; file < files_.size(); ++file) {
    for (const TensorInfo& tensor : files_[file]->tensors()) where_.emplace_back(tensor.name, file);
  }
  std::sort(where_.begin(), where_.end());
  for (std::size_t i = 1; i < where_.size(); ++i) {
    if (where_[i].first == where_[i - 1].first) {
      throw InputError(where, "tensor " + one_line(where_[i].first) + " is stored twice, in " +
                                  files_[where_[i - 1].second]->path() + " and " +
                                  files_[where_[i].second]->path());
    }
  }
}

const std::pair<std::string, std::size_t>* Checkpoint::locate(const std::string& name) const {
  const auto found = std::lower_bound(
      where_.begin(), where_.end(), name,
      [](const std::pair<std::string, std::size_t>& entry, const std::string& key) { return entry.first < key; });
  if (found == where_.end() || found->first != name) return nullptr;
  return &*found;
}

bool Checkpoint::has(const std::string& name) const { return locate(name) != nullptr; }

const TensorInfo& Checkpoint::info(const std::string& name) const { return *entry(name).second; }

std::pair<const SafetensorsFile*, const TensorInfo*> Checkpoint::entry(const std::string& name) const {
  const auto* location = locate(name);
  if (location == nullptr) throw InputError(dir_, "tensor " + one_line(name) + " is missing");
  const SafetensorsFile* file = files_[location->second].get();
  return {file, file->find(name)};
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> result;
  result.reserve(where_.size());
  for (const auto& entry : where_) result.push_back(entry.first);
  return result;
}

std::pair<const uint8_t*, std::size_t> Checkpoint::raw_bytes(const std::string& name) const {
  const auto [file, tensor] = entry(name);
  return {file->data(*tensor), static_cast<std::size_t>(tensor->end - tensor->begin)};
}

at::Tensor Checkpoint::load(const std::string& name, at::ScalarType dtype, at::Device device,
                            const std::vector<int64_t>& expected_shape) const {
  if (!at::isFloatingType(dtype)) {
    throw std::invalid_argument(std::string("Checkpoint::load: dtype must be a floating type, got ") +
                                c10::toString(dtype));
  }
  const auto [file, tensor] = entry(name);
  if (tensor->dtype == DType::I64 || tensor->dtype == DType::I32) {
    throw InputError(file->path(), "tensor " + one_line(name) + " has dtype " + dtype_name(tensor->dtype) +
                                       ", expected a floating-point weight");
  }
  if (!expected_shape.empty() && tensor->shape != expected_shape) {
    throw InputError(file->path(), "tensor " + one_line(name) + " has shape " + shape_text(tensor->shape) +
                                       " but " + shape_text(expected_shape) + " was expected");
  }
  at::Tensor result = tensor->dtype == DType::F8_E4M3 ? load_fp8(*file, *tensor, device).to(dtype)
                                                       : load_plain(*file, *tensor, dtype, device);
  check_finite(*file, *tensor, result);
  return result;
}

at::Tensor Checkpoint::load_integer(const std::string& name, at::Device device,
                                    const std::vector<int64_t>& expected_shape) const {
  const auto [file, tensor] = entry(name);
  if (tensor->dtype != DType::I64 && tensor->dtype != DType::I32) {
    throw InputError(file->path(), "tensor " + one_line(name) + " has dtype " + dtype_name(tensor->dtype) +
                                       ", expected I64 or I32");
  }
  if (!expected_shape.empty() && tensor->shape != expected_shape) {
    throw InputError(file->path(), "tensor " + one_line(name) + " has shape " + shape_text(tensor->shape) +
                                       " but " + shape_text(expected_shape) + " was expected");
  }
  return mapped_view(*file, *tensor).to(device, at::kLong, /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor Checkpoint::mapped_view(const SafetensorsFile& file, const TensorInfo& tensor) {
  const at::ScalarType stored = stored_scalar_type(tensor.dtype);
  const uint8_t* bytes = file.data(tensor);
  const auto element_size = static_cast<uintptr_t>(dtype_size(tensor.dtype));
  if (reinterpret_cast<uintptr_t>(bytes) % element_size == 0) {
    return at::from_blob(const_cast<uint8_t*>(bytes), tensor.shape, at::TensorOptions().dtype(stored));
  }
  // The data section need not be aligned (the header length is arbitrary): copy the bytes to
  // aligned memory before ATen reads them as wider elements.
  at::Tensor aligned = at::empty(tensor.shape, at::TensorOptions().dtype(stored));
  if (aligned.numel() > 0) std::memcpy(aligned.data_ptr(), bytes, tensor.end - tensor.begin);
  return aligned;
}

at::Tensor Checkpoint::stored_bytes(const SafetensorsFile& file, const TensorInfo& tensor, at::Device device) {
  const at::Tensor view = mapped_view(file, tensor);
  // copy=true: the result owns its memory even when device and dtype already match.
  return view.to(device, view.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor Checkpoint::load_plain(const SafetensorsFile& file, const TensorInfo& tensor, at::ScalarType dtype,
                                  at::Device device) {
  if (device.is_cpu()) {
    // One pass: convert while copying out of the mapping (copy=true, so never an alias).
    return mapped_view(file, tensor).to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  }
  // Move the stored bytes (the smaller form for BF16/F16) and convert on the GPU.
  return stored_bytes(file, tensor, device).to(dtype);
}

at::Tensor Checkpoint::load_fp8(const SafetensorsFile& file, const TensorInfo& tensor, at::Device device) const {
  if (tensor.shape.size() != 2) {
    throw InputError(file.path(), "tensor " + one_line(tensor.name) + " is F8_E4M3 with shape " +
                                      shape_text(tensor.shape) + "; block-scaled FP8 weights must be 2-D");
  }
  const std::string scale_name = tensor.name + kScaleSuffix;
  const auto* scale_location = locate(scale_name);
  if (scale_location == nullptr) {
    throw InputError(file.path(), "tensor " + one_line(tensor.name) + " is F8_E4M3 but " + one_line(scale_name) +
                                      " is missing");
  }
  const SafetensorsFile& scale_file = *files_[scale_location->second];
  const TensorInfo& scale = *scale_file.find(scale_name);
  const std::vector<int64_t> scale_shape = {ceil_div(tensor.shape[0], fp8_block_.rows),
                                            ceil_div(tensor.shape[1], fp8_block_.cols)};
  if (scale.dtype != DType::F32) {
    throw InputError(scale_file.path(), "tensor " + one_line(scale_name) + " has dtype " + dtype_name(scale.dtype) +
                                            ", expected F32 block scales");
  }
  if (scale.shape != scale_shape) {
    throw InputError(scale_file.path(), "tensor " + one_line(scale_name) + " has shape " + shape_text(scale.shape) +
                                            " but weight " + one_line(tensor.name) + " " + shape_text(tensor.shape) +
                                            " with " + std::to_string(fp8_block_.rows) + "x" +
                                            std::to_string(fp8_block_.cols) + " blocks needs " +
                                            shape_text(scale_shape));
  }
  const at::Tensor scale_values = stored_bytes(scale_file, scale, device);
  if (!at::isfinite(scale_values).all().item<bool>()) {
    throw InputError(scale_file.path(), "tensor " + one_line(scale_name) + " contains NaN or Inf");
  }
  // On a GPU the raw bytes go over first, so both the lookup and the scaling run there. On the
  // CPU the lookup reads the mapping directly: its output is a new tensor, never an alias.
  const at::Tensor values =
      fp8_e4m3_decode(device.is_cpu() ? mapped_view(file, tensor) : stored_bytes(file, tensor, device));
  return fp8_apply_block_scales(values, scale_values, fp8_block_.rows, fp8_block_.cols);
}

void Checkpoint::check_finite(const SafetensorsFile& file, const TensorInfo& tensor, const at::Tensor& result) const {
  if (at::isfinite(result).all().item<bool>()) return;
  // Only on failure: tell a bad stored value apart from a finite one that the requested dtype
  // cannot hold (F32 above 65504 requested as Half, say), by decoding again in float32.
  if (result.scalar_type() != at::kFloat && result.scalar_type() != at::kDouble) {
    const at::Tensor in_float = tensor.dtype == DType::F8_E4M3
                                    ? load_fp8(file, tensor, at::Device(at::kCPU))
                                    : mapped_view(file, tensor).to(at::kFloat);
    if (at::isfinite(in_float).all().item<bool>()) {
      throw InputError(file.path(), "tensor " + one_line(tensor.name) + " has values too large for " +
                                        c10::toString(result.scalar_type()) + " (they become Inf)");
    }
  }
  throw InputError(file.path(), "tensor " + one_line(tensor.name) + " contains NaN or Inf");
}

}  // namespace indexcache
