// Reads a golden fixture written by scripts/make_golden.py (transformers 5.17 reference):
// tests/fixtures/golden/<case>/{config.json, model*.safetensors, data.jsonl, expected.json}.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace indexcache::testing {

inline std::string golden_dir(const std::string& name) {
  return std::string(INDEXCACHE_FIXTURES_DIR) + "/golden/" + name;
}

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

// The input_ids sequences of data.jsonl, in file order.
inline std::vector<std::vector<int64_t>> golden_sequences(const std::string& name) {
  std::ifstream in(golden_dir(name) + "/data.jsonl");
  std::vector<std::vector<int64_t>> sequences;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    sequences.push_back(nlohmann::json::parse(line).at("input_ids").get<std::vector<int64_t>>());
  }
  return sequences;
}

inline const std::vector<std::string>& golden_cases() {
  static const std::vector<std::string> cases = {"dsv32_default", "dsv32_yarn", "glm_dsa", "dsv32_fp8",
                                                 "dsv32_sharded"};
  return cases;
}

inline double relative_error(double value, double reference) {
  return std::abs(value - reference) / std::max(1e-12, std::abs(reference));
}

}  // namespace indexcache::testing
