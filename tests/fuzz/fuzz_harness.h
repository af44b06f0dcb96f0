// What each fuzz target does with one input, shared by the libFuzzer mains (tests/fuzz/
// fuzz_<target>.cpp, built by scripts/fuzz.sh with clang) and by the Catch2 suite, which replays
// every committed seed and regression input (tests/test_fuzz_replay.cpp), so a fixed crash
// stays fixed in ordinary and sanitizer builds too.
//
// The contract checked for every input, beyond "no crash, leak or hang":
// - the only exception that may leave a reader is InputError (anything else becomes an
//   "internal error", exit 1, in the tools);
// - its message is one non-empty line that names the file it is about;
// - what a reader accepts is consistent (tensor ranges inside the file, token ids inside the
//   vocabulary, a plan written back reads back to the same text).
// A violation aborts with a description, which libFuzzer records as a crash.
//
// Only torch-free parts of lib/ are used, so the targets build without libtorch.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "calibration_data.h"
#include "error.h"
#include "file_system.h"
#include "layer_plan.h"
#include "model_config.h"
#include "safetensors.h"
#include "search_journal.h"
#include "tokenizer.h"

#ifndef INDEXCACHE_FIXTURES_DIR
#error "INDEXCACHE_FIXTURES_DIR must name tests/fixtures"
#endif

namespace indexcache::fuzz {

[[noreturn]] inline void violation(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "fuzz contract violated: %s\n  %s\n", what.c_str(), detail.c_str());
  std::fflush(stderr);
  std::abort();
}

// A directory for this process's input files, removed when the process exits.
inline const std::string& scratch_directory() {
  static const std::string directory = [] {
    // tmpfs when there is one: every input is written to a file, thousands of times a second.
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : nullptr;
    std::string made;
    if (base != nullptr) {
      std::string pattern = std::string(base) + "/indexcache-fuzz-XXXXXX";
      std::vector<char> name(pattern.begin(), pattern.end());
      name.push_back('\0');
      if (::mkdtemp(name.data()) != nullptr) made = name.data();
    }
    if (made.empty()) made = make_temporary_directory("indexcache-fuzz-");
    static std::string removed_at_exit;
    removed_at_exit = made;
    std::atexit([] { remove_tree(removed_at_exit); });
    return made;
  }();
  return directory;
}

inline std::string scratch_file(const std::string& name) { return scratch_directory() + "/" + name; }

inline void write_file(const std::string& path, const char* data, std::size_t size) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(data, static_cast<std::streamsize>(size));
  if (!stream) violation("harness cannot write its scratch file", path);
}

inline void write_file(const std::string& path, const std::string& text) { write_file(path, text.data(), text.size()); }

// One non-empty line that names `subject` (a path, or a label like "config.json").
inline void check_message(const InputError& error, const std::string& subject) {
  const std::string message = error.what();
  if (message.empty()) violation("empty error message", subject);
  if (message.find_first_of("\n\r") != std::string::npos) violation("error message is not one line", message);
  if (message.find(subject) == std::string::npos) violation("error message does not name " + subject, message);
}

// The input split at each occurrence of `separator` (at most `parts` pieces; the last keeps
// the rest).
inline std::vector<std::string> split_input(const std::string& input, const std::string& separator, std::size_t parts) {
  std::vector<std::string> pieces;
  std::size_t start = 0;
  while (pieces.size() + 1 < parts) {
    const std::size_t found = input.find(separator, start);
    if (found == std::string::npos) break;
    pieces.push_back(input.substr(start, found - start));
    start = found + separator.size();
  }
  pieces.push_back(input.substr(start));
  return pieces;
}

// ---- safetensors header -----------------------------------------------------------------------

inline void fuzz_safetensors(const uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("model.safetensors");
  write_file(path, reinterpret_cast<const char*>(data), size);
  try {
    const auto file = SafetensorsFile::open(path);
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = header_length << 8 | data[i];
    for (const TensorInfo& tensor : file->tensors()) {
      // Everything handed out must lie inside the file and agree with dtype x shape.
      const uint64_t stored = tensor.end - tensor.begin;
      if (tensor.begin > tensor.end || 8 + header_length + tensor.end > size ||
          static_cast<uint64_t>(tensor.numel()) * dtype_size(tensor.dtype) != stored) {
        violation("inconsistent tensor accepted", tensor.name);
      }
      if (stored > 0 && file->data(tensor)[0] != data[8 + header_length + tensor.begin]) {
        violation("data() does not point at the tensor's bytes", tensor.name);
      }
      if (file->find(tensor.name) != &tensor) violation("find() does not return the listed tensor", tensor.name);
    }
  } catch (const InputError& error) {
    check_message(error, path);
  }
}

// ---- config.json --------------------------------------------------------------------------------

inline void fuzz_model_config(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ModelConfig config = parse_model_config(text, "config.json");
    // What the loader accepted must be usable for sizing tensors.
    if (static_cast<int64_t>(config.layer_is_moe.size()) != config.num_hidden_layers) {
      violation("layer_is_moe does not match num_hidden_layers", std::to_string(config.num_hidden_layers));
    }
    if (config.hidden_size <= 0 || config.vocab_size <= 0 || config.index_topk <= 0) {
      violation("non-positive dimension accepted", text.substr(0, 200));
    }
  } catch (const InputError& error) {
    check_message(error, "config.json");
  }
}

// ---- tokenizer.json -------------------------------------------------------------------------------

// Input: tokenizer.json, optionally followed by a NUL byte and a text to encode (fixed samples
// otherwise, including invalid UTF-8 and special-token spellings).
inline void fuzz_tokenizer(const uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string json = input.substr(0, nul);
  std::vector<std::string> texts;
  if (nul != std::string::npos) {
    texts.push_back(input.substr(nul + 1));
  } else {
    texts = {"Hello world! 12345 <s>x</s>", "  caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\n\tend", "bad \xff\xfe utf8 \xc3"};
  }
  const std::string path = scratch_file("tokenizer.json");
  write_file(path, json);
  try {
    const Tokenizer tokenizer = Tokenizer::load(path);
    const int64_t vocab_size = tokenizer.vocab_size();
    for (const std::string& text : texts) {
      for (const int32_t id : tokenizer.encode(text, /*add_special_tokens=*/false)) {
        if (id < 0 || id >= vocab_size) violation("token id outside the vocabulary", std::to_string(id));
      }
      for (const int32_t id : tokenizer.encode(text, /*add_special_tokens=*/true)) {
        if (id < 0) violation("negative token id with special tokens", std::to_string(id));
      }
    }
  } catch (const InputError& error) {
    check_message(error, path);
  }
}

// ---- layer plan YAML ------------------------------------------------------------------------------

// A plan the reader accepts, written back, must read back and give the same text again.
inline void fuzz_layer_plan(const uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("plan.yaml");
  write_file(path, reinterpret_cast<const char*>(data), size);
  LayerPlan plan;
  try {
    plan = read_plan(path);
  } catch (const InputError& error) {
    check_message(error, path);
    return;
  }
  const std::string written = plan_to_yaml(plan);
  const std::string again_path = scratch_file("plan-again.yaml");
  write_file(again_path, written);
  try {
    const std::string rewritten = plan_to_yaml(read_plan(again_path));
    if (rewritten != written) violation("a plan written back does not round-trip", written + "\n---\n" + rewritten);
  } catch (const InputError& error) {
    violation("a plan written by plan_to_yaml does not read back", error.what() + std::string("\n") + written);
  }
}

// ---- resume journal -------------------------------------------------------------------------------

inline void fuzz_journal(const uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("plan.yaml.journal");
  write_file(path, reinterpret_cast<const char*>(data), size);
  const nlohmann::json run = {{"model", "m"}, {"target_kept", 2}, {"data", {"a.jsonl"}}};
  try {
    double baseline = 0.0;
    SearchJournal::read(path, run, /*layers=*/6, &baseline);
  } catch (const InputError& error) {
    check_message(error, path);
  }
}

// ---- calibration data -----------------------------------------------------------------------------

// The tokenizer of the text data (a small byte-level BPE fixture), loaded once.
inline const Tokenizer& data_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(std::string(INDEXCACHE_FIXTURES_DIR) + "/data/tiny-tokenizer.json");
  return tokenizer;
}

// A bundled-set folder that mixes may name ("set: tiny"); $INDEXCACHE_DATA_DIR points there, so
// the reader never opens the large real sets. (Callers outside the fuzzer restore the variable.)
inline void prepare_bundled_sets() {
  static const bool prepared = [] {
    const std::string directory = scratch_file("bundled/tiny");
    make_directories(directory);
    write_file(directory + "/calibration.jsonl", "{\"input_ids\": [1, 2, 3, 4]}\n{\"input_ids\": [5, 6, 7]}\n");
    write_file(directory + "/heldout.jsonl", "{\"text\": \"held out text\"}\n");
    return true;
  }();
  (void)prepared;
  ::setenv("INDEXCACHE_DATA_DIR", scratch_file("bundled").c_str(), 1);
}

// Input: one option byte, then up to three files separated by "\n=====\n": mix.yaml, a.jsonl
// and b.txt (a mix names the others by relative path). Option bits: 0-1 which specs are given
// (mix; a.jsonl; b.txt; a.jsonl and b.txt), 2-5 seq_len (0: the mix's or the default, else
// 1 + value), 6 num_samples 3 instead of all, 7 no vocabulary bound.
inline void fuzz_calibration_data(const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  prepare_bundled_sets();
  const uint8_t options_byte = data[0];
  const std::vector<std::string> parts =
      split_input(std::string(reinterpret_cast<const char*>(data) + 1, size - 1), "\n=====\n", 3);
  const char* names[] = {"mix.yaml", "a.jsonl", "b.txt"};
  for (std::size_t i = 0; i < 3; ++i) write_file(scratch_file(names[i]), i < parts.size() ? parts[i] : "");

  DataOptions options;
  switch (options_byte & 3) {
    case 0: options.specs = {scratch_file("mix.yaml")}; break;
    case 1: options.specs = {scratch_file("a.jsonl")}; break;
    case 2: options.specs = {scratch_file("b.txt")}; break;
    default: options.specs = {scratch_file("a.jsonl"), scratch_file("b.txt")}; break;
  }
  const int seq_len_bits = (options_byte >> 2) & 15;
  options.seq_len = seq_len_bits == 0 ? 0 : seq_len_bits + 1;
  options.num_samples = (options_byte & 64) ? 3 : 0;
  options.tokenizer = &data_tokenizer();
  options.vocab_size = (options_byte & 128) ? 0 : data_tokenizer().vocab_size();
  try {
    const CalibrationSet set = load_calibration_data(options);
    if (set.sequences.size() != set.sequence_source.size()) violation("sequence_source size differs", "");
    for (std::size_t i = 0; i < set.sequences.size(); ++i) {
      if (set.sequences[i].size() < 2) violation("a sequence shorter than 2 tokens", std::to_string(i));
      for (const int64_t id : set.sequences[i]) {
        if (id < 0 || (options.vocab_size > 0 && id >= options.vocab_size)) {
          violation("token id outside the vocabulary", std::to_string(id));
        }
      }
      const int source = set.sequence_source[i];
      if (source < 0 || static_cast<std::size_t>(source) >= set.sources.size()) violation("bad sequence_source", "");
    }
  } catch (const InputError& error) {
    // Errors name one of the data files, the tokenizer, or the bundled folder.
    const std::string message = error.what();
    if (message.find("--seq-len") == 0) return;
    // A mix may name a file by absolute path anywhere (the fuzzer learns the scratch folder's
    // name and writes "/indexcache-fuzz-XXXXXX/..."); an error about that file names it as the
    // mix spelled it (control characters as spaces, as InputError prints them).
    if (!parts.empty() && message.compare(0, 1, "/") == 0) {
      std::string mix = parts[0];
      for (char& character : mix) {
        if (static_cast<unsigned char>(character) < 0x20 || character == 0x7f) character = ' ';
      }
      const std::string named = message.substr(0, message.find(": "));
      if (named.size() > 1 && mix.find(named) != std::string::npos) return;
    }
    check_message(error, message.find(INDEXCACHE_FIXTURES_DIR) != std::string::npos ? std::string(INDEXCACHE_FIXTURES_DIR)
                                                                                     : scratch_directory());
  }
}

}  // namespace indexcache::fuzz
