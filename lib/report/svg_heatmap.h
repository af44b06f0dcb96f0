// The layer x layer heatmap of the overlap report: one cell per layer pair coloured on a fixed
// 0..1 viridis scale (so pictures of different domains and models compare directly), layer
// numbers on both axes, a colour legend with its scale, and each cell's value on hover.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "svg_document.h"

namespace indexcache {

struct HeatmapSpec {
  std::string title;
  std::vector<std::vector<double>> values;  // square, values in [0, 1]
  int64_t first_layer = 0;                  // the layer of row and column 0
  std::string legend_label = "overlap (fraction of top-k shared)";
};

// Cells carry class="cell" and data-row / data-col (layer numbers) for tools and tests.
SvgDocument render_heatmap(const HeatmapSpec& spec);

}  // namespace indexcache
