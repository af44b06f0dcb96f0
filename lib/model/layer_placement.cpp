#include "layer_placement.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "device.h"
#include "error.h"

namespace indexcache {

ModelWeightBytes model_weight_bytes(const Checkpoint& checkpoint, const ModelConfig& config, at::ScalarType dtype) {
  ModelWeightBytes bytes;
  bytes.layers.assign(static_cast<std::size_t>(config.num_hidden_layers), 0);
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
  for (const std::string& name : checkpoint.names()) {
    if (name.size() > 10 && name.compare(name.size() - 10, 10, "_scale_inv") == 0) continue;
    const int64_t size = checkpoint.info(name).numel() * element;
    if (name.rfind("model.layers.", 0) == 0) {
      std::size_t end = name.find('.', 13);
      int64_t layer = std::stoll(name.substr(13, end - 13));
      if (layer < config.num_hidden_layers) bytes.layers[static_cast<std::size_t>(layer)] += size;  // MTP layers ignored
    } else if (name == "model.embed_tokens.weight") {
      bytes.embedding += size;
    } else if (name == "lm_head.weight" || name == "model.norm.weight") {
      bytes.head += size;
    }
  }
  return bytes;
}

namespace {

// Can the layers be cut into at most `parts` contiguous ranges with totals <= capacity?
bool fits(const std::vector<int64_t>& loads, std::size_t parts, int64_t capacity) {
  std::size_t used = 1;
  int64_t current = 0;
  for (int64_t load : loads) {
    if (load > capacity) return false;
    if (current + load > capacity) {
      ++used;
      current = 0;
    }
    current += load;
  }
  return used <= parts;
}

}  // namespace

std::vector<DevicePlacement> place_layers(const ModelWeightBytes& bytes, const std::vector<at::Device>& devices) {
  const std::size_t parts = std::max<std::size_t>(1, std::min(devices.size(), bytes.layers.size()));
  // Fold the embedding into the first layer's load and the head into the last one's.
  std::vector<int64_t> loads = bytes.layers;
  loads.front() += bytes.embedding;
  loads.back() += bytes.head;
  // Binary search for the smallest feasible capacity (linear partition).
  int64_t low = *std::max_element(loads.begin(), loads.end());
  int64_t high = std::accumulate(loads.begin(), loads.end(), int64_t{0});
  while (low < high) {
    int64_t middle = low + (high - low) / 2;
    fits(loads, parts, middle) ? high = middle : low = middle + 1;
  }
  // Cut greedily from the end so earlier devices (which also hold activations of the embedding)
  // take no more than they must, keeping at least one layer for every remaining device.
  std::vector<DevicePlacement> placement(parts);
  int64_t end = static_cast<int64_t>(loads.size());
  for (std::size_t part = parts; part-- > 0;) {
    int64_t first = end - 1;
    int64_t total = loads[static_cast<std::size_t>(first)];
    while (first > static_cast<int64_t>(part) && total + loads[static_cast<std::size_t>(first - 1)] <= low) {
      --first;
      total += loads[static_cast<std::size_t>(first)];
    }
    if (part == 0) {
      for (int64_t l = 0; l < first; ++l) total += loads[static_cast<std::size_t>(l)];
      first = 0;
    }
    placement[part] = {devices[part], first, end, total};
    end = first;
  }
  return placement;
}

std::vector<at::Device> parse_device_list(const std::string& text) {
  std::vector<at::Device> devices;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) devices.push_back(parse_device(item));
  if (devices.empty()) throw InputError("--devices", "is empty (e.g. cuda:0,cuda:1)");
  for (std::size_t i = 0; i < devices.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (devices[i] == devices[j] && devices[i].is_cuda()) {
        throw InputError("--devices", "names " + devices[i].str() + " twice");
      }
    }
  }
  return devices;
}

}  // namespace indexcache
