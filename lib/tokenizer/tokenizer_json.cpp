#include "tokenizer_json.h"

namespace indexcache::tokenizer_detail {
namespace {

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

}  // namespace

void JsonNode::fail(const std::string& message) const {
  throw ConfigError((path_.empty() ? std::string("top level") : path_) + " " + message);
}

void JsonNode::unsupported_type(const std::string& type, const std::string& supported) const {
  throw ConfigError(join(path_, "type") + " \"" + type + "\" is not supported (supported: " + supported + ")");
}

void JsonNode::require(bool condition, const char* expected) const {
  if (!condition) fail(std::string("must be ") + expected + " (found " + value_->type_name() + ")");
}

JsonNode JsonNode::at(const std::string& key) const {
  require(value_->is_object(), "an object");
  const auto found = value_->find(key);
  if (found == value_->end()) throw ConfigError(join(path_, key) + " is missing");
  return JsonNode(*found, join(path_, key));
}

std::optional<JsonNode> JsonNode::find(const std::string& key) const {
  require(value_->is_object(), "an object");
  const auto found = value_->find(key);
  if (found == value_->end() || found->is_null()) return std::nullopt;
  return JsonNode(*found, join(path_, key));
}

std::vector<JsonNode> JsonNode::elements() const {
  require(value_->is_array(), "an array");
  std::vector<JsonNode> nodes;
  nodes.reserve(value_->size());
  for (std::size_t index = 0; index < value_->size(); ++index) {
    nodes.emplace_back((*value_)[index], path_ + "[" + std::to_string(index) + "]");
  }
  return nodes;
}

std::vector<std::pair<std::string, JsonNode>> JsonNode::members() const {
  require(value_->is_object(), "an object");
  std::vector<std::pair<std::string, JsonNode>> nodes;
  nodes.reserve(value_->size());
  for (auto member = value_->begin(); member != value_->end(); ++member) {
    nodes.emplace_back(member.key(), JsonNode(member.value(), join(path_, member.key())));
  }
  return nodes;
}

std::string JsonNode::string() const {
  require(value_->is_string(), "a string");
  return value_->get<std::string>();
}

bool JsonNode::boolean() const {
  require(value_->is_boolean(), "true or false");
  return value_->get<bool>();
}

int64_t JsonNode::integer() const {
  require(value_->is_number_integer(), "an integer");
  if (value_->is_number_unsigned()) {
    const auto value = value_->get<uint64_t>();
    if (value > static_cast<uint64_t>(INT64_MAX)) fail("is out of range");
    return static_cast<int64_t>(value);
  }
  return value_->get<int64_t>();
}

double JsonNode::number() const {
  require(value_->is_number(), "a number");
  return value_->get<double>();
}

bool JsonNode::boolean_or(const std::string& key, bool fallback) const {
  const auto member = find(key);
  return member ? member->boolean() : fallback;
}

std::optional<std::string> JsonNode::string_or_null(const std::string& key) const {
  const auto member = find(key);
  if (!member) return std::nullopt;
  return member->string();
}

}  // namespace indexcache::tokenizer_detail
