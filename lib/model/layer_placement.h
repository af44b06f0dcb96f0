// Placing decoder layers on several devices of one host: contiguous layer ranges, one per
// device, balanced by weight bytes (the embedding lives on the first device, the final norm and
// lm_head on the last). Activations move between devices at range boundaries.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "checkpoint.h"
#include "model_config.h"

namespace indexcache {

struct DevicePlacement {
  at::Device device = at::kCPU;
  int64_t first_layer = 0;  // inclusive
  int64_t end_layer = 0;    // exclusive
  int64_t weight_bytes = 0;  // weights placed on this device, in the compute dtype
};

// Bytes of each layer's weights once loaded in `dtype` (from the tensor headers alone), and of
// the embedding and of the head (final norm + lm_head).
struct ModelWeightBytes {
  std::vector<int64_t> layers;
  int64_t embedding = 0;
  int64_t head = 0;
};
ModelWeightBytes model_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config, at::ScalarType dtype);

// Contiguous ranges minimising the largest per-device total (ties: earlier devices take fewer
// layers). Every device gets at least one layer when there are enough layers; deterministic.
std::vector<DevicePlacement> place_layers(const ModelWeightBytes& bytes, const std::vector<at::Device>& devices);

// "cuda:0,cuda:1" -> devices (each checked as --device is).
std::vector<at::Device> parse_device_list(const std::string& text);

}  // namespace indexcache
