// Axis scales for the report charts: "nice" tick values (1, 2 or 5 times a power of ten) and a
// linear mapping from data to picture coordinates.
#pragma once

#include <string>
#include <vector>

namespace indexcache {

// About `target` evenly spaced round values covering [low, high] (low < high after widening a
// zero-width range).
std::vector<double> nice_ticks(double low, double high, int target = 5);

// A tick label with as many decimals as the tick spacing needs ("0.25", "3", "1200").
std::string tick_label(double value, double spacing);

// Every how many layers to label an axis of `count` layers drawn `cell` pixels apart, so that
// labels are at least `min_gap` pixels apart: 1, 2, 5, 10, 20, ...
int label_step(int count, double cell, double min_gap = 16.0);

struct LinearScale {
  double domain_low = 0.0, domain_high = 1.0;
  double range_low = 0.0, range_high = 1.0;
  double operator()(double value) const {
    double span = domain_high - domain_low;
    return range_low + (span == 0.0 ? 0.0 : (value - domain_low) / span) * (range_high - range_low);
  }
};

}  // namespace indexcache
