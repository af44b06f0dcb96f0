// Overlap matrices as CSV: a header row of layer numbers, then one row per layer. Values are
// written in the shortest form that reads back to the same double, so a CSV read back equals
// the JSON it came from exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace indexcache {

// The shortest decimal text (up to 17 significant digits) that parses back to `value`.
std::string round_trip_number(double value);

// "layer,0,1,2\n0,1,0.75,0.5\n..." for layers first_layer .. first_layer + n - 1.
std::string matrix_csv(const std::vector<std::vector<double>>& matrix, int64_t first_layer);

struct CsvMatrix {
  std::vector<int64_t> layers;
  std::vector<std::vector<double>> values;
};

// Reads matrix_csv's format back. Throws InputError naming `where` on a malformed table
// (ragged rows, row labels that differ from the header, text that is not a number).
CsvMatrix parse_matrix_csv(const std::string& text, const std::string& where);

}  // namespace indexcache
