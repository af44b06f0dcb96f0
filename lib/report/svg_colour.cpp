#include "svg_colour.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace indexcache {
namespace {

// viridis sampled at 0, 1/8, ..., 1; values between are interpolated linearly in RGB, which is
// indistinguishable from the full 256-entry table at report sizes.
constexpr std::array<std::array<int, 3>, 9> kViridis = {{{68, 1, 84},
                                                         {71, 44, 122},
                                                         {59, 81, 139},
                                                         {44, 113, 142},
                                                         {33, 144, 141},
                                                         {39, 173, 129},
                                                         {92, 200, 99},
                                                         {170, 220, 50},
                                                         {253, 231, 37}}};

}  // namespace

std::string viridis_colour(double value) {
  double position = std::clamp(std::isfinite(value) ? value : 0.0, 0.0, 1.0) * (kViridis.size() - 1);
  std::size_t low = std::min<std::size_t>(static_cast<std::size_t>(position), kViridis.size() - 2);
  double weight = position - static_cast<double>(low);
  int rgb[3];
  for (int c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(kViridis[low][c] * (1.0 - weight) + kViridis[low + 1][c] * weight));
  }
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buffer;
}

std::string text_colour_on_viridis(double value) { return value > 0.55 ? "#1a1a1a" : "#ffffff"; }

std::string series_colour(int index) {
  static const char* colours[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#000000"};
  return colours[static_cast<std::size_t>(std::max(index, 0)) % (sizeof colours / sizeof colours[0])];
}

}  // namespace indexcache
