// A vertical bar chart with a zero line, for per-domain changes (e.g. the loss of the chosen
// pattern relative to all-F on each domain). Bars may be negative.
#pragma once

#include <string>
#include <vector>

#include "svg_document.h"

namespace indexcache {

struct ChartBar {
  std::string label;       // under the axis
  double value = 0.0;
  std::string value_text;  // printed at the bar's end
  std::string colour;
  std::string title;       // hover text
};

struct BarChartSpec {
  std::string title;
  std::string y_label;
  std::vector<ChartBar> bars;
  double width = 660;
  double height = 280;
};

// Bars carry class="bar".
SvgDocument render_bar_chart(const BarChartSpec& spec);

}  // namespace indexcache
