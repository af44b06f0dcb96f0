#include "svg_pattern_strip.h"

#include <algorithm>

#include "svg_axis.h"

namespace indexcache {
namespace {

constexpr double kLeft = 20, kTop = 34, kCellHeight = 34;
const char* kFullColour = "#d55e00";
const char* kSharedColour = "#dfe6ee";

std::string cell_title(const LayerPattern& pattern, int64_t layer) {
  if (pattern.is_full(layer)) return "layer " + std::to_string(layer) + ": F, keeps its indexer";
  return "layer " + std::to_string(layer) + ": S, reuses the top-k of layer " + std::to_string(pattern.source_layer(layer));
}

void draw_legend(SvgDocument& svg, double y) {
  svg.rect(kLeft, y - 10, 12, 12, kFullColour);
  svg.text(kLeft + 18, y, "F: keeps its lightning indexer", "start", " fill=\"#333\"");
  svg.rect(kLeft + 230, y - 10, 12, 12, kSharedColour, " stroke=\"#9aa5b1\"");
  svg.text(kLeft + 248, y, "S: reuses the top-k of the nearest F layer before it", "start", " fill=\"#333\"");
}

}  // namespace

SvgDocument render_pattern_strip(const LayerPattern& pattern, const std::string& title) {
  const int count = std::max<int>(1, static_cast<int>(pattern.layers()));
  const double cell = std::clamp(880.0 / count, 8.0, 40.0);
  const double width = std::max(kLeft * 2 + count * cell, 640.0);
  const double height = kTop + kCellHeight + 56;
  SvgDocument svg(width, height, title);
  svg.rect(0, 0, width, height, "#ffffff");
  svg.text(kLeft, 20, title, "start", " font-size=\"14\" font-weight=\"bold\" fill=\"#222\"");
  const bool lettered = cell >= 12;
  for (int64_t layer = 0; layer < pattern.layers(); ++layer) {
    const bool full = pattern.is_full(layer);
    const std::string kind = full ? "F" : "S";
    double x = kLeft + static_cast<double>(layer) * cell;
    svg.rect(x, kTop, cell, kCellHeight, full ? kFullColour : kSharedColour,
             " class=\"pattern-cell\" data-layer=\"" + std::to_string(layer) + "\" data-kind=\"" +
                 kind + "\" stroke=\"#ffffff\" stroke-width=\"1\"",
             cell_title(pattern, layer));
    if (lettered) {
      svg.text(x + cell / 2, kTop + kCellHeight / 2 + 4, kind, "middle",
               std::string(" font-weight=\"bold\" pointer-events=\"none\" fill=\"") + (full ? "#ffffff" : "#6b7785") + "\"");
    }
  }
  const int step = label_step(count, cell, 20.0);
  for (int layer = 0; layer < count; layer += step) {
    svg.text(kLeft + layer * cell + cell / 2, kTop + kCellHeight + 15, std::to_string(layer), "middle",
             " fill=\"#333\" font-size=\"11\"");
  }
  draw_legend(svg, kTop + kCellHeight + 42);
  return svg;
}

}  // namespace indexcache
