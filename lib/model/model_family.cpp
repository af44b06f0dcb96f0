#include "model_family.h"

#include <algorithm>
#include <cstdlib>

#include "error.h"

namespace indexcache {

// One line per family (each defined in its own family_<model_type>.cpp).
const FamilyDefinition& deepseek_v32_family();
const FamilyDefinition& glm_moe_dsa_family();
const FamilyDefinition& deepseek_v4_family();

const std::vector<const FamilyDefinition*>& known_families() {
  static const std::vector<const FamilyDefinition*> families = {&deepseek_v32_family(), &glm_moe_dsa_family(),
                                                                &deepseek_v4_family()};
  return families;
}

const FamilyDefinition& family_definition(const ModelConfig& config) {
  std::string names;
  for (const FamilyDefinition* family : known_families()) {
    if (config.model_type_name == family->model_type) return *family;
    names += (names.empty() ? "" : ", ") + std::string(family->model_type);
  }
  throw InputError(config.config_path, "model_type \"" + config.model_type_name + "\" is not a known model family (" +
                                           names + ")");
}

namespace {

const char* kIndexerTensors[] = {"wq_b.weight", "wk.weight", "k_norm.weight", "k_norm.bias", "weights_proj.weight"};

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// Layer ids >= `layers` that have tensors in the checkpoint (MTP / next-n layers).
std::vector<int64_t> layers_beyond(const Checkpoint& checkpoint, int64_t layers) {
  std::vector<int64_t> found;
  const std::string prefix = "model.layers.";
  for (const std::string& name : checkpoint.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::size_t end = name.find('.', prefix.size());
    const std::string number = name.substr(prefix.size(), end - prefix.size());
    if (number.empty() || number.size() > 9 || number.find_first_not_of("0123456789") != std::string::npos) continue;
    const int64_t layer = std::stoll(number);
    if (layer >= layers && std::find(found.begin(), found.end(), layer) == found.end()) found.push_back(layer);
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string shared_reason(const ModelConfig& config, bool declared) {
  if (declared) {
    return "fixed S: declared shared by config.json " + config.declared_sharing_field +
           " (reuses the nearest full layer's top-k; no indexer of its own)";
  }
  return "fixed S: the checkpoint holds no indexer tensors for this layer";
}

}  // namespace

ModelFamily ModelFamily::describe(const ModelConfig& config, const std::function<bool(int64_t)>& has_indexer_tensors,
                                  const std::vector<int64_t>& mtp_layers) {
  ModelFamily family;
  family.definition_ = &family_definition(config);
  family.model_type_ = config.model_type_name;
  const int64_t layers = config.num_hidden_layers;
  family.roles_.assign(static_cast<std::size_t>(layers), LayerRole::NoIndexer);
  family.weights_.assign(static_cast<std::size_t>(layers), false);
  family.layer_positions_.assign(static_cast<std::size_t>(layers), -1);
  for (int64_t layer = 0; layer < layers; ++layer) {
    const std::size_t i = static_cast<std::size_t>(layer);
    const AttentionKind kind = config.attention_kind(layer);
    if (!family.definition_->has_indexer(kind)) {
      family.excluded_.push_back({layer, kNoIndexerRole,
                                  std::string("no indexer: ") + attention_kind_name(kind) + " layer, outside the pattern"});
      continue;
    }
    family.layer_positions_[i] = family.positions();
    family.position_layers_.push_back(layer);
    const bool first = family.positions() == 1;
    const bool declared = family.definition_->honours_declared_sharing && config.declares_shared(layer);
    const bool tensors = !has_indexer_tensors || has_indexer_tensors(layer);
    family.weights_[i] = tensors;
    if (first) {
      // The first position always runs its indexer: nothing before it to share from.
      if (!tensors) {
        throw InputError(config.config_path, "layer " + std::to_string(layer) +
                                                 " is the model's first indexer layer, but the checkpoint holds no "
                                                 "indexer tensors for it (" + layer_prefix(layer) +
                                                 "self_attn.indexer.*)");
      }
      family.roles_[i] = LayerRole::FixedFull;
    } else if (declared || !tensors) {
      family.roles_[i] = LayerRole::FixedShared;
      family.excluded_.push_back({layer, kFixedSharedRole, shared_reason(config, declared)});
    } else {
      family.roles_[i] = LayerRole::Searchable;
    }
  }
  if (family.positions() == 0) {
    throw InputError(config.config_path, "has no layer with a lightning indexer (nothing for IndexCache to choose)");
  }
  std::vector<int64_t> next_n;
  for (int64_t k = 0; k < config.num_nextn_predict_layers; ++k) next_n.push_back(layers + k);
  for (int64_t layer : mtp_layers) {
    if (std::find(next_n.begin(), next_n.end(), layer) == next_n.end()) next_n.push_back(layer);
  }
  std::sort(next_n.begin(), next_n.end());
  for (int64_t layer : next_n) {
    family.excluded_.push_back({layer, kNextNRole,
                                "MTP (next-n) layer: not part of the decoder forward; engines always run its indexer"});
  }
  std::stable_sort(family.excluded_.begin(), family.excluded_.end(),
                   [](const ExcludedLayer& a, const ExcludedLayer& b) { return a.layer < b.layer; });
  return family;
}

ModelFamily ModelFamily::describe(const ModelConfig& config, const Checkpoint& checkpoint) {
  // Released DSA layout: model.layers.N.self_attn.indexer.*. Any one of the tensors present
  // counts as present, so a layer missing only some of them is reported by the tensor check.
  auto has_tensors = [&](int64_t layer) {
    if (config.attention_kind(layer) != AttentionKind::Dsa) return true;  // the V4 reader checks its own
    for (const char* tensor : kIndexerTensors) {
      if (checkpoint.has(layer_prefix(layer) + "self_attn.indexer." + tensor)) return true;
    }
    return false;
  };
  return describe(config, has_tensors, layers_beyond(checkpoint, config.num_hidden_layers));
}

LayerPattern ModelFamily::full_pattern() const {
  std::string text;
  for (int64_t layer : position_layers_) text += role(layer) == LayerRole::FixedShared ? 'S' : 'F';
  return LayerPattern::parse(text, positions(), "model family");
}

int64_t ModelFamily::indexer_count() const { return full_pattern().kept(); }

std::vector<int64_t> ModelFamily::candidates(const LayerPattern& pattern, const std::vector<int64_t>& pinned) const {
  std::vector<int64_t> result;
  for (int64_t position : pattern.full_layers()) {
    if (role(layer_of(position)) != LayerRole::Searchable) continue;
    if (std::find(pinned.begin(), pinned.end(), position) != pinned.end()) continue;
    result.push_back(position);
  }
  return result;
}

LayerPattern ModelFamily::parse_pattern(const std::string& text, const std::string& where) const {
  if (static_cast<int64_t>(text.size()) != positions() && definition_->position_noun != std::string("layer")) {
    // LayerPattern::parse would say "layers"; a V4 pattern counts CSA layers.
    throw InputError(where, "pattern \"" + text + "\" has " + std::to_string(text.size()) +
                                " characters but the model has " + std::to_string(positions()) + " " +
                                definition_->position_noun + "s (one character each)");
  }
  LayerPattern pattern = LayerPattern::parse(text, positions(), where);
  check_pattern(pattern, where);
  return pattern;
}

void ModelFamily::check_pattern(const LayerPattern& pattern, const std::string& where) const {
  if (pattern.layers() != positions()) {
    throw InputError(where, "pattern has " + std::to_string(pattern.layers()) + " characters but the model has " +
                                std::to_string(positions()) + " " + definition_->position_noun + "s");
  }
  for (int64_t position : pattern.full_layers()) {
    const int64_t layer = layer_of(position);
    if (role(layer) != LayerRole::FixedShared) continue;
    std::string why;
    for (const ExcludedLayer& excluded : excluded_) {
      if (excluded.layer == layer) why = excluded.reason;
    }
    throw InputError(where, "pattern \"" + pattern.text() + "\" asks F at layer " + std::to_string(layer) +
                                ", which has no indexer to run (" + why + ")");
  }
}

bool ModelFamily::runs_indexer(const LayerPattern& pattern, int64_t layer) const {
  const int64_t position = position_of(layer);
  return position >= 0 && pattern.is_full(position);
}

int64_t ModelFamily::last_full_layer(const LayerPattern& pattern, int64_t layer) const {
  for (int64_t at = std::min(layer, decoder_layers() - 1); at >= 0; --at) {
    if (runs_indexer(pattern, at)) return at;
  }
  return -1;
}

std::vector<int64_t> ModelFamily::stage_start_positions(const std::vector<int64_t>& stage_first_layers) const {
  std::vector<int64_t> pinned;
  for (std::size_t s = 0; s < stage_first_layers.size(); ++s) {
    const int64_t end = s + 1 < stage_first_layers.size() ? stage_first_layers[s + 1] : decoder_layers();
    for (int64_t layer = std::max<int64_t>(stage_first_layers[s], 0); layer < std::min(end, decoder_layers()); ++layer) {
      if (position_of(layer) < 0) continue;
      if (role(layer) == LayerRole::FixedShared) {
        // The engine would start the stage on a layer without a selection of its own to reuse.
        throw InputError("--pp-stages", "stage " + std::to_string(s) + "'s first indexer layer is " +
                                            std::to_string(layer) + ", which is fixed S (" +
                                            std::string(definition_->display_name) +
                                            " declares it shared or has no indexer for it); vLLM needs a stage's "
                                            "first indexer layer F: start the stage at a layer that keeps its indexer");
      }
      pinned.push_back(position_of(layer));
      break;
    }
  }
  return pinned;
}

LayerPattern ModelFamily::evenly_spaced(int64_t kept) const {
  const LayerPattern eligible = full_pattern();
  return LayerPattern::evenly_spaced_over(eligible, std::clamp<int64_t>(kept, 1, eligible.kept()));
}

}  // namespace indexcache
