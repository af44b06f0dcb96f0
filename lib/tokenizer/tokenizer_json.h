// Typed, path-aware access to the JSON of tokenizer.json: every failure names the field
// ("pre_tokenizer.pretokenizers[1].type") so the loader can report it in one line.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace indexcache::tokenizer_detail {

// A problem with the content of tokenizer.json; the message starts with the field path.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, std::string path) : value_(&value), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  bool is_null() const { return value_->is_null(); }

  // A member that must be present (null allowed only where the caller checks is_null()).
  JsonNode at(const std::string& key) const;
  // A member that may be absent; absent and null both give nullopt.
  std::optional<JsonNode> find(const std::string& key) const;
  std::vector<JsonNode> elements() const;
  std::vector<std::pair<std::string, JsonNode>> members() const;

  std::string string() const;
  bool boolean() const;
  int64_t integer() const;
  double number() const;
  bool is_string() const { return value_->is_string(); }
  bool is_array() const { return value_->is_array(); }

  // Optional members with a default.
  bool boolean_or(const std::string& key, bool fallback) const;
  std::optional<std::string> string_or_null(const std::string& key) const;

  // The "type" member, required.
  std::string type() const { return at("type").string(); }

  [[noreturn]] void fail(const std::string& message) const;
  // `<path>.type "<type>" is not supported (supported: <list>)`
  [[noreturn]] void unsupported_type(const std::string& type, const std::string& supported) const;

 private:
  void require(bool condition, const char* expected) const;
  const nlohmann::json* value_;
  std::string path_;
};

}  // namespace indexcache::tokenizer_detail
