#include "report_html.h"

#include <cmath>
#include <cstdio>

#include "svg_document.h"

namespace indexcache {
namespace {

// No '<' or '&' in here: the page stays well-formed XML.
const char* kStyle = R"(
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; background: #f6f7f9;
       margin: 0; padding: 24px 32px 48px; font-size: 14px; line-height: 1.45; }
main { max-width: 1400px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #d9dde3; }
h3 { font-size: 15px; margin: 18px 0 8px; }
p.subtitle { color: #57606a; margin: 0 0 16px; }
p.note { background: #fff8e1; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 10px 0; }
p.small { color: #57606a; font-size: 12px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.row { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
.row > .figures, .row > table { margin-bottom: 12px; }
.column h3:first-child { margin-top: 0; }
.figures svg { background: #ffffff; border: 1px solid #d9dde3; border-radius: 6px; max-width: 100%; height: auto; }
table { border-collapse: collapse; background: #ffffff; border: 1px solid #d9dde3; font-variant-numeric: tabular-nums;
        margin: 6px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceef1; text-align: left; white-space: nowrap; }
th { background: #eef1f4; font-weight: 600; }
td.num { text-align: right; }
td.mono, span.mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; background: #ffffff;
           border: 1px solid #d9dde3; border-radius: 6px; padding: 10px 14px; margin: 6px 0 12px; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
footer { margin-top: 32px; color: #57606a; font-size: 12px; }
)";

}  // namespace

std::string fixed_number(double value, int decimals) {
  if (!std::isfinite(value)) return "n/a";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string table_cell(const std::string& text, const std::string& attributes) {
  return "<td" + attributes + ">" + xml_escape(text) + "</td>";
}

std::string number_cell(double value, int decimals, const std::string& attributes) {
  return table_cell(fixed_number(value, decimals), " class=\"num\"" + attributes);
}

HtmlReport::HtmlReport(const std::string& title) : title_(title) {}

void HtmlReport::heading(int level, const std::string& text) {
  std::string tag = "h" + std::to_string(level);
  body_ += "<" + tag + ">" + xml_escape(text) + "</" + tag + ">\n";
}

void HtmlReport::paragraph(const std::string& text, const std::string& css_class) {
  body_ += "<p" + (css_class.empty() ? std::string() : attribute("class", css_class)) + ">" + xml_escape(text) + "</p>\n";
}

void HtmlReport::markup(const std::string& html) { body_ += html; }

void HtmlReport::figures(const std::vector<std::string>& svg_elements) {
  body_ += "<div class=\"figures\">\n";
  for (const std::string& svg : svg_elements) body_ += svg;
  body_ += "</div>\n";
}

void HtmlReport::begin_row() { body_ += "<div class=\"row\">\n"; }
void HtmlReport::end_row() { body_ += "</div>\n"; }
void HtmlReport::begin_column() { body_ += "<div class=\"column\">\n"; }
void HtmlReport::end_column() { body_ += "</div>\n"; }

void HtmlReport::table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                       const std::string& attributes) {
  body_ += "<table" + attributes + ">\n<thead><tr>";
  for (const std::string& cell : header) body_ += "<th>" + xml_escape(cell) + "</th>";
  body_ += "</tr></thead>\n<tbody>\n";
  for (const auto& row : rows) {
    body_ += "<tr>";
    for (const std::string& cell : row) body_ += cell;
    body_ += "</tr>\n";
  }
  body_ += "</tbody>\n</table>\n";
}

void HtmlReport::facts(const std::vector<std::pair<std::string, std::string>>& items) {
  body_ += "<dl class=\"facts\">\n";
  for (const auto& [label, value] : items) body_ += "<dt>" + xml_escape(label) + "</dt><dd>" + xml_escape(value) + "</dd>\n";
  body_ += "</dl>\n";
}

std::string HtmlReport::document() const {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>" +
         xml_escape(title_) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<main>\n" + body_ +
         "<footer>indexcache " INDEXCACHE_VERSION " &#183; self-contained report: no scripts, no network</footer>\n"
         "</main>\n</body>\n</html>\n";
}

}  // namespace indexcache
