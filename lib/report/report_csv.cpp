#include "report_csv.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "error.h"

namespace indexcache {
namespace {

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream stream(line);
  std::string cell;
  while (std::getline(stream, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

double parse_number(const std::string& text, const std::string& where) {
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE) {
    throw InputError(where, "\"" + text + "\" is not a number");
  }
  return value;
}

int64_t parse_layer(const std::string& text, const std::string& where) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw InputError(where, "\"" + text + "\" is not a layer number");
  }
  return std::stoll(text);
}

}  // namespace

std::string round_trip_number(double value) {
  char buffer[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

std::string matrix_csv(const std::vector<std::vector<double>>& matrix, int64_t first_layer) {
  std::string text = "layer";
  for (std::size_t column = 0; column < matrix.size(); ++column) {
    text += "," + std::to_string(first_layer + static_cast<int64_t>(column));
  }
  text += "\n";
  for (std::size_t row = 0; row < matrix.size(); ++row) {
    text += std::to_string(first_layer + static_cast<int64_t>(row));
    for (double value : matrix[row]) text += "," + round_trip_number(value);
    text += "\n";
  }
  return text;
}

CsvMatrix parse_matrix_csv(const std::string& text, const std::string& where) {
  std::stringstream stream(text);
  std::string line;
  if (!std::getline(stream, line)) throw InputError(where, "is empty");
  std::vector<std::string> header = split_cells(line);
  if (header.empty() || header[0] != "layer") throw InputError(where, "line 1 must start with \"layer\"");
  CsvMatrix matrix;
  for (std::size_t i = 1; i < header.size(); ++i) matrix.layers.push_back(parse_layer(header[i], where + ": line 1"));
  int line_number = 1;
  while (std::getline(stream, line)) {
    ++line_number;
    if (line.empty()) continue;
    std::string place = where + ": line " + std::to_string(line_number);
    std::vector<std::string> cells = split_cells(line);
    if (cells.size() != header.size()) {
      throw InputError(place, "has " + std::to_string(cells.size()) + " cells, the header " + std::to_string(header.size()));
    }
    std::size_t row = matrix.values.size();
    if (row >= matrix.layers.size() || parse_layer(cells[0], place) != matrix.layers[row]) {
      throw InputError(place, "row label " + cells[0] + " does not follow the header's layer order");
    }
    std::vector<double> values;
    for (std::size_t i = 1; i < cells.size(); ++i) values.push_back(parse_number(cells[i], place));
    matrix.values.push_back(values);
  }
  if (matrix.values.size() != matrix.layers.size()) {
    throw InputError(where, "has " + std::to_string(matrix.values.size()) + " rows for " +
                                std::to_string(matrix.layers.size()) + " layers");
  }
  return matrix;
}

}  // namespace indexcache
