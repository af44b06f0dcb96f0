// A self-contained HTML page for the reports: inline CSS and inline SVG, no scripts, fonts or
// links to the network, so it opens the same offline, in a CI artifact viewer or in a browser
// screenshot. The markup is also well-formed XML (tests check it).
#pragma once

#include <string>
#include <vector>

namespace indexcache {

// `value` with exactly `decimals` decimals ("0.8123"); "n/a" when not finite.
std::string fixed_number(double value, int decimals);

// A <td> with escaped text; `attributes` (e.g. ` class="num"`) are written as given.
std::string table_cell(const std::string& text, const std::string& attributes = "");
// A numeric <td class="num">, right-aligned; `attributes` must not set class (use data-*).
std::string number_cell(double value, int decimals, const std::string& attributes = "");

class HtmlReport {
 public:
  explicit HtmlReport(const std::string& title);

  void heading(int level, const std::string& text);
  void paragraph(const std::string& text, const std::string& css_class = "");
  // Trusted markup built by the caller (already escaped).
  void markup(const std::string& html);
  // A row of pictures (SVG elements) that wraps on narrow screens.
  void figures(const std::vector<std::string>& svg_elements);
  // Everything added between begin_row() and end_row() (pictures, tables, headings) is laid out
  // side by side, wrapping on narrow screens; begin_column()/end_column() stack items inside a row.
  void begin_row();
  void end_row();
  void begin_column();
  void end_column();
  // Header cells are escaped; row cells are markup from table_cell / number_cell.
  void table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
             const std::string& attributes = "");
  // Label/value pairs (values escaped).
  void facts(const std::vector<std::pair<std::string, std::string>>& items);

  std::string document() const;

 private:
  std::string title_;
  std::string body_;
};

}  // namespace indexcache
