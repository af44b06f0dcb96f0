#include "svg_line_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "svg_axis.h"

namespace indexcache {
namespace {

constexpr double kLeft = 70, kRight = 20, kReferenceLabels = 92, kTop = 56, kBottom = 46;

struct Frame {
  LinearScale x, y;
  double left, right, top, bottom;
};

std::pair<double, double> data_range(const LineChartSpec& spec, bool horizontal) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const ChartSeries& series : spec.series) {
    for (const ChartPoint& point : series.points) {
      low = std::min(low, horizontal ? point.x : point.y);
      high = std::max(high, horizontal ? point.x : point.y);
    }
  }
  if (!horizontal) {
    for (const ChartReferenceLine& reference : spec.references) {
      low = std::min(low, reference.y);
      high = std::max(high, reference.y);
    }
  }
  if (!std::isfinite(low)) return {0.0, 1.0};
  return {low, high};
}

Frame make_frame(const LineChartSpec& spec, std::vector<double>& y_ticks) {
  // Reference lines are labelled in a margin right of the plot, clear of the data.
  const double right = spec.width - (spec.references.empty() ? kRight : kReferenceLabels);
  Frame frame{{}, {}, kLeft, right, kTop, spec.height - kBottom};
  auto [x_low, x_high] = data_range(spec, true);
  x_low -= 0.5;
  x_high += 0.5;
  frame.x = spec.reverse_x ? LinearScale{x_high, x_low, frame.left, frame.right}
                           : LinearScale{x_low, x_high, frame.left, frame.right};
  auto [y_low, y_high] = data_range(spec, false);
  if (spec.y_low) y_low = *spec.y_low;
  if (spec.y_high) y_high = *spec.y_high;
  if (!spec.y_low && !spec.y_high) {
    double pad = std::max((y_high - y_low) * 0.08, std::abs(y_high) * 1e-4 + 1e-9);
    y_low -= pad;
    y_high += pad;
  }
  y_ticks = nice_ticks(y_low, y_high, 5);
  if (!spec.y_low) y_low = std::min(y_low, y_ticks.front());
  if (!spec.y_high) y_high = std::max(y_high, y_ticks.back());
  y_ticks.erase(std::remove_if(y_ticks.begin(), y_ticks.end(),
                               [&](double t) { return t < y_low - 1e-12 || t > y_high + 1e-12; }),
                y_ticks.end());
  frame.y = LinearScale{y_low, y_high, frame.bottom, frame.top};
  return frame;
}

void draw_axes(SvgDocument& svg, const LineChartSpec& spec, const Frame& frame, const std::vector<double>& y_ticks) {
  double spacing = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1.0;
  for (double tick : y_ticks) {
    double y = frame.y(tick);
    svg.line(frame.left, y, frame.right, y, "#e4e4e4");
    svg.text(frame.left - 6, y + 4, tick_label(tick, spacing), "end", " fill=\"#333\"");
  }
  auto [x_low, x_high] = data_range(spec, true);
  int first = static_cast<int>(std::ceil(x_low)), last = static_cast<int>(std::floor(x_high));
  double pixels_per_unit = std::abs(frame.x(1.0) - frame.x(0.0));
  int step = label_step(last - first + 1, pixels_per_unit, 22.0);
  for (int x = first; x <= last; ++x) {
    if ((x - first) % step != 0) continue;
    svg.line(frame.x(x), frame.bottom, frame.x(x), frame.bottom + 4, "#555");
    svg.text(frame.x(x), frame.bottom + 16, std::to_string(x), "middle", " fill=\"#333\"");
  }
  svg.line(frame.left, frame.bottom, frame.right, frame.bottom, "#555");
  svg.line(frame.left, frame.top, frame.left, frame.bottom, "#555");
  svg.text((frame.left + frame.right) / 2, spec.height - 8, spec.x_label, "middle", " fill=\"#333\" font-size=\"13\"");
  double middle = (frame.top + frame.bottom) / 2;
  svg.text(16, middle, spec.y_label, "middle",
           " fill=\"#333\" font-size=\"13\" transform=\"rotate(-90 16 " + svg_number(middle) + ")\"");
}

void draw_marker(SvgDocument& svg, const ChartSeries& series, const ChartPoint& point, double x, double y,
                 bool legend = false) {
  std::string identity = legend ? std::string(" class=\"legend-marker\"")
                                : " class=\"point\" data-x=\"" + svg_number(point.x) + "\"" +
                                      attribute("data-y", std::to_string(point.y));
  std::string attributes = identity +
                           (series.opacity < 1 ? " fill-opacity=\"" + svg_number(series.opacity) + "\"" : "") +
                           " stroke=\"#ffffff\" stroke-width=\"1\"";
  double r = series.marker_radius;
  if (series.marker == "square") {
    svg.rect(x - r, y - r, 2 * r, 2 * r, series.colour, attributes, point.title);
  } else if (series.marker == "diamond") {
    svg.rect(x - r, y - r, 2 * r, 2 * r, series.colour,
             attributes + " transform=\"rotate(45 " + svg_number(x) + " " + svg_number(y) + ")\"", point.title);
  } else {
    svg.circle(x, y, r, series.colour, attributes, point.title);
  }
}

void draw_series(SvgDocument& svg, const ChartSeries& series, const Frame& frame) {
  if (series.draw_line && series.points.size() > 1) {
    std::vector<std::pair<double, double>> points;
    for (const ChartPoint& point : series.points) points.emplace_back(frame.x(point.x), frame.y(point.y));
    svg.polyline(points, series.colour, " stroke-width=\"2\"");
  }
  for (const ChartPoint& point : series.points) draw_marker(svg, series, point, frame.x(point.x), frame.y(point.y));
}

void draw_references(SvgDocument& svg, const LineChartSpec& spec, const Frame& frame) {
  for (const ChartReferenceLine& reference : spec.references) {
    double y = frame.y(reference.y);
    svg.line(frame.left, y, frame.right, y, reference.colour, " stroke-dasharray=\"6 4\" stroke-width=\"1.5\"");
    svg.text(frame.right + 4, y + 4, reference.label, "start", attribute("fill", reference.colour) + " font-size=\"11\"");
  }
}

// One row of legend entries under the title.
void draw_legend(SvgDocument& svg, const LineChartSpec& spec) {
  double x = kLeft;
  for (const ChartSeries& series : spec.series) {
    if (!series.in_legend) continue;
    ChartSeries sample = series;
    sample.opacity = std::max(series.opacity, 0.6);
    draw_marker(svg, sample, ChartPoint{}, x + 6, 38, true);
    if (series.draw_line) svg.line(x - 2, 38, x + 14, 38, series.colour, " stroke-width=\"2\"");
    svg.text(x + 20, 42, series.name, "start", " fill=\"#333\"");
    x += 34 + 6.8 * static_cast<double>(series.name.size());
  }
}

}  // namespace

SvgDocument render_line_chart(const LineChartSpec& spec) {
  SvgDocument svg(spec.width, spec.height, spec.title);
  svg.rect(0, 0, spec.width, spec.height, "#ffffff");
  svg.text(kLeft, 20, spec.title, "start", " font-size=\"14\" font-weight=\"bold\" fill=\"#222\"");
  std::vector<double> y_ticks;
  Frame frame = make_frame(spec, y_ticks);
  draw_axes(svg, spec, frame, y_ticks);
  draw_references(svg, spec, frame);
  for (const ChartSeries& series : spec.series) draw_series(svg, series, frame);
  draw_legend(svg, spec);
  return svg;
}

}  // namespace indexcache
