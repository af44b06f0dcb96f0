// One committed step of the greedy search. Kept apart from greedy_search.h so that readers of
// plans and journals (and their fuzz targets) need no libtorch headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace indexcache {

struct CandidateLoss {
  int64_t layer = 0;
  double loss = 0.0;
};

struct SearchStep {
  int64_t removed = 0;  // the layer turned into S
  double loss = 0.0;    // calibration loss after the step
  std::string pattern;  // pattern after the step
  std::vector<CandidateLoss> candidates;  // every candidate tried at this step, by layer
};

}  // namespace indexcache
