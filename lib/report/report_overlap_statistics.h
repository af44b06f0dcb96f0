// What the overlap report reads off an L x L overlap matrix: the overlap of each layer with the
// one before it, the earlier layer each layer overlaps most with, and blocks of layers that
// select nearly the same tokens (candidates for sharing one indexer).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace indexcache {

// The earlier layer `layer` overlaps most with (ties: the lowest layer); none for the first
// layer of the matrix.
struct EarlierNeighbour {
  int64_t layer = 0;
  std::optional<int64_t> earlier;
  double overlap = 0.0;
};

// A block: layers first..last (inclusive, at least two) whose pairwise overlaps are all at least
// the threshold. Blocks are found left to right: a block starts at the first layer not in an
// earlier block and grows while the next layer's overlap with EVERY layer already in the block
// is >= the threshold; a layer that cannot join starts the next block. So blocks are
// consecutive, never overlap each other, and a block of one layer is not reported.
struct OverlapBlock {
  int64_t first = 0;
  int64_t last = 0;
  double min_overlap = 0.0;  // the smallest pairwise overlap inside the block
};

struct OverlapStatistics {
  std::vector<double> adjacent;  // [n - 1]: layer first+i+1 against layer first+i
  std::vector<EarlierNeighbour> nearest;  // [n]
  std::vector<OverlapBlock> blocks;
};

// `matrix` is n x n for layers first_layer .. first_layer + n - 1.
OverlapStatistics overlap_statistics(const std::vector<std::vector<double>>& matrix, int64_t first_layer,
                                     double block_threshold);

}  // namespace indexcache
