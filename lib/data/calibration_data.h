// Calibration data in: files (.jsonl with "text" or "input_ids" records, .txt), bundled set
// names (calibration_data/<name>/), and YAML mixes (configs/*.yaml), turned into the packed
// token sequences that the model evaluates. See docs/ARCHITECTURE.md "Calibration data".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data_source.h"

namespace indexcache {

class Tokenizer;

// Packing length of text data when neither the options nor a YAML mix give one. Tools may pass
// a model-dependent value instead (sparse attention only matters past index_topk tokens).
constexpr int64_t kDefaultSeqLen = 1024;

struct DataOptions {
  std::vector<std::string> specs;   // --data values (files, bundled names, YAML mixes)
  int64_t seq_len = 0;              // 0: the mix's or kDefaultSeqLen; text data only
  int64_t num_samples = 0;          // 0: the mix's, else all sequences the data gives
  uint64_t seed = 0;                // sampling seed (deterministic); 0: the mix's seed, if any
  int64_t vocab_size = 0;           // ids must lie in [0, vocab_size); 0: upper bound unchecked
  const Tokenizer* tokenizer = nullptr;  // needed only for text records; null otherwise
  std::string split = "calibration";     // bundled sets: "calibration" or "heldout"
};

struct CalibrationSet {
  std::vector<std::vector<int64_t>> sequences;  // token ids, each of length >= 2
  std::vector<int> sequence_source;             // index into sources for each sequence
  std::vector<DataSource> sources;
  int64_t seq_len = 0;  // 0 when input_ids records are used verbatim
  uint64_t seed = 0;
  int64_t total_tokens() const;
  int64_t predicted_positions() const;  // sum over sequences of (length - 1)
};

// Reads, tokenizes, packs and samples. Throws InputError naming the file and the problem
// (missing/empty file, a line that is not JSON, ids outside the vocabulary, a sequence
// shorter than 2 tokens, text data without a tokenizer, ...).
//
// Specs: `*.jsonl` ({"text": ...} or {"input_ids": [...]} records, one kind per file), `*.txt`
// (one document), a name without extension (bundled set `<bundled_data_directory()>/<name>/
// <split>.jsonl`), or one `*.yaml`/`*.yml` mix (the only spec then; schema in
// configs/README.md). Text must be UTF-8 (invalid bytes are an error, not replaced).
// Sequences: input_ids records verbatim; text documents concatenated per source (BOS first
// when the tokenizer has one) and cut into seq_len tokens, the short tail dropped.
// Selection, the same on every platform for a given seed: a mix takes from each source a
// share of num_samples proportional to its weight (largest remainder; num_samples 0: the most
// the data can give at those weights); otherwise all sequences in order, or num_samples drawn
// uniformly from all of them. Chosen sequences keep their order (source, then position).
CalibrationSet load_calibration_data(const DataOptions& options);

// The folder of the bundled sets: $INDEXCACHE_DATA_DIR when set, else calibration_data/ in the
// source tree this library was built from.
std::string bundled_data_directory();

// Names of the bundled sets that have a `<split>.jsonl` (sorted), e.g. for --help.
std::vector<std::string> bundled_data_sets(const std::string& split = "calibration");

}  // namespace indexcache
