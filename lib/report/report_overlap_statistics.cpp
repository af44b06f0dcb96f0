#include "report_overlap_statistics.h"

#include <algorithm>

namespace indexcache {
namespace {

std::vector<EarlierNeighbour> nearest_earlier(const std::vector<std::vector<double>>& matrix, int64_t first_layer) {
  std::vector<EarlierNeighbour> nearest;
  const std::size_t count = matrix.size();
  for (std::size_t row = 0; row < count; ++row) {
    EarlierNeighbour neighbour;
    neighbour.layer = first_layer + static_cast<int64_t>(row);
    for (std::size_t column = 0; column < row; ++column) {
      // Strictly greater keeps the lowest layer on ties.
      if (!neighbour.earlier || matrix[row][column] > neighbour.overlap) {
        neighbour.earlier = first_layer + static_cast<int64_t>(column);
        neighbour.overlap = matrix[row][column];
      }
    }
    nearest.push_back(neighbour);
  }
  return nearest;
}

// The smallest overlap of `candidate` with rows begin..end-1, and whether all reach `threshold`.
bool joins_block(const std::vector<std::vector<double>>& matrix, std::size_t begin, std::size_t candidate,
                 double threshold, double& smallest) {
  for (std::size_t member = begin; member < candidate; ++member) {
    double value = std::min(matrix[candidate][member], matrix[member][candidate]);
    if (value < threshold) return false;
    smallest = std::min(smallest, value);
  }
  return true;
}

std::vector<OverlapBlock> find_blocks(const std::vector<std::vector<double>>& matrix, int64_t first_layer,
                                      double threshold) {
  std::vector<OverlapBlock> blocks;
  const std::size_t count = matrix.size();
  std::size_t begin = 0;
  while (begin < count) {
    std::size_t end = begin + 1;
    double smallest = 1.0;
    while (end < count) {
      double with_candidate = smallest;
      if (!joins_block(matrix, begin, end, threshold, with_candidate)) break;
      smallest = with_candidate;
      ++end;
    }
    if (end - begin >= 2) {
      blocks.push_back({first_layer + static_cast<int64_t>(begin), first_layer + static_cast<int64_t>(end - 1), smallest});
    }
    begin = end;
  }
  return blocks;
}

}  // namespace

OverlapStatistics overlap_statistics(const std::vector<std::vector<double>>& matrix, int64_t first_layer,
                                     double block_threshold) {
  OverlapStatistics statistics;
  for (std::size_t row = 1; row < matrix.size(); ++row) statistics.adjacent.push_back(matrix[row][row - 1]);
  statistics.nearest = nearest_earlier(matrix, first_layer);
  statistics.blocks = find_blocks(matrix, first_layer, block_threshold);
  return statistics;
}

}  // namespace indexcache
