// A Hugging Face checkpoint directory: model.safetensors, or shards listed in
// model.safetensors.index.json. Tensors are read lazily (one at a time, on request) and
// decoded to the caller's device and dtype; FP8 block-quantized weights are dequantised.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "model_config.h"
#include "safetensors.h"

namespace indexcache {

class Checkpoint {
 public:
  // FP8 block quantization (Fp8BlockSize, from ModelConfig::fp8_block_size()): a weight
  // [rows, cols] in F8_E4M3 comes with `<name>_scale_inv` in F32 of shape
  // [ceil(rows/block_rows), ceil(cols/block_cols)]; the dequantised value is fp8_value x the
  // scale of its block.
  // Opens `dir`: model.safetensors.index.json when present (every shard it names must exist
  // and every tensor must be in the shard the index says), else model.safetensors.
  // Throws InputError naming the file and the problem.
  static Checkpoint open(const std::string& dir, Fp8BlockSize fp8_block = {});

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const;
  // Throws InputError "<dir>: tensor <name> is missing" when absent.
  const TensorInfo& info(const std::string& name) const;
  // All tensor names, sorted.
  std::vector<std::string> names() const;

  // Loads one tensor as `dtype` on `device`. F8_E4M3 tensors are decoded by table (libtorch
  // 1.13 has no float8) and multiplied by their block scales from `<name>_scale_inv` (missing
  // scale: InputError). Conversion happens on `device` when it is a GPU. When
  // `expected_shape` is non-empty the stored shape must equal it (InputError otherwise).
  at::Tensor load(const std::string& name, at::ScalarType dtype, at::Device device,
                  const std::vector<int64_t>& expected_shape = {}) const;

  // Loads an integer tensor (I64 or I32) as int64 on `device`; any other stored dtype, or a
  // shape other than a non-empty `expected_shape`, is an InputError naming the file.
  at::Tensor load_integer(const std::string& name, at::Device device,
                          const std::vector<int64_t>& expected_shape = {}) const;

  // Raw stored bytes of one tensor (for fingerprints): pointer into the mapping and size.
  std::pair<const uint8_t*, std::size_t> raw_bytes(const std::string& name) const;

 private:
  std::string dir_;
  Fp8BlockSize fp8_block_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::vector<std::pair<std::string, std::size_t>> where_;  // sorted (name, file index)
  const std::pair<std::string, std::size_t>* locate(const std::string& name) const;

  // Helpers of open(): every shard of the index once, then the sorted table of names (a name
  // stored twice is an error reported against `where`).
  void open_shards(const std::string& index_path);
  void build_table(const std::string& where);
  // The file holding `name` and its entry there; InputError "<dir>: tensor <name> is missing".
  std::pair<const SafetensorsFile*, const TensorInfo*> entry(const std::string& name) const;

  // Helpers of load().
  // The stored elements as a CPU tensor in the stored dtype (F8_E4M3 as uint8). Aliases the
  // read-only mapping when it is aligned: callers copy before anything leaves this class.
  static at::Tensor mapped_view(const SafetensorsFile& file, const TensorInfo& tensor);
  // The stored elements copied to `device` in the stored dtype, owning their memory.
  static at::Tensor stored_bytes(const SafetensorsFile& file, const TensorInfo& tensor, at::Device device);
  // An F32/BF16/F16 tensor as `dtype` on `device`, owning its memory.
  static at::Tensor load_plain(const SafetensorsFile& file, const TensorInfo& tensor, at::ScalarType dtype,
                               at::Device device);
  // Dequantised float32 [rows, cols] on `device`.
  at::Tensor load_fp8(const SafetensorsFile& file, const TensorInfo& tensor, at::Device device) const;
  // InputError when `result` (the tensor in the requested dtype) holds NaN or Inf.
  void check_finite(const SafetensorsFile& file, const TensorInfo& tensor, const at::Tensor& result) const;
};

}  // namespace indexcache
