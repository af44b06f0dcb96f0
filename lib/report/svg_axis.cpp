#include "svg_axis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace indexcache {

std::vector<double> nice_ticks(double low, double high, int target) {
  if (!(high > low)) {
    double pad = std::max(std::abs(low) * 0.05, 1e-6);
    low -= pad;
    high += pad;
  }
  double raw = (high - low) / std::max(target, 1);
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double spacing = magnitude;
  for (double factor : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    spacing = factor * magnitude;
    if (spacing >= raw) break;
  }
  // Multiples of the spacing, computed (not accumulated) so 0.6 stays 0.6.
  std::vector<double> ticks;
  for (double index = std::ceil(low / spacing - 1e-9); index * spacing <= high + spacing * 1e-9; index += 1.0) {
    ticks.push_back(index == 0.0 ? 0.0 : index * spacing);
  }
  return ticks;
}

std::string tick_label(double value, double spacing) {
  int decimals = spacing > 0 ? std::clamp(static_cast<int>(std::ceil(-std::log10(spacing) - 1e-9)), 0, 6) : 2;
  // 2.5 x 10^k spacings need one more decimal than their power of ten.
  double scaled = spacing * std::pow(10.0, decimals);
  if (std::abs(scaled - std::round(scaled)) > 1e-6) ++decimals;
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string text = buffer;
  bool negative_zero = text[0] == '-' && text.find_first_not_of("0.", 1) == std::string::npos;
  return negative_zero ? text.substr(1) : text;
}

int label_step(int count, double cell, double min_gap) {
  for (int step : {1, 2, 5, 10, 20, 50, 100}) {
    if (step * cell >= min_gap || step >= count) return step;
  }
  return 100;
}

}  // namespace indexcache
