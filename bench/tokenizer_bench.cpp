// Single-thread tokenizer throughput over a golden set written by scripts/make_tokenizer_golden.py
// (the same documents its --bench mode times with the tokenizers library): one encode() call per
// document, add_special_tokens=true. Prints MB/s for the first pass (cold word cache) and the best
// of N passes, and checks the ids against the golden file.
//
//   tokenizer_bench [SET_DIR=tests/fixtures/tokenizer/deepseek_style] [REPEATS=5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "tokenizer.h"

namespace {

std::string decode_base64(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char character : text) {
    if (character == '=') break;
    const auto value = alphabet.find(character);
    if (value == std::string::npos) continue;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

struct Document {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Document> read_documents(const std::string& path) {
  std::ifstream lines(path);
  if (!lines) throw indexcache::InputError(path, "cannot open");
  std::vector<Document> documents;
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line);
    documents.push_back({decode_base64(record.at("text_b64").get<std::string>()),
                         record.at("ids").get<std::vector<int32_t>>()});
  }
  return documents;
}

double seconds_for_pass(const indexcache::Tokenizer& tokenizer, const std::vector<Document>& documents,
                        std::size_t& mismatches) {
  const auto start = std::chrono::steady_clock::now();
  std::size_t wrong = 0;
  for (const Document& document : documents) {
    if (tokenizer.encode(document.text, true) != document.ids) ++wrong;
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  mismatches = wrong;
  return elapsed.count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string directory = argc > 1 ? argv[1] : "tests/fixtures/tokenizer/deepseek_style";
  const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  try {
    const auto tokenizer = indexcache::Tokenizer::load(directory + "/tokenizer.json");
    const std::vector<Document> documents = read_documents(directory + "/golden.jsonl");
    std::size_t bytes = 0;
    for (const Document& document : documents) bytes += document.text.size();
    std::size_t mismatches = 0;
    const double cold = seconds_for_pass(tokenizer, documents, mismatches);
    double best = cold;
    for (int pass = 0; pass < repeats; ++pass) {
      std::size_t ignored = 0;
      best = std::min(best, seconds_for_pass(tokenizer, documents, ignored));
    }
    std::printf("indexcache tokenizer, single thread, one encode() per document (comparison with golden ids included)\n");
    std::printf("bench %s: %zu bytes, %zu documents, first pass %.2f MB/s, best of %d %.2f MB/s, %zu mismatching documents\n",
                directory.c_str(), bytes, documents.size(), bytes / cold / 1e6, repeats, bytes / best / 1e6, mismatches);
    return mismatches == 0 ? 0 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 2;
  }
}
