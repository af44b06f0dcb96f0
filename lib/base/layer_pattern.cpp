#include "layer_pattern.h"

#include <algorithm>
#include <cmath>

#include "error.h"

namespace indexcache {

LayerPattern LayerPattern::parse(const std::string& text, int64_t layers, const std::string& where) {
  if (static_cast<int64_t>(text.size()) != layers) {
    throw InputError(where, "pattern \"" + text + "\" has " + std::to_string(text.size()) +
                                " characters but the model has " + std::to_string(layers) + " layers");
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != 'F' && text[i] != 'S') {
      throw InputError(where, "pattern \"" + text + "\" has '" + std::string(1, text[i]) + "' at layer " +
                                  std::to_string(i) + " (only F and S are allowed)");
    }
  }
  if (text.front() != 'F') {
    throw InputError(where, "pattern \"" + text + "\" starts with S, but layer 0 has no earlier layer to share from");
  }
  return LayerPattern(text);
}

LayerPattern LayerPattern::all_full(int64_t layers) { return LayerPattern(std::string(static_cast<std::size_t>(layers), 'F')); }

LayerPattern LayerPattern::from_frequency(int64_t layers, int64_t frequency, int64_t offset) {
  std::string text(static_cast<std::size_t>(layers), 'S');
  for (int64_t i = 0; i < layers; ++i) {
    if (std::max<int64_t>(i - offset + 1, 0) % frequency == 0) text[static_cast<std::size_t>(i)] = 'F';
  }
  return LayerPattern(text);
}

LayerPattern LayerPattern::evenly_spaced(int64_t layers, int64_t kept) {
  std::string text(static_cast<std::size_t>(layers), 'S');
  for (int64_t i = 0; i < kept; ++i) {
    // Exact integer form of floor(i * layers / kept + 1/2).
    int64_t layer = (2 * i * layers + kept) / (2 * kept);
    text[static_cast<std::size_t>(layer)] = 'F';
  }
  return LayerPattern(text);
}

LayerPattern LayerPattern::evenly_spaced_over(const LayerPattern& eligible, int64_t kept) {
  const std::vector<int64_t> layers = eligible.full_layers();
  const auto n = static_cast<int64_t>(layers.size());
  std::string text(eligible.text_.size(), 'S');
  for (int64_t i = 0; i < kept; ++i) {
    // Exact integer form of floor(i * n / kept + 1/2), as evenly_spaced.
    text[static_cast<std::size_t>(layers[static_cast<std::size_t>((2 * i * n + kept) / (2 * kept))])] = 'F';
  }
  return LayerPattern(text);
}

int64_t LayerPattern::kept() const {
  int64_t count = 0;
  for (char c : text_) count += c == 'F';
  return count;
}

std::vector<int64_t> LayerPattern::full_layers() const {
  std::vector<int64_t> layers;
  for (int64_t i = 0; i < this->layers(); ++i) {
    if (is_full(i)) layers.push_back(i);
  }
  return layers;
}

int64_t LayerPattern::source_layer(int64_t layer) const {
  while (layer > 0 && !is_full(layer)) --layer;
  return layer;
}

LayerPattern LayerPattern::with_shared(int64_t layer) const {
  std::string text = text_;
  text[static_cast<std::size_t>(layer)] = 'S';
  return LayerPattern(text);
}

}  // namespace indexcache
