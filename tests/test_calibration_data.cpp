// Calibration data without a tokenizer: input_ids files (verbatim sequences, checks and their
// errors), deterministic sampling, YAML mixes and their weights, bundled set names, and that
// every bundled set is present and well formed. Text tokenization: test_calibration_text.cpp.
#include <cstdlib>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "calibration_data.h"
#include "error.h"
#include "sha256.h"
#include "catch_shim.h"
#include "file_system.h"

using indexcache::bundled_data_directory;
using indexcache::bundled_data_sets;
using indexcache::CalibrationSet;
using indexcache::DataOptions;
using indexcache::InputError;
using indexcache::load_calibration_data;

namespace {

// A fresh folder for one test's files, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() : path_(indexcache::make_temporary_directory("indexcache-data-")) {}
  ~ScratchDir() { indexcache::remove_tree(path_); }
  std::string write(const std::string& name, const std::string& contents) const {
    const std::string file = indexcache::join_path(path_, name);
    indexcache::make_directories(indexcache::parent_directory(file));
    std::ofstream(file, std::ios::binary) << contents;
    return file;
  }
  std::string path(const std::string& name) const { return indexcache::join_path(path_, name); }

 private:
  std::string path_;
};

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The message of the InputError that `action` throws ("" and a failed check when none).
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

DataOptions options_for(std::vector<std::string> specs, int64_t vocab_size = 1000) {
  DataOptions options;
  options.specs = std::move(specs);
  options.vocab_size = vocab_size;
  return options;
}

// `count` input_ids lines; line i is [i, i+1, ..., i+length-1] with length 2 + i % 5, so
// every sequence is recognisable by its first id.
std::string id_lines(int count, int first = 0) {
  std::string text;
  for (int i = first; i < first + count; ++i) {
    text += "{\"input_ids\": [";
    for (int k = 0; k < 2 + i % 5; ++k) text += (k ? ", " : "") + std::to_string(i + k);
    text += "]}\n";
  }
  return text;
}

std::vector<int64_t> first_ids(const CalibrationSet& set) {
  std::vector<int64_t> ids;
  for (const auto& sequence : set.sequences) ids.push_back(sequence.front());
  return ids;
}

std::map<int, int> counts_per_source(const CalibrationSet& set) {
  std::map<int, int> counts;
  for (const int source : set.sequence_source) ++counts[source];
  return counts;
}

}  // namespace

TEST_CASE("input_ids records are used verbatim, one sequence per line", "[data]") {
  ScratchDir dir;
  const std::string path = dir.write("ids.jsonl",
                                     "{\"input_ids\": [1, 2, 3]}\r\n\n{\"input_ids\": [7, 8]}\n"
                                     "{\"input_ids\": [9, 10, 11, 12, 13]}");  // no final newline
  const CalibrationSet set = load_calibration_data(options_for({path}, 14));
  REQUIRE(set.sequences.size() == 3);
  CHECK(set.sequences[0] == std::vector<int64_t>{1, 2, 3});
  CHECK(set.sequences[1] == std::vector<int64_t>{7, 8});
  CHECK(set.sequences[2] == std::vector<int64_t>{9, 10, 11, 12, 13});
  CHECK(set.sequence_source == std::vector<int>{0, 0, 0});
  CHECK(set.seq_len == 0);
  CHECK(set.total_tokens() == 10);
  CHECK(set.predicted_positions() == 7);
  REQUIRE(set.sources.size() == 1);
  const auto& source = set.sources[0];
  CHECK(source.spec == path);
  CHECK(source.path == path);
  CHECK(source.domain == "ids");
  CHECK(source.weight == 1.0);
  CHECK(source.sha256 == indexcache::sha256_file_hex(path));
  CHECK(source.documents == 3);
  CHECK(source.tokens == 10);
  CHECK(source.sequences == 3);
}

TEST_CASE("input_ids outside the vocabulary are rejected with the line and position", "[data]") {
  ScratchDir dir;
  const std::string too_large =
      dir.write("a.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [3, 50]}\n");
  const std::string message =
      error_of([&] { load_calibration_data(options_for({too_large}, 50)); });
  CHECK(contains(message, too_large + ": line 2"));
  CHECK(contains(message, "input_ids[1] = 50 is outside the vocabulary [0, 50)"));

  const std::string negative = dir.write("b.jsonl", "{\"input_ids\": [-1, 2]}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({negative})); }),
                 "line 1: input_ids[0] = -1 is outside"));
  const std::string fraction = dir.write("c.jsonl", "{\"input_ids\": [1, 2.5]}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({fraction})); }),
                 "line 1: input_ids[1] is not an integer"));
  const std::string huge = dir.write("d.jsonl", "{\"input_ids\": [1, 18446744073709551615]}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({huge}, 0)); }),
                 "input_ids[1] = 18446744073709551615 is outside"));
  const std::string not_array = dir.write("e.jsonl", "{\"input_ids\": 5}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({not_array})); }),
                 "line 1: \"input_ids\" must be an array"));
}

TEST_CASE("sequences shorter than two tokens are rejected with the line number", "[data]") {
  ScratchDir dir;
  const std::string one =
      dir.write("one.jsonl", "{\"input_ids\": [1, 2]}\n\n{\"input_ids\": [4]}\n");
  const std::string message = error_of([&] { load_calibration_data(options_for({one})); });
  CHECK(contains(message, one + ": line 3: a sequence of 1 token(s); at least 2 are needed"));
  const std::string none = dir.write("none.jsonl", "{\"input_ids\": []}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({none})); }),
                 "line 1: a sequence of 0 token(s)"));
}

TEST_CASE("a line that is not JSON names its line", "[data]") {
  ScratchDir dir;
  const std::string path =
      dir.write("bad.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 2\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({path})); }),
                 path + ": line 2: not valid JSON"));
  const std::string not_object = dir.write("array.jsonl", "[1, 2, 3]\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({not_object})); }),
                 "line 1: expected a JSON object"));
  const std::string neither = dir.write("neither.jsonl", "{\"ids\": [1, 2]}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({neither})); }),
                 "line 1: has neither \"text\" nor \"input_ids\""));
  const std::string latin1 = dir.write("latin1.jsonl", "{\"text\": \"caf\xe9\"}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({latin1})); }),
                 "line 1: invalid UTF-8 at byte 14 of the line"));
}

TEST_CASE("empty, missing and unsupported files are errors naming the file", "[data]") {
  ScratchDir dir;
  const std::string empty = dir.write("empty.jsonl", "");
  CHECK(error_of([&] { load_calibration_data(options_for({empty})); }) ==
        empty + ": empty file: no records");
  const std::string blank = dir.write("blank.jsonl", "\n  \n\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({blank})); }), "empty file"));
  const std::string missing = dir.path("missing.jsonl");
  CHECK(error_of([&] { load_calibration_data(options_for({missing})); }) ==
        missing + ": file not found");
  const std::string folder = dir.write("folder.jsonl/x", "");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({dir.path("folder.jsonl")})); }),
                 "is a directory"));
  const std::string csv = dir.write("data.csv", "1,2\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({csv})); }),
                 "unsupported data file"));
  CHECK(contains(error_of([&] { load_calibration_data(options_for({})); }), "no calibration data"));
}

TEST_CASE("one file holds one kind of record", "[data]") {
  ScratchDir dir;
  const std::string mixed = dir.write("mixed.jsonl",
                                      "{\"input_ids\": [1, 2]}\n{\"input_ids\": [3, 4]}\n"
                                      "{\"text\": \"hello\"}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({mixed})); }),
                 mixed + ": line 3: a \"text\" record, but line 1 is a \"input_ids\" record"));
  const std::string both = dir.write("both.jsonl", "{\"input_ids\": [1, 2], \"text\": \"x\"}\n");
  CHECK(contains(error_of([&] { load_calibration_data(options_for({both})); }),
                 "line 1: has both \"text\" and \"input_ids\""));
}

TEST_CASE("text data without a tokenizer says that a tokenizer.json is needed", "[data]") {
  ScratchDir dir;
  for (const std::string& path :
       {dir.write("t.jsonl", "{\"text\": \"hello\"}\n"), dir.write("t.txt", "hello\n")}) {
    const std::string message = error_of([&] { load_calibration_data(options_for({path})); });
    CHECK(contains(message, path + ": text data needs the model's tokenizer.json"));
    CHECK(contains(message, "\"input_ids\""));
    CHECK(contains(message, "needs no tokenizer"));
  }
}

TEST_CASE("sampling is deterministic: same seed, same sequences", "[data]") {
  ScratchDir dir;
  const std::string path = dir.write("many.jsonl", id_lines(50));
  DataOptions options = options_for({path});
  const CalibrationSet all = load_calibration_data(options);
  REQUIRE(all.sequences.size() == 50);
  CHECK(first_ids(all)[49] == 49);  // all, in file order

  options.num_samples = 10;
  options.seed = 7;
  const CalibrationSet first = load_calibration_data(options);
  const CalibrationSet again = load_calibration_data(options);
  REQUIRE(first.sequences.size() == 10);
  CHECK(first.sequences == again.sequences);
  CHECK(first.seed == 7);
  const std::vector<int64_t> ids = first_ids(first);
  CHECK(std::is_sorted(ids.begin(), ids.end()));  // chosen sequences keep their order
  CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());  // no repeats
  CHECK(first.sources[0].sequences == 10);

  options.seed = 8;
  CHECK(load_calibration_data(options).sequences != first.sequences);
}

TEST_CASE("sampling gives the same sequences on every platform", "[data]") {
  // Recorded once (g++ 12, libstdc++): a different standard library or compiler must give the
  // same indices, since the sampler uses no standard distribution.
  ScratchDir dir;
  DataOptions options = options_for({dir.write("many.jsonl", id_lines(1000))}, 0);
  options.num_samples = 8;
  options.seed = 12345;
  CHECK(first_ids(load_calibration_data(options)) ==
        std::vector<int64_t>{222, 262, 293, 296, 332, 333, 440, 924});
  options.seed = 0;
  CHECK(first_ids(load_calibration_data(options)) ==
        std::vector<int64_t>{118, 268, 282, 438, 578, 626, 726, 956});

  dir.write("a.jsonl", id_lines(100));
  dir.write("b.jsonl", id_lines(100, 1000));
  const std::string mix = dir.write("mix.yaml",
                                    "num_samples: 6\nseed: 99\nsets:\n"
                                    "  - path: a.jsonl\n  - path: b.jsonl\n");
  CHECK(first_ids(load_calibration_data(options_for({mix}, 0))) ==
        std::vector<int64_t>{16, 17, 98, 1001, 1043, 1054});
}

TEST_CASE("num_samples larger than the data says how many it can provide", "[data]") {
  ScratchDir dir;
  DataOptions options =
      options_for({dir.write("a.jsonl", id_lines(30)), dir.write("b.jsonl", id_lines(20, 100))});
  options.num_samples = 51;
  CHECK(contains(error_of([&] { load_calibration_data(options); }),
                 "num_samples 51 is more than the 50 sequences the data provides"));
  options.num_samples = 50;
  CHECK(load_calibration_data(options).sequences.size() == 50);
  options.num_samples = -1;
  CHECK(
      contains(error_of([&] { load_calibration_data(options); }), "--num-samples: -1 is negative"));
}

TEST_CASE("several files without a mix are sampled from all their sequences alike", "[data]") {
  ScratchDir dir;
  DataOptions options =
      options_for({dir.write("a.jsonl", id_lines(300)), dir.write("b.jsonl", id_lines(100, 500))});
  options.num_samples = 200;
  options.seed = 3;
  const CalibrationSet set = load_calibration_data(options);
  REQUIRE(set.sequences.size() == 200);
  const auto counts = counts_per_source(set);
  CHECK(counts.at(0) > counts.at(1));  // about 150 : 50
  CHECK(set.sources[0].sequences + set.sources[1].sequences == 200);
  for (std::size_t i = 0; i < set.sequences.size(); ++i) {
    CHECK((set.sequences[i].front() >= 500) == (set.sequence_source[i] == 1));
  }
}

TEST_CASE("a YAML mix samples each set in proportion to its weight", "[data]") {
  ScratchDir dir;
  dir.write("data/a.jsonl", id_lines(100));
  dir.write("data/b.jsonl", id_lines(100, 1000));
  dir.write("data/c.jsonl", id_lines(100, 2000));
  const std::string mix = dir.write("mix.yaml",
                                    "# three sources\n"
                                    "num_samples: 40\nseed: 5\n"
                                    "sets:\n"
                                    "  - path: data/a.jsonl\n    weight: 1\n"
                                    "  - path: data/b.jsonl\n    weight: 2\n    name: bee\n"
                                    "  - path: data/c.jsonl\n    weight: 1\n");
  const CalibrationSet set = load_calibration_data(options_for({mix}, 0));
  CHECK(set.seed == 5);
  const auto counts = counts_per_source(set);
  CHECK(counts.at(0) == 10);
  CHECK(counts.at(1) == 20);
  CHECK(counts.at(2) == 10);
  REQUIRE(set.sources.size() == 3);
  CHECK(set.sources[1].domain == "bee");
  CHECK(set.sources[0].domain == "a");
  CHECK(set.sources[1].weight == 2.0);
  CHECK(set.sources[1].spec == "data/b.jsonl");
  CHECK(set.sources[1].sequences == 20);

  // Command-line values win over the mix's.
  DataOptions options = options_for({mix}, 0);
  options.num_samples = 8;
  options.seed = 9;
  const CalibrationSet smaller = load_calibration_data(options);
  CHECK(smaller.sequences.size() == 8);
  CHECK(smaller.seed == 9);
}

TEST_CASE("mix weights round by largest remainder and zero weights take nothing", "[data]") {
  ScratchDir dir;
  dir.write("a.jsonl", id_lines(50));
  dir.write("b.jsonl", id_lines(50, 100));
  dir.write("c.jsonl", id_lines(50, 200));
  const std::string thirds = dir.write("thirds.yml",
                                       "num_samples: 10\nsets:\n  - path: a.jsonl\n"
                                       "  - path: b.jsonl\n  - path: c.jsonl\n");
  const auto counts = counts_per_source(load_calibration_data(options_for({thirds})));
  CHECK(counts.at(0) == 4);
  CHECK(counts.at(1) == 3);
  CHECK(counts.at(2) == 3);

  const std::string zero = dir.write("zero.yaml",
                                     "sets:\n  - {path: a.jsonl, weight: 1}\n"
                                     "  - {path: b.jsonl, weight: 0}\n");
  const CalibrationSet set = load_calibration_data(options_for({zero}));
  CHECK(set.sequences.size() == 50);  // default: as many as the weights allow
  CHECK(set.sources[1].sequences == 0);
}

TEST_CASE("a mix asking for more than the data gives says how many it can", "[data]") {
  ScratchDir dir;
  dir.write("a.jsonl", id_lines(10));
  dir.write("b.jsonl", id_lines(100, 100));
  const std::string mix = dir.write("mix.yaml",
                                    "num_samples: 40\nsets:\n  - {path: a.jsonl, weight: 1}\n"
                                    "  - {path: b.jsonl, weight: 1}\n");
  const std::string message = error_of([&] { load_calibration_data(options_for({mix})); });
  CHECK(contains(message, mix + ": num_samples 40 is more than the data can provide"));
  CHECK(contains(message, "at most 20 (sequences per set: a: 10, b: 100)"));
  DataOptions options = options_for({mix});
  options.num_samples = 20;
  CHECK(load_calibration_data(options).sequences.size() == 20);
}

TEST_CASE("bad mixes are rejected naming the field", "[data]") {
  ScratchDir dir;
  dir.write("a.jsonl", id_lines(10));
  const auto message_for = [&](const std::string& yaml) {
    const std::string mix = dir.write("mix.yaml", yaml);
    return error_of([&] { load_calibration_data(options_for({mix})); });
  };
  CHECK(contains(message_for("sets:\n  - {path: a.jsonl, weight: -1}\n"),
                 "sets[0].weight is negative"));
  CHECK(contains(
      message_for("sets:\n  - {path: a.jsonl, weight: 0}\n  - {path: a.jsonl, weight: 0}\n"),
      "the weights of sets sum to 0"));
  CHECK(contains(message_for("sets:\n  - {path: a.jsonl, weight: heavy}\n"),
                 "sets[0].weight: expected a number"));
  CHECK(contains(message_for("sets:\n  - {path: a.jsonl, wieght: 1}\n"),
                 "sets[0].wieght: unknown key"));
  CHECK(contains(message_for("sets:\n  - {path: a.jsonl, set: code}\n"),
                 "sets[0]: give exactly one of set"));
  CHECK(contains(message_for("sets: []\n"), "sets: expected a non-empty list"));
  CHECK(contains(message_for("seq_len: 1\nsets:\n  - {path: a.jsonl}\n"),
                 "seq_len: 1 is less than 2"));
  CHECK(contains(message_for("seed: -4\nsets:\n  - {path: a.jsonl}\n"), "seed: expected"));
  CHECK(
      contains(message_for("sets:\n  - {path: missing.jsonl}\n"), "missing.jsonl: file not found"));
  CHECK(contains(message_for("sets: [\n"), "not valid YAML"));
  CHECK(contains(message_for("sets:\n  - {set: poetry}\n"),
                 "mix.yaml: sets[0].set: poetry: no bundled data set of that name"));
  CHECK(contains(message_for("colour: blue\nsets:\n  - {path: a.jsonl}\n"), "colour: unknown key"));

  const std::string mix = dir.write("ok.yaml", "sets:\n  - {path: a.jsonl}\n");
  CHECK(contains(error_of([&] {
                   load_calibration_data(options_for({mix, mix}));
                 }),
                 "a YAML mix must be the only --data value"));
}

TEST_CASE("seq_len below 2 is rejected", "[data]") {
  ScratchDir dir;
  DataOptions options = options_for({dir.write("a.jsonl", id_lines(3))});
  options.seq_len = 1;
  CHECK(error_of([&] { load_calibration_data(options); }) ==
        "--seq-len: 1 is less than 2 (a sequence needs two tokens)");
  options.seq_len = -5;
  CHECK(contains(error_of([&] { load_calibration_data(options); }), "--seq-len: -5"));
}

TEST_CASE("an unknown bundled set name lists the available ones", "[data]") {
  const std::string message = error_of([] { load_calibration_data(options_for({"poetry"})); });
  CHECK(contains(message, "poetry: no bundled data set of that name"));
  CHECK(contains(message, "available: code, docs, legal, math"));
  DataOptions options = options_for({"code"});
  options.split = "test";
  CHECK(contains(error_of([&] { load_calibration_data(options); }),
                 "code: the bundled data set has no split \"test\""));
}

TEST_CASE("INDEXCACHE_DATA_DIR points the bundled set names elsewhere", "[data]") {
  ScratchDir dir;
  dir.write("sets/mine/calibration.jsonl", id_lines(4));
  const ScopedEnv env("INDEXCACHE_DATA_DIR", dir.path("sets"));
  CHECK(bundled_data_directory() == dir.path("sets"));
  CHECK(bundled_data_sets() == std::vector<std::string>{"mine"});
  const CalibrationSet set = load_calibration_data(options_for({"mine"}));
  CHECK(set.sequences.size() == 4);
  CHECK(set.sources[0].domain == "mine");
  CHECK(set.sources[0].spec == "mine");
  CHECK(set.sources[0].path == dir.path("sets/mine/calibration.jsonl"));
  CHECK(
      contains(error_of([] { load_calibration_data(options_for({"code"})); }), "available: mine"));
}

TEST_CASE("every bundled set is present, well formed and within its size budget", "[data]") {
  const std::vector<std::string> expected = {"code", "docs", "legal", "math"};
  CHECK(bundled_data_sets("calibration") == expected);
  CHECK(bundled_data_sets("heldout") == expected);
  int64_t total_bytes = 0;
  for (const std::string split : {"calibration", "heldout"}) {
    for (const std::string& name : expected) {
      const std::string path = bundled_data_directory() + "/" + name + "/" + split + ".jsonl";
      std::ifstream in(path, std::ios::binary);
      REQUIRE(in.good());
      int64_t documents = 0;
      int64_t text_bytes = 0;
      std::string line;
      while (std::getline(in, line)) {
        const auto record = nlohmann::json::parse(line);  // valid JSON and UTF-8, or throws
        REQUIRE(record.is_object());
        REQUIRE(record.size() == 1);
        const std::string& text = record.at("text").get_ref<const std::string&>();
        CHECK(text.find_first_not_of(" \t\n") != std::string::npos);
        ++documents;
        text_bytes += static_cast<int64_t>(text.size());
      }
      INFO(name << "/" << split << ": " << documents << " documents, " << text_bytes << " bytes");
      CHECK(documents >= 20);
      CHECK(text_bytes >= (split == "calibration" ? 500'000 : 150'000));
      CHECK(text_bytes <= 1'500'000);
      total_bytes += indexcache::file_size(path);
      // The name resolves: without a tokenizer it stops at the text records, not before.
      DataOptions options = options_for({name});
      options.split = split;
      CHECK(contains(error_of([&] { load_calibration_data(options); }), "tokenizer.json"));
    }
  }
  CHECK(total_bytes < 8'000'000);
}

TEST_CASE("the example mix uses every bundled set with equal weights", "[data]") {
  const std::string mix = std::string(INDEXCACHE_SOURCE_DIR) + "/configs/mix-default.yaml";
  // Without a tokenizer the first text set stops it: the mix itself parsed and resolved.
  CHECK(contains(error_of([&] { load_calibration_data(options_for({mix})); }), "tokenizer.json"));
}
