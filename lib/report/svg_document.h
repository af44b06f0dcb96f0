// A tiny SVG writer for the report pictures: well-formed XML by construction (every text and
// attribute value escaped), self-contained (no fonts, scripts or links), numbers printed
// compactly so a 78 x 78 heatmap stays small.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace indexcache {

// Escapes &, <, >, " and ' for XML text and attribute values.
std::string xml_escape(const std::string& text);

// A coordinate or length: at most two decimals, no trailing zeros ("12.5", "3").
std::string svg_number(double value);

class SvgDocument {
 public:
  // `label` becomes the picture's accessible name (aria-label) and its <title>.
  SvgDocument(double width, double height, const std::string& label);

  // Attributes are written as given: pass them through attribute() when they hold free text.
  void rect(double x, double y, double width, double height, const std::string& fill,
            const std::string& attributes = "", const std::string& title = "");
  void circle(double cx, double cy, double radius, const std::string& fill, const std::string& attributes = "",
              const std::string& title = "");
  void line(double x1, double y1, double x2, double y2, const std::string& stroke,
            const std::string& attributes = "");
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke,
                const std::string& attributes = "");
  // `anchor`: start, middle or end.
  void text(double x, double y, const std::string& content, const std::string& anchor = "start",
            const std::string& attributes = "");
  // Markup built by the caller (gradients, groups); must itself be well-formed.
  void raw(const std::string& markup);

  // The <svg> element (for inlining into HTML).
  std::string element() const;
  // A standalone .svg file: XML declaration plus the element.
  std::string file_text() const;

 private:
  double width_;
  double height_;
  std::string label_;
  std::string body_;
};

// ` name="value"` with the value escaped.
std::string attribute(const std::string& name, const std::string& value);

}  // namespace indexcache
