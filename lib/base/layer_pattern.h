// F/S layer patterns (one character per decoder layer): F keeps its indexer, S reuses the top-k
// of the nearest F layer before it. Layer 0 is always F.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace indexcache {

class LayerPattern {
 public:
  // No layers: a placeholder until a real pattern is assigned (structs that carry a pattern are
  // default-constructible).
  LayerPattern() = default;
  // Checks length == layers, only 'F'/'S', first layer F. `where` names the source in errors
  // (e.g. "--eval" or a plan file).
  static LayerPattern parse(const std::string& text, int64_t layers, const std::string& where);
  static LayerPattern all_full(int64_t layers);
  // The engines' uniform schedule `index_topk_freq: N` with `index_skip_topk_offset: O` (vLLM,
  // SGLang and transformers' glm_moe_dsa all use this rule; O defaults to 2 there): layer i is F
  // iff max(i - O + 1, 0) % N == 0. With O = 2 that is layers 0, 1, then every N-th (1 + N, ...),
  // not 0, N, 2N: the off-by-one docs/SERVING.md describes. The result may start with S (e.g.
  // O = 0, N = 2), which no engine accepts: callers that need a valid pattern check layer 0.
  // N must be >= 1.
  static LayerPattern from_frequency(int64_t layers, int64_t frequency, int64_t offset = 2);
  // `kept` F layers spread evenly, starting at layer 0: layer round(i * layers / kept).
  static LayerPattern evenly_spaced(int64_t layers, int64_t kept);
  // The same over the F layers of `eligible` only (a model whose fixed-S layers have no
  // indexer): of its n F layers, the round(i * n / kept)-th, i = 0 .. kept-1. With `eligible`
  // all F this is evenly_spaced(layers, kept). 1 <= kept <= eligible.kept().
  static LayerPattern evenly_spaced_over(const LayerPattern& eligible, int64_t kept);

  const std::string& text() const { return text_; }
  int64_t layers() const { return static_cast<int64_t>(text_.size()); }
  bool is_full(int64_t layer) const { return text_[static_cast<std::size_t>(layer)] == 'F'; }
  int64_t kept() const;
  std::vector<int64_t> full_layers() const;
  // The F layer whose selection `layer` uses: itself when F, else the nearest F before it.
  int64_t source_layer(int64_t layer) const;
  // The same pattern with `layer` turned into S.
  LayerPattern with_shared(int64_t layer) const;

  bool operator==(const LayerPattern& other) const { return text_ == other.text_; }
  bool operator!=(const LayerPattern& other) const { return text_ != other.text_; }

 private:
  explicit LayerPattern(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

}  // namespace indexcache
