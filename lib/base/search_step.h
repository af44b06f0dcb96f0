// One committed step of the greedy search. In the base wing because the search (which makes
// it), the journal, the plan and the report all carry it, and none of them needs libtorch for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layer_pattern.h"

namespace indexcache {

struct CandidateLoss {
  int64_t layer = 0;
  double loss = 0.0;
};

struct SearchStep {
  int64_t removed = 0;  // the layer turned into S
  double loss = 0.0;    // calibration loss after the step
  LayerPattern pattern;  // pattern after the step
  std::vector<CandidateLoss> candidates;  // every candidate tried at this step, by layer
};

}  // namespace indexcache
