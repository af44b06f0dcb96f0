#include "svg_document.h"

#include <cmath>
#include <cstdio>

namespace indexcache {

std::string xml_escape(const std::string& text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': escaped += "&amp;"; break;
      case '<': escaped += "&lt;"; break;
      case '>': escaped += "&gt;"; break;
      case '"': escaped += "&quot;"; break;
      case '\'': escaped += "&#39;"; break;
      default: escaped += c;
    }
  }
  return escaped;
}

std::string svg_number(double value) {
  if (!std::isfinite(value)) return "0";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", value);
  std::string text = buffer;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text == "-0" ? "0" : text;
}

std::string attribute(const std::string& name, const std::string& value) {
  return " " + name + "=\"" + xml_escape(value) + "\"";
}

namespace {

// Hover text: browsers show an element's <title> child as a tooltip.
std::string close_with_title(const std::string& element, const std::string& title) {
  if (title.empty()) return "/>\n";
  return "><title>" + xml_escape(title) + "</title></" + element + ">\n";
}

}  // namespace

SvgDocument::SvgDocument(double width, double height, const std::string& label)
    : width_(width), height_(height), label_(label) {}

void SvgDocument::rect(double x, double y, double width, double height, const std::string& fill,
                       const std::string& attributes, const std::string& title) {
  body_ += "<rect x=\"" + svg_number(x) + "\" y=\"" + svg_number(y) + "\" width=\"" + svg_number(width) +
           "\" height=\"" + svg_number(height) + "\"" + attribute("fill", fill) + attributes +
           close_with_title("rect", title);
}

void SvgDocument::circle(double cx, double cy, double radius, const std::string& fill, const std::string& attributes,
                         const std::string& title) {
  body_ += "<circle cx=\"" + svg_number(cx) + "\" cy=\"" + svg_number(cy) + "\" r=\"" + svg_number(radius) + "\"" +
           attribute("fill", fill) + attributes + close_with_title("circle", title);
}

void SvgDocument::line(double x1, double y1, double x2, double y2, const std::string& stroke,
                       const std::string& attributes) {
  body_ += "<line x1=\"" + svg_number(x1) + "\" y1=\"" + svg_number(y1) + "\" x2=\"" + svg_number(x2) + "\" y2=\"" +
           svg_number(y2) + "\"" + attribute("stroke", stroke) + attributes + "/>\n";
}

void SvgDocument::polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke,
                           const std::string& attributes) {
  std::string coordinates;
  for (const auto& [x, y] : points) coordinates += (coordinates.empty() ? "" : " ") + svg_number(x) + "," + svg_number(y);
  body_ += "<polyline points=\"" + coordinates + "\" fill=\"none\"" + attribute("stroke", stroke) + attributes + "/>\n";
}

void SvgDocument::text(double x, double y, const std::string& content, const std::string& anchor,
                       const std::string& attributes) {
  body_ += "<text x=\"" + svg_number(x) + "\" y=\"" + svg_number(y) + "\"" + attribute("text-anchor", anchor) +
           attributes + ">" + xml_escape(content) + "</text>\n";
}

void SvgDocument::raw(const std::string& markup) { body_ += markup; }

std::string SvgDocument::element() const {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + svg_number(width_) + "\" height=\"" +
         svg_number(height_) + "\" viewBox=\"0 0 " + svg_number(width_) + " " + svg_number(height_) + "\"" +
         attribute("role", "img") + attribute("aria-label", label_) +
         " font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n<title>" +
         xml_escape(label_) + "</title>\n" + body_ + "</svg>\n";
}

std::string SvgDocument::file_text() const { return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + element(); }

}  // namespace indexcache
