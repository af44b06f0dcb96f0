// The score kernel's argument block, filled by lightning_launch.cu from LightningProblem and
// LightningOutput (lightning.h). Plain ints where the interface has int64_t: the launcher
// rejects tokens >= 2^30 and tokens * heads >= 2^31, so every index the kernel forms fits.
#pragma once

#include <cstdint>

namespace indexcache::kernels::detail {

struct LightningParams {
  const float* weights;
  const float* query_scales;
  const float* key_scales;
  int tokens;
  float softmax_scale;
  int kind;  // ScoreOutput
  int row_begin;
  int row_end;
  int first_row;   // first query of the first block
  int num_blocks;  // query blocks
  int topk;
  int capacity;
  uint64_t* candidates;
  int32_t* counts;
  float* scores;
  int turns;  // math warpgroups take turns issuing MMAs (LightningProblem::warpgroup_turns)
};

}  // namespace indexcache::kernels::detail
