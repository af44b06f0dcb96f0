// A layer the IndexCache search leaves alone, and why: what a model family reports
// (lib/model/model_family.h) and a layer plan records (model.excluded_layers).
#pragma once

#include <cstdint>
#include <string>

namespace indexcache {

// The `role` values.
inline constexpr const char* kFixedSharedRole = "fixed-shared";  // in the pattern, always S (declared shared, or no indexer tensors)
inline constexpr const char* kNoIndexerRole = "no-indexer";      // an attention without an indexer, outside the pattern
inline constexpr const char* kNextNRole = "next-n";              // an MTP layer (id >= num_hidden_layers); engines always run its indexer

struct ExcludedLayer {
  int64_t layer = 0;  // decoder layer id (MTP layers: >= num_hidden_layers)
  std::string role;   // one of the roles above
  std::string reason; // one line for plans and messages
  bool operator==(const ExcludedLayer& other) const {
    return layer == other.layer && role == other.role && reason == other.reason;
  }
};

}  // namespace indexcache
