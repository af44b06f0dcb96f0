// Test-only checks of the report files: a small XML well-formedness checker (enough for the SVG
// and the XHTML-compatible HTML the reports write) that also lists every element with its
// attributes and direct text, so tests can find cells and compare their numbers with the JSON.
#pragma once

#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace indexcache::testing {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;  // the element's own text (entities decoded), children's text excluded
  int depth = 0;
  bool has(const std::string& attribute, const std::string& value) const {
    auto found = attributes.find(attribute);
    return found != attributes.end() && found->second == value;
  }
  std::string get(const std::string& attribute) const {
    auto found = attributes.find(attribute);
    return found == attributes.end() ? "" : found->second;
  }
};

struct XmlDocument {
  std::string error;  // empty when well-formed
  std::vector<XmlElement> elements;  // in document order
  bool ok() const { return error.empty(); }
  std::vector<const XmlElement*> find(const std::string& name, const std::string& attribute = "",
                                      const std::string& value = "") const {
    std::vector<const XmlElement*> found;
    for (const XmlElement& element : elements) {
      if (element.name == name && (attribute.empty() || element.has(attribute, value))) found.push_back(&element);
    }
    return found;
  }
};

class XmlChecker {
 public:
  explicit XmlChecker(const std::string& text) : text_(text) {}

  XmlDocument run() {
    try {
      parse_document();
    } catch (const std::string& problem) {
      document_.error = problem + " (at byte " + std::to_string(position_) + ")";
    }
    return document_;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) { throw problem; }
  bool starts(const char* prefix) const { return text_.compare(position_, std::char_traits<char>::length(prefix), prefix) == 0; }
  bool at_end() const { return position_ >= text_.size(); }
  void skip_space() {
    while (!at_end() && std::isspace(static_cast<unsigned char>(text_[position_]))) ++position_;
  }
  void skip_past(const char* terminator, const std::string& what) {
    std::size_t end = text_.find(terminator, position_);
    if (end == std::string::npos) fail("unterminated " + what);
    position_ = end + std::char_traits<char>::length(terminator);
  }

  // Prolog, doctype and comments may come before and after the root.
  bool skip_misc() {
    skip_space();
    if (starts("<?")) return skip_past("?>", "processing instruction"), true;
    if (starts("<!--")) return skip_past("-->", "comment"), true;
    if (starts("<!DOCTYPE") || starts("<!doctype")) return skip_past(">", "doctype"), true;
    return false;
  }

  void parse_document() {
    while (skip_misc()) {
    }
    if (at_end() || text_[position_] != '<') fail("no root element");
    parse_element(0);
    while (skip_misc()) {
    }
    if (!at_end()) fail("content after the root element");
  }

  std::string parse_name() {
    std::size_t begin = position_;
    while (!at_end() && (std::isalnum(static_cast<unsigned char>(text_[position_])) || text_[position_] == '-' ||
                         text_[position_] == '_' || text_[position_] == ':' || text_[position_] == '.')) {
      ++position_;
    }
    if (begin == position_) fail("expected a name");
    return text_.substr(begin, position_ - begin);
  }

  std::string decode(const std::string& raw) {
    std::string decoded;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '<') fail("'<' in text or attribute value");
      if (raw[i] != '&') {
        decoded += raw[i];
        continue;
      }
      std::size_t end = raw.find(';', i);
      if (end == std::string::npos) fail("'&' without ';'");
      std::string entity = raw.substr(i + 1, end - i - 1);
      static const std::map<std::string, std::string> named = {
          {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
      if (named.count(entity)) {
        decoded += named.at(entity);
      } else if (entity.size() > 1 && entity[0] == '#') {
        bool hex = entity[1] == 'x';
        std::string digits = entity.substr(hex ? 2 : 1);
        if (digits.empty() || digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) {
          fail("bad character reference &" + entity + ";");
        }
        decoded += '?';  // the tests never compare such characters
      } else {
        fail("unknown entity &" + entity + ";");
      }
      i = end;
    }
    return decoded;
  }

  void parse_attributes(XmlElement& element) {
    while (true) {
      skip_space();
      if (at_end()) fail("unterminated tag <" + element.name);
      if (text_[position_] == '>' || starts("/>")) return;
      std::string name = parse_name();
      skip_space();
      if (at_end() || text_[position_] != '=') fail("attribute " + name + " without a value");
      ++position_;
      skip_space();
      if (at_end() || (text_[position_] != '"' && text_[position_] != '\'')) fail("unquoted attribute " + name);
      char quote = text_[position_++];
      std::size_t end = text_.find(quote, position_);
      if (end == std::string::npos) fail("unterminated attribute " + name);
      if (element.attributes.count(name)) fail("duplicate attribute " + name + " on <" + element.name + ">");
      element.attributes[name] = decode(text_.substr(position_, end - position_));
      position_ = end + 1;
    }
  }

  void parse_element(int depth) {
    ++position_;  // '<'
    XmlElement element;
    element.name = parse_name();
    element.depth = depth;
    parse_attributes(element);
    const std::size_t index = document_.elements.size();
    document_.elements.push_back(element);
    if (starts("/>")) {
      position_ += 2;
      return;
    }
    ++position_;  // '>'
    while (true) {
      std::size_t next = text_.find('<', position_);
      if (next == std::string::npos) fail("unclosed <" + element.name + ">");
      document_.elements[index].text += decode(text_.substr(position_, next - position_));
      position_ = next;
      if (starts("<!--")) {
        skip_past("-->", "comment");
      } else if (starts("</")) {
        position_ += 2;
        std::string name = parse_name();
        if (name != element.name) fail("</" + name + "> closes <" + element.name + ">");
        skip_space();
        if (at_end() || text_[position_] != '>') fail("bad closing tag </" + name);
        ++position_;
        return;
      } else {
        parse_element(depth + 1);
      }
    }
  }

  const std::string& text_;
  std::size_t position_ = 0;
  XmlDocument document_;
};

inline XmlDocument check_xml(const std::string& text) { return XmlChecker(text).run(); }

// The number at the start of a table cell ("0.8123", "+0.125%", "1.23 TFLOP" -> 1.23).
inline double leading_number(const std::string& text) { return std::stod(text); }

}  // namespace indexcache::testing
