// Calibration data from text: tokenized with a tokenizer.json, a BOS before each document,
// documents concatenated per source and cut into seq_len tokens (the short tail dropped).
// Uses tests/fixtures/data/tiny-tokenizer.json (byte-level BPE, 268 ids, BOS <s> = 0; made by
// make_tiny_tokenizer.py beside it).
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "calibration_data.h"
#include "error.h"
#include "tokenizer.h"
#include "catch_shim.h"
#include "file_system.h"

using indexcache::bundled_data_sets;
using indexcache::CalibrationSet;
using indexcache::DataOptions;
using indexcache::InputError;
using indexcache::load_calibration_data;
using indexcache::Tokenizer;

namespace {


#ifdef INDEXCACHE_FIXTURES_DIR
const std::string kFixtures = INDEXCACHE_FIXTURES_DIR;
#else
const std::string kFixtures = std::string(INDEXCACHE_SOURCE_DIR) + "/tests/fixtures";
#endif

const Tokenizer& tiny_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(kFixtures + "/data/tiny-tokenizer.json");
  return tokenizer;
}

class TextDir {
 public:
  TextDir() : path_(indexcache::make_temporary_directory("indexcache-text-")) {}
  ~TextDir() { indexcache::remove_tree(path_); }
  std::string write(const std::string& name, const std::string& contents) const {
    const std::string file = indexcache::join_path(path_, name);
    indexcache::make_directories(indexcache::parent_directory(file));
    std::ofstream(file, std::ios::binary) << contents;
    return file;
  }

 private:
  std::string path_;
};

DataOptions text_options(std::vector<std::string> specs, int64_t seq_len) {
  DataOptions options;
  options.specs = std::move(specs);
  options.seq_len = seq_len;
  options.tokenizer = &tiny_tokenizer();
  options.vocab_size = tiny_tokenizer().vocab_size();
  return options;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  FAIL("expected an InputError");
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// BOS + ids of each document, concatenated: what packing cuts into sequences.
std::vector<int64_t> token_stream(const std::vector<std::string>& documents) {
  std::vector<int64_t> stream;
  for (const std::string& document : documents) {
    stream.push_back(0);
    for (const int32_t id : tiny_tokenizer().encode(document, false)) stream.push_back(id);
  }
  return stream;
}

std::vector<std::vector<int64_t>> cut(const std::vector<int64_t>& stream, int64_t seq_len) {
  std::vector<std::vector<int64_t>> sequences;
  for (std::size_t start = 0; start + static_cast<std::size_t>(seq_len) <= stream.size();
       start += static_cast<std::size_t>(seq_len)) {
    sequences.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(start),
                           stream.begin() + static_cast<std::ptrdiff_t>(start) + seq_len);
  }
  return sequences;
}

}  // namespace

TEST_CASE("the fixture tokenizer encodes as its merges say", "[data][text]") {
  const Tokenizer& tokenizer = tiny_tokenizer();
  CHECK(tokenizer.bos_token_id() == std::optional<int32_t>(0));
  // "the" -> t + he; " cat" -> Ġc + at -> Ġcat; " sat" -> Ġ s at.
  CHECK(tokenizer.encode("the cat sat", false) ==
        std::vector<int32_t>{118, 259, 267, 34, 117, 266});
}

TEST_CASE("text documents get a BOS each, are concatenated and cut into seq_len", "[data][text]") {
  TextDir dir;
  const std::vector<std::string> documents = {"the cat sat on the mat.", "",
                                              "In the beginning there was text.\n", "  \n",
                                              "Ünïcödé and 数字 12345"};
  std::string lines;
  for (const std::string& document : documents) {
    lines += nlohmann::json({{"text", document}}).dump() + "\n";
  }
  const std::string path = dir.write("prose.jsonl", lines);
  const CalibrationSet set = load_calibration_data(text_options({path}, 8));
  // Blank documents are skipped: no BOS, not counted.
  const std::vector<int64_t> stream = token_stream({documents[0], documents[2], documents[4]});
  const auto expected = cut(stream, 8);
  REQUIRE(expected.size() >= 3);
  CHECK(set.sequences == expected);  // the tail of stream.size() % 8 tokens is dropped
  CHECK(set.seq_len == 8);
  REQUIRE(set.sources.size() == 1);
  CHECK(set.sources[0].documents == 3);
  CHECK(set.sources[0].sequences == static_cast<int64_t>(expected.size()));
  CHECK(set.sources[0].tokens == static_cast<int64_t>(expected.size()) * 8);
  CHECK(set.sources[0].domain == "prose");
}

TEST_CASE("a .txt file is one document", "[data][text]") {
  TextDir dir;
  const std::string text = "the cat sat.\n\nthe cat sat again, and then the cat sat once more.\n";
  const std::string path = dir.write("story.txt", text);
  const CalibrationSet set = load_calibration_data(text_options({path}, 5));
  CHECK(set.sequences == cut(token_stream({text}), 5));
  CHECK(set.sources[0].documents == 1);
}

TEST_CASE("text that gives no sequence or no document is an error", "[data][text]") {
  TextDir dir;
  const std::string short_text = dir.write("short.txt", "the cat");
  CHECK(contains(
      error_of([&] { load_calibration_data(text_options({short_text}, 64)); }),
      short_text + ": the text gives 4 tokens, not enough for one sequence of seq_len 64"));
  const std::string blank = dir.write("blank.jsonl", "{\"text\": \"\"}\n{\"text\": \" \\n\"}\n");
  CHECK(error_of([&] { load_calibration_data(text_options({blank}, 4)); }) ==
        blank + ": no text: every document is empty");
  const std::string spaces = dir.write("spaces.txt", " \n\n ");
  CHECK(contains(error_of([&] { load_calibration_data(text_options({spaces}, 4)); }),
                 "no text: the file holds only white space"));
  const std::string not_string = dir.write("number.jsonl", "{\"text\": 42}\n");
  CHECK(contains(error_of([&] { load_calibration_data(text_options({not_string}, 4)); }),
                 "line 1: \"text\" must be a string"));
}

TEST_CASE("invalid UTF-8 in text is rejected with its line, not replaced", "[data][text]") {
  TextDir dir;
  const std::string path = dir.write("latin1.txt", "first line\nsecond caf\xe9 line\n");
  CHECK(error_of([&] { load_calibration_data(text_options({path}, 4)); }) ==
        path + ": invalid UTF-8 at line 2 (byte 22 of the file; data files must be UTF-8)");
  const std::string surrogate = dir.write("surrogate.txt", "ok \xed\xa0\x80 no\n");
  CHECK(contains(error_of([&] { load_calibration_data(text_options({surrogate}, 4)); }),
                 "invalid UTF-8 at line 1"));
  const std::string overlong = dir.write("overlong.txt", "a\xc0\xaf");
  CHECK(contains(error_of([&] { load_calibration_data(text_options({overlong}, 4)); }),
                 "invalid UTF-8"));
  const std::string escaped =
      dir.write("escaped.jsonl", "{\"text\": \"lone \\ud800 surrogate\"}\n");
  CHECK(contains(error_of([&] { load_calibration_data(text_options({escaped}, 4)); }),
                 "line 1: not valid JSON"));
}

TEST_CASE("tokens outside the model vocabulary name the tokenizer", "[data][text]") {
  TextDir dir;
  DataOptions options = text_options({dir.write("a.txt", "the cat sat on the mat")}, 4);
  options.vocab_size = 200;  // the merged tokens (ids 258+) do not fit
  CHECK(contains(error_of([&] { load_calibration_data(options); }),
                 "tiny-tokenizer.json: token id 259 is outside the model's vocabulary [0, 200)"));
}

TEST_CASE("text and input_ids sources mix; the default seq_len applies", "[data][text]") {
  TextDir dir;
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the cat sat on the mat " + std::to_string(i) + ". ";
  const std::string prose = dir.write("prose.txt", text);
  const std::string ids =
      dir.write("ids.jsonl", "{\"input_ids\": [5, 6, 7]}\n{\"input_ids\": [8, 9]}\n");
  const std::string mix = dir.write("mix.yaml",
                                    "sets:\n  - {path: prose.txt, weight: 1}\n"
                                    "  - {path: ids.jsonl, weight: 1}\n");
  DataOptions options = text_options({mix}, 0);
  const CalibrationSet set = load_calibration_data(options);
  CHECK(set.seq_len == indexcache::kDefaultSeqLen);
  REQUIRE(set.sources.size() == 2);
  // Equal weights and only 2 id sequences: 5 samples at most, the odd one to the first set.
  CHECK(set.sources[0].sequences == 3);
  CHECK(set.sources[1].sequences == 2);
  CHECK(set.sequences[0].size() == static_cast<std::size_t>(indexcache::kDefaultSeqLen));
  CHECK(set.sequences[4] == std::vector<int64_t>{8, 9});
}

TEST_CASE("every bundled set tokenizes, and the default mix takes from each", "[data][text]") {
  for (const std::string split : {"calibration", "heldout"}) {
    for (const std::string& name : bundled_data_sets(split)) {
      DataOptions options = text_options({name}, 256);
      options.split = split;
      const CalibrationSet set = load_calibration_data(options);
      INFO(name << "/" << split);
      CHECK(set.sources[0].documents >= 20);
      CHECK(set.sequences.size() >= 100);
      CHECK(set.sources[0].sha256.size() == 64);
    }
  }
  const std::string mix_path = std::string(INDEXCACHE_SOURCE_DIR) + "/configs/mix-default.yaml";
  const YAML::Node mix = YAML::LoadFile(mix_path);
  const int64_t num_samples = mix["num_samples"].as<int64_t>();
  const int64_t seq_len = mix["seq_len"].as<int64_t>();
  REQUIRE(mix["sets"].size() == 4);
  REQUIRE(num_samples % 4 == 0);  // equal weights: each set gives a quarter
  const CalibrationSet set = load_calibration_data(text_options({mix_path}, 0));
  REQUIRE(set.sources.size() == 4);
  for (const auto& source : set.sources) CHECK(source.sequences == num_samples / 4);
  CHECK(set.seq_len == seq_len);
  for (const auto& sequence : set.sequences) CHECK(sequence.size() == static_cast<std::size_t>(seq_len));
}
