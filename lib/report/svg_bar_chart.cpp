#include "svg_bar_chart.h"

#include <algorithm>
#include <cmath>

#include "svg_axis.h"

namespace indexcache {
namespace {

constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 46;

}  // namespace

SvgDocument render_bar_chart(const BarChartSpec& spec) {
  SvgDocument svg(spec.width, spec.height, spec.title);
  svg.rect(0, 0, spec.width, spec.height, "#ffffff");
  svg.text(kLeft, 20, spec.title, "start", " font-size=\"14\" font-weight=\"bold\" fill=\"#222\"");
  double low = 0.0, high = 0.0;
  for (const ChartBar& bar : spec.bars) {
    low = std::min(low, bar.value);
    high = std::max(high, bar.value);
  }
  // Room beyond the longest bars for their value labels; ticks only inside the range.
  const double pad = std::max((high - low) * 0.15, 1e-9);
  low = low < 0 ? low - pad : 0.0;
  high = high > 0 ? high + pad : 0.0;
  if (low == high) high = 1.0;
  std::vector<double> ticks = nice_ticks(low, high, 5);
  const double top = kTop, bottom = spec.height - kBottom, left = kLeft, right = spec.width - kRight;
  LinearScale y{low, high, bottom, top};
  double spacing = ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0;
  for (double tick : ticks) {
    svg.line(left, y(tick), right, y(tick), "#e4e4e4");
    svg.text(left - 6, y(tick) + 4, tick_label(tick, spacing), "end", " fill=\"#333\"");
  }
  svg.line(left, y(0.0), right, y(0.0), "#555555");
  const double slot = (right - left) / std::max<std::size_t>(1, spec.bars.size());
  const double bar_width = std::min(slot * 0.6, 90.0);
  for (std::size_t i = 0; i < spec.bars.size(); ++i) {
    const ChartBar& bar = spec.bars[i];
    double centre = left + (i + 0.5) * slot;
    double y0 = y(0.0), y1 = y(bar.value);
    svg.rect(centre - bar_width / 2, std::min(y0, y1), bar_width, std::max(std::abs(y1 - y0), 1.0), bar.colour,
             " class=\"bar\"", bar.title);
    svg.text(centre, bar.value >= 0 ? y1 - 5 : y1 + 14, bar.value_text, "middle", " fill=\"#222\"");
    svg.text(centre, bottom + 18, bar.label, "middle", " fill=\"#333\"");
  }
  svg.line(left, top, left, bottom, "#555");
  double middle = (top + bottom) / 2;
  svg.text(16, middle, spec.y_label, "middle",
           " fill=\"#333\" font-size=\"13\" transform=\"rotate(-90 16 " + svg_number(middle) + ")\"");
  return svg;
}

}  // namespace indexcache
