// Colours of the report pictures: the viridis scale for overlap values (perceptually even,
// readable in grey scale and by most colour-blind readers) and a few fixed series colours.
#pragma once

#include <string>

namespace indexcache {

// "#rrggbb" on the viridis scale for `value` in [0, 1] (clamped): dark purple at 0, yellow at 1.
std::string viridis_colour(double value);

// Text colour that stays readable on viridis_colour(value).
std::string text_colour_on_viridis(double value);

// Series colours, in order of use (Okabe-Ito, colour-blind safe).
std::string series_colour(int index);

}  // namespace indexcache
