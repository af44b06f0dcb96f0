// Line and scatter charts for the reports: adjacent-layer overlap along the depth of the model,
// and the greedy search's loss against the number of indexers kept. Every point shows its value
// on hover (SVG <title>).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "svg_document.h"

namespace indexcache {

struct ChartPoint {
  double x = 0.0;
  double y = 0.0;
  std::string title;  // hover text
};

struct ChartSeries {
  std::string name;
  std::string colour;
  std::vector<ChartPoint> points;
  bool draw_line = true;
  std::string marker = "circle";  // circle, square or diamond
  double marker_radius = 3.5;
  double opacity = 1.0;
  bool in_legend = true;
};

// A dashed horizontal line, e.g. the all-F baseline or the block threshold.
struct ChartReferenceLine {
  double y = 0.0;
  std::string label;
  std::string colour = "#888888";
};

struct LineChartSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<ChartSeries> series;
  std::vector<ChartReferenceLine> references;
  std::optional<double> y_low, y_high;  // fixed y range; otherwise the data's, padded
  bool reverse_x = false;               // larger x on the left
  double width = 660;
  double height = 300;
};

// Points carry class="point" and data-x / data-y; x ticks sit on integers (layers, counts).
SvgDocument render_line_chart(const LineChartSpec& spec);

}  // namespace indexcache
