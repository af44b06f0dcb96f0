// A small block-style YAML writer with a fixed, platform-independent text form: keys in the
// order written, strings as JSON-quoted scalars (valid YAML), numbers printed with %.10g.
// Used for layer plans, where byte-for-byte reproducibility matters more than flexibility.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace indexcache {

class YamlWriter {
 public:
  // Scalars at the current indentation under `key`.
  void string(const std::string& key, const std::string& value);
  void integer(const std::string& key, int64_t value);
  void number(const std::string& key, double value);
  void boolean(const std::string& key, bool value);
  void null(const std::string& key);
  // Flow lists on one line: [1, 2, 3] / ["a", "b"].
  void integers(const std::string& key, const std::vector<int64_t>& values);
  void strings(const std::string& key, const std::vector<std::string>& values);
  // A raw flow value (already valid YAML/JSON), e.g. a nested JSON array.
  void raw(const std::string& key, const std::string& flow_value);
  // Nested mapping under `key` until end().
  void begin_map(const std::string& key);
  // A list under `key`; each item() starts a mapping entry ("- ") until end().
  void begin_list(const std::string& key);
  void item();
  // A list item that is one flow value on one line: "- [a, b, c]".
  void flow_item(const std::string& flow_value);
  void end();
  // A comment line at the current indentation.
  void comment(const std::string& text);

  const std::string& text() const { return text_; }

  static std::string quote(const std::string& value);  // JSON-style double-quoted string
  static std::string format_number(double value);

 private:
  void line(const std::string& key, const std::string& value);
  std::string indent() const;
  std::string text_;
  int depth_ = 0;
  bool pending_item_ = false;  // the next line starts with "- "
  std::vector<bool> in_list_;  // per open block: is it a list
};

}  // namespace indexcache
