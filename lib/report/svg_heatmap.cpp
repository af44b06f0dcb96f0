#include "svg_heatmap.h"

#include <algorithm>
#include <cstdio>

#include "svg_axis.h"
#include "svg_colour.h"

namespace indexcache {
namespace {

constexpr double kLeft = 58, kTop = 38, kBottom = 50, kLegendGap = 26, kLegendBar = 16, kLegendRoom = 96;

std::string two_decimals(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", value);
  return buffer;
}

std::string four_decimals(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4f", value);
  return buffer;
}

void draw_cells(SvgDocument& svg, const HeatmapSpec& spec, double cell) {
  const int count = static_cast<int>(spec.values.size());
  const bool labelled = cell >= 30;  // room to print the value inside the cell
  for (int row = 0; row < count; ++row) {
    for (int column = 0; column < count; ++column) {
      double value = spec.values[row][column];
      long long a = spec.first_layer + row, b = spec.first_layer + column;
      double x = kLeft + column * cell, y = kTop + row * cell;
      std::string title = "layer " + std::to_string(a) + " vs layer " + std::to_string(b) + ": " + four_decimals(value);
      svg.rect(x, y, cell, cell, viridis_colour(value),
               " class=\"cell\" data-row=\"" + std::to_string(a) + "\" data-col=\"" + std::to_string(b) + "\"", title);
      if (labelled) {
        svg.text(x + cell / 2, y + cell / 2 + 4, two_decimals(value), "middle",
                 attribute("fill", text_colour_on_viridis(value)) + " font-size=\"11\" pointer-events=\"none\"");
      }
    }
  }
}

void draw_axes(SvgDocument& svg, const HeatmapSpec& spec, double cell) {
  const int count = static_cast<int>(spec.values.size());
  const double size = count * cell;
  const int step = label_step(count, cell);
  for (int i = 0; i < count; i += step) {
    std::string label = std::to_string(spec.first_layer + i);
    double centre = i * cell + cell / 2;
    svg.text(kLeft - 6, kTop + centre + 4, label, "end", " fill=\"#333\"");
    svg.text(kLeft + centre, kTop + size + 16, label, "middle", " fill=\"#333\"");
  }
  svg.text(kLeft + size / 2, kTop + size + 38, "layer", "middle", " fill=\"#333\" font-size=\"13\"");
  svg.text(16, kTop + size / 2, "layer", "middle",
           " fill=\"#333\" font-size=\"13\" transform=\"rotate(-90 16 " + svg_number(kTop + size / 2) + ")\"");
  svg.rect(kLeft, kTop, size, size, "none", " stroke=\"#555\" stroke-width=\"1\"");
}

// A vertical bar of 64 colour steps with ticks at 0, 0.2, ..., 1 (plain rects, so inlining
// several heatmaps into one HTML page needs no unique gradient ids).
void draw_legend(SvgDocument& svg, const HeatmapSpec& spec, double size) {
  const double x = kLeft + size + kLegendGap;
  const double height = std::max(size, 120.0);
  const int steps = 64;
  for (int i = 0; i < steps; ++i) {
    double value = 1.0 - (i + 0.5) / steps;
    svg.rect(x, kTop + i * height / steps, kLegendBar, height / steps + 0.5, viridis_colour(value), " class=\"legend\"");
  }
  svg.rect(x, kTop, kLegendBar, height, "none", " stroke=\"#555\" stroke-width=\"1\"");
  for (int tick = 0; tick <= 5; ++tick) {
    double value = tick / 5.0;
    double y = kTop + (1.0 - value) * height;
    svg.line(x + kLegendBar, y, x + kLegendBar + 4, y, "#555");
    svg.text(x + kLegendBar + 7, y + 4, tick_label(value, 0.2), "start", " fill=\"#333\"");
  }
  double caption_x = x + kLegendBar + 48;
  svg.text(caption_x, kTop + height / 2, spec.legend_label, "middle",
           " fill=\"#333\" transform=\"rotate(-90 " + svg_number(caption_x) + " " + svg_number(kTop + height / 2) + ")\"");
}

}  // namespace

SvgDocument render_heatmap(const HeatmapSpec& spec) {
  const int count = std::max<int>(1, static_cast<int>(spec.values.size()));
  const double cell = std::clamp(540.0 / count, 6.0, 48.0);
  const double size = count * cell;
  const double width = kLeft + size + kLegendGap + kLegendBar + kLegendRoom;
  const double height = kTop + std::max(size, 120.0) + kBottom;
  SvgDocument svg(width, height, spec.title);
  svg.rect(0, 0, width, height, "#ffffff");
  svg.text(kLeft, 22, spec.title, "start", " font-size=\"14\" font-weight=\"bold\" fill=\"#222\"");
  draw_cells(svg, spec, cell);
  draw_axes(svg, spec, cell);
  draw_legend(svg, spec, size);
  return svg;
}

}  // namespace indexcache
