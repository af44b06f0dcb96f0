#include "yaml_writer.h"

#include <cmath>
#include <cstdio>

namespace indexcache {

std::string YamlWriter::quote(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escape[8];
          std::snprintf(escape, sizeof escape, "\\x%02x", c);
          out += escape;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string YamlWriter::format_number(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.10g", value);
  std::string text = buffer;
  // Keep floats recognisable as floats when they happen to be whole numbers.
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

std::string YamlWriter::indent() const {
  std::string spaces(static_cast<std::size_t>(depth_) * 2, ' ');
  if (pending_item_) spaces.replace(spaces.size() - 2, 2, "- ");
  return spaces;
}

void YamlWriter::line(const std::string& key, const std::string& value) {
  text_ += indent() + key + ":" + (value.empty() ? "" : " " + value) + "\n";
  pending_item_ = false;
}

void YamlWriter::string(const std::string& key, const std::string& value) { line(key, quote(value)); }
void YamlWriter::integer(const std::string& key, int64_t value) { line(key, std::to_string(value)); }
void YamlWriter::number(const std::string& key, double value) { line(key, format_number(value)); }
void YamlWriter::boolean(const std::string& key, bool value) { line(key, value ? "true" : "false"); }
void YamlWriter::null(const std::string& key) { line(key, "null"); }
void YamlWriter::raw(const std::string& key, const std::string& flow_value) { line(key, flow_value); }

void YamlWriter::integers(const std::string& key, const std::vector<int64_t>& values) {
  std::string flow = "[";
  for (std::size_t i = 0; i < values.size(); ++i) flow += (i ? ", " : "") + std::to_string(values[i]);
  line(key, flow + "]");
}

void YamlWriter::strings(const std::string& key, const std::vector<std::string>& values) {
  std::string flow = "[";
  for (std::size_t i = 0; i < values.size(); ++i) flow += (i ? ", " : "") + quote(values[i]);
  line(key, flow + "]");
}

void YamlWriter::begin_map(const std::string& key) {
  line(key, "");
  ++depth_;
  in_list_.push_back(false);
}

void YamlWriter::begin_list(const std::string& key) {
  line(key, "");
  // Items are mappings whose keys sit two levels in; the first key's indent carries the "- ".
  depth_ += 2;
  in_list_.push_back(true);
}

void YamlWriter::item() { pending_item_ = true; }

void YamlWriter::flow_item(const std::string& flow_value) {
  std::string spaces(static_cast<std::size_t>(depth_) * 2 - 2, ' ');
  text_ += spaces + "- " + flow_value + "\n";
  pending_item_ = false;
}

void YamlWriter::end() {
  depth_ -= in_list_.back() ? 2 : 1;
  in_list_.pop_back();
  pending_item_ = false;
}

void YamlWriter::comment(const std::string& text) { text_ += std::string(static_cast<std::size_t>(depth_) * 2, ' ') + "# " + text + "\n"; }

}  // namespace indexcache
