// Model families: how IndexCache's F/S pattern applies to one kind of DSA model
// (docs/ARCHITECTURE.md "Model families").
//
// A family says
//   - which decoder layers have a lightning indexer, and so take part in the pattern
//     (deepseek_v32, glm_moe_dsa: every layer; deepseek_v4: its CSA layers only);
//   - how the pattern text maps to layer ids: one character per *pattern position*, the
//     positions being the indexer layers in ascending order (V3.2 / GLM: one per decoder layer,
//     so position == layer id; V4: one per CSA layer, the form vLLM reads);
//   - how an S position reuses: the selection of the nearest F position before it (V4: the
//     nearest preceding F CSA layer; its top-k are compressed-entry indices, and every CSA layer
//     compresses alike, so they index the S layer's compressed entries directly);
//   - which positions are fixed: the first position is always F; a layer the config declares
//     shared, or one whose indexer tensors the checkpoint lacks (GLM-5.2), is always S; MTP /
//     next-n layers (ids >= num_hidden_layers) are outside the decoder and the pattern;
//   - how each engine names the model class.
// Everything above the model wing carries patterns in the family's form (LayerPattern, one
// character per position); the forward asks the family which decoder layers run their indexer.
//
// Adding a family: one file lib/model/family_<model_type>.cpp defining a FamilyDefinition, and
// its line in the list at the top of model_family.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "excluded_layer.h"
#include "layer_pattern.h"
#include "model_config.h"

namespace indexcache {

// What one family is: its names and which layers carry an indexer.
struct FamilyDefinition {
  const char* model_type;    // config.json model_type, e.g. "glm_moe_dsa"
  const char* display_name;  // e.g. "GLM-5"
  // The model class each engine serves it with ("" where the engine does not serve it).
  const char* transformers_class;
  const char* vllm_class;
  const char* sglang_class;
  // Whether transformers applies a pattern to this model at all (its deepseek_v32 does not).
  bool transformers_reads_pattern;
  // What one pattern position is called in messages ("layer", "CSA layer").
  const char* position_noun;
  // Whether the layer has a lightning indexer (so a pattern position) by its attention kind.
  bool (*has_indexer)(AttentionKind kind);
  // Whether the config's declared sharing (ModelConfig::declared_shared) applies to the family.
  bool honours_declared_sharing;
};

// The families indexcache knows, in the order the docs list them.
const std::vector<const FamilyDefinition*>& known_families();
// The family of config.json's model_type; InputError naming the config when none is known.
const FamilyDefinition& family_definition(const ModelConfig& config);

// What a decoder layer is to the search. (MTP / next-n layers, ids >= num_hidden_layers, are not
// decoder layers: they appear only in excluded_layers(), role "next-n".)
enum class LayerRole {
  Searchable,   // a position the search may turn from F to S
  FixedFull,    // the first position: always F (nothing before it to share from)
  FixedShared,  // always S: declared shared by the config, or no indexer tensors in the checkpoint
  NoIndexer,    // a decoder layer without an indexer (V4 sliding / HCA): not a position
};

class ModelFamily {
 public:
  // The family of `config`, with `has_indexer_tensors(layer)` saying whether the checkpoint holds
  // layer `layer`'s indexer (null: every indexer layer has its tensors). `mtp_layers` are the
  // layer ids >= num_hidden_layers found in the checkpoint (reported, never searched).
  // Throws InputError for an unknown model_type, and for a layer that is neither declared shared
  // nor the first position yet lacks its indexer tensors in a family that does not allow it.
  static ModelFamily describe(const ModelConfig& config,
                              const std::function<bool(int64_t)>& has_indexer_tensors = {},
                              const std::vector<int64_t>& mtp_layers = {});
  // The same, asking the checkpoint (indexer tensor names of the released layout).
  static ModelFamily describe(const ModelConfig& config, const Checkpoint& checkpoint);

  const FamilyDefinition& definition() const { return *definition_; }
  const std::string& model_type() const { return model_type_; }
  int64_t decoder_layers() const { return static_cast<int64_t>(roles_.size()); }

  // Pattern positions: one character each, in ascending layer order.
  int64_t positions() const { return static_cast<int64_t>(position_layers_.size()); }
  int64_t layer_of(int64_t position) const { return position_layers_[static_cast<std::size_t>(position)]; }
  // The position of decoder layer `layer`, or -1 when the layer has no indexer.
  int64_t position_of(int64_t layer) const { return layer_positions_[static_cast<std::size_t>(layer)]; }
  LayerRole role(int64_t layer) const { return roles_[static_cast<std::size_t>(layer)]; }
  // Whether layer `layer` has indexer weights to load (a position that is not fixed S for lack
  // of them).
  bool has_indexer_weights(int64_t layer) const { return weights_[static_cast<std::size_t>(layer)]; }

  // The baseline: every position F except the fixed-S ones (for V3.2 and GLM-5 without declared
  // sharing: all F).
  LayerPattern full_pattern() const;
  // Positions the greedy search may turn into S (F in `pattern`, not fixed, not in `pinned`).
  std::vector<int64_t> candidates(const LayerPattern& pattern, const std::vector<int64_t>& pinned = {}) const;
  // Indexers the model has: full_pattern().kept().
  int64_t indexer_count() const;

  // A pattern in the family's form from text: LayerPattern::parse with positions() characters,
  // then no F on a fixed-S position (InputError naming `where`, the layer and why).
  LayerPattern parse_pattern(const std::string& text, const std::string& where) const;
  // The same check for an already parsed pattern.
  void check_pattern(const LayerPattern& pattern, const std::string& where) const;

  // For the forward, in decoder layer ids: whether `layer` runs its indexer under `pattern`, and
  // the decoder layer of the last F position at or before `layer` (-1: none), whose selection an
  // S layer at or after it reuses.
  bool runs_indexer(const LayerPattern& pattern, int64_t layer) const;
  int64_t last_full_layer(const LayerPattern& pattern, int64_t layer) const;

  // The positions a pipeline split pins F: for each stage's first decoder layer, the first
  // position at or after it and before the next stage starts (vLLM: a stage's first indexer
  // layer must be F). Stages without a position pin nothing. InputError (--pp-stages) when a
  // stage's first position is fixed S.
  std::vector<int64_t> stage_start_positions(const std::vector<int64_t>& stage_first_layers) const;

  // `kept` F positions spread evenly over the positions that have an indexer, starting at the
  // first: the (round(i * n / kept))-th of the n indexer positions, i = 0 .. kept-1.
  LayerPattern evenly_spaced(int64_t kept) const;

  // Layers the search leaves alone, ascending, with the reason: fixed-S positions, layers
  // without an indexer, MTP layers (the first position, fixed F, is not listed).
  const std::vector<ExcludedLayer>& excluded_layers() const { return excluded_; }

 private:
  const FamilyDefinition* definition_ = nullptr;
  std::string model_type_;
  std::vector<LayerRole> roles_;           // [decoder layers]
  std::vector<bool> weights_;              // [decoder layers]
  std::vector<int64_t> position_layers_;   // [positions]
  std::vector<int64_t> layer_positions_;   // [decoder layers], -1 for no indexer
  std::vector<ExcludedLayer> excluded_;
};

}  // namespace indexcache
