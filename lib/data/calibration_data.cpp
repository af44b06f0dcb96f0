// Calibration data in (see calibration_data.h and docs/ARCHITECTURE.md "Calibration data"): files, bundled
// sets and YAML mixes are read, text is tokenized and packed, and sequences are sampled.
//
// Behaviour worth knowing when reading the data:
// - Files are read once, in 1 MiB chunks, and hashed (SHA-256) while they are read; a jsonl
//   file is never held whole in memory. A .txt file is one document and is read whole.
// - Text must be UTF-8. Invalid UTF-8 is rejected, not replaced: the error gives the line, so
//   the user can fix or convert the file (iconv) instead of calibrating on altered text. (In
//   jsonl, JSON itself requires UTF-8; "\ud800"-style lone surrogate escapes are rejected too.)
// - Blank lines in jsonl files are skipped; text documents without any non-space character
//   are skipped (and counted as nothing); a file that gives no document is an error.
// - Text documents of one source are concatenated (BOS before each document when the
//   tokenizer has one) and cut into sequences of seq_len tokens. The tail shorter than seq_len
//   is dropped: a short last sequence would weigh a few positions like a full one and make
//   the loss depend on where the text happens to end.
// - Sampling is deterministic across platforms: std::mt19937_64 (its output is fixed by the
//   C++ standard) with our own unbiased range reduction, because the standard distributions
//   (std::uniform_int_distribution) differ between standard libraries.
#include "calibration_data.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "file_system.h"
#include "error.h"
#include "sha256.h"
#include "tokenizer.h"

#ifndef INDEXCACHE_SOURCE_DIR
#define INDEXCACHE_SOURCE_DIR "."
#endif

namespace indexcache {

namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------------


// A file read in chunks, each chunk added to the file's SHA-256 as it passes.
class ChunkReader {
 public:
  explicit ChunkReader(std::string path) : path_(std::move(path)), buffer_(1 << 20) {
    require_regular_file(path_, "a data file");
    file_.reset(std::fopen(path_.c_str(), "rb"));
    if (!file_) throw InputError(path_, std::string("cannot open: ") + std::strerror(errno));
  }

  // The next chunk; empty at the end of the file.
  std::string_view next() {
    const std::size_t count = std::fread(buffer_.data(), 1, buffer_.size(), file_.get());
    if (count == 0 && std::ferror(file_.get())) {
      throw InputError(path_, std::string("read failed: ") + std::strerror(errno));
    }
    hash_.update(buffer_.data(), count);
    return std::string_view(buffer_.data(), count);
  }

  std::string sha256() { return hash_.hex_digest(); }
  const std::string& path() const { return path_; }

 private:
  struct Closer {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, Closer> file_;
  std::vector<char> buffer_;
  Sha256 hash_;
};

// Lines of a file without their "\n" (or "\r\n"), numbered from 1.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : chunks_(path) {}

  bool next(std::string& line) {
    line.clear();
    bool read_any = false;
    for (;;) {
      if (pending_.empty()) {
        pending_ = chunks_.next();
        if (pending_.empty()) break;
      }
      read_any = true;
      const std::size_t newline = pending_.find('\n');
      if (newline != std::string_view::npos) {
        line.append(pending_.data(), newline);
        pending_.remove_prefix(newline + 1);
        break;
      }
      line.append(pending_.data(), pending_.size());
      pending_ = {};
    }
    if (!read_any) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ++line_number_;
    return true;
  }

  int64_t line_number() const { return line_number_; }
  std::string sha256() { return chunks_.sha256(); }
  const std::string& path() const { return chunks_.path(); }

 private:
  ChunkReader chunks_;
  std::string_view pending_;
  int64_t line_number_ = 0;
};

// Offset of the first byte that is not part of well-formed UTF-8 (overlong forms, surrogates
// and code points past U+10FFFF included), or npos.
std::size_t invalid_utf8_offset(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    uint32_t code_point = 0;
    uint32_t smallest = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2, code_point = lead & 0x1F, smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, code_point = lead & 0x0F, smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, code_point = lead & 0x07, smallest = 0x10000;
    } else {
      return i;
    }
    if (text.size() - i < length) return i;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < smallest || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

bool is_blank(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

std::string line_label(int64_t line_number) { return "line " + std::to_string(line_number); }

// ---------------------------------------------------------------------------------------------
// One source: its documents turned into sequences
// ---------------------------------------------------------------------------------------------

// What reading a source needs from the options.
struct ReadContext {
  const Tokenizer* tokenizer = nullptr;
  int64_t vocab_size = 0;
  int64_t seq_len = 0;
};

struct LoadedSource {
  DataSource info;
  bool packed = false;                         // text: sequences are cut from `stream`
  std::vector<int32_t> stream;                 // text: all documents' tokens, concatenated
  std::vector<std::vector<int64_t>> verbatim;  // input_ids: one sequence per record
  int64_t seq_len = 0;

  int64_t available() const {
    return packed ? static_cast<int64_t>(stream.size()) / seq_len
                  : static_cast<int64_t>(verbatim.size());
  }

  std::vector<int64_t> sequence(int64_t index) const {
    if (!packed) return verbatim[static_cast<std::size_t>(index)];
    const auto begin = stream.begin() + index * seq_len;
    return std::vector<int64_t>(begin, begin + seq_len);
  }
};

[[noreturn]] void throw_no_tokenizer(const std::string& path) {
  throw InputError(path,
                   "text data needs the model's tokenizer.json, and none was found; data given "
                   "as {\"input_ids\": [...]} records needs no tokenizer");
}

// Appends one text document to the source's token stream.
void add_text_document(std::string_view text, const ReadContext& context, LoadedSource& source) {
  const Tokenizer& tokenizer = *context.tokenizer;
  if (const std::optional<int32_t> bos = tokenizer.bos_token_id()) source.stream.push_back(*bos);
  const std::vector<int32_t> ids = tokenizer.encode(text, /*add_special_tokens=*/false);
  for (const int32_t id : ids) {
    if (id < 0 || (context.vocab_size > 0 && id >= context.vocab_size)) {
      throw InputError(tokenizer.path(), "token id " + std::to_string(id) +
                                             " is outside the model's vocabulary [0, " +
                                             std::to_string(context.vocab_size) + ")");
    }
  }
  source.stream.insert(source.stream.end(), ids.begin(), ids.end());
  ++source.info.documents;
}

// The ids of an input_ids record, checked against the vocabulary and the minimum length.
std::vector<int64_t> checked_ids(const Json& ids, const ReadContext& context,
                                 const std::string& where) {
  if (!ids.is_array()) throw InputError(where, "\"input_ids\" must be an array of integers");
  std::vector<int64_t> sequence;
  sequence.reserve(ids.size());
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const Json& id = ids[k];
    const std::string field = "input_ids[" + std::to_string(k) + "]";
    if (!id.is_number_integer()) throw InputError(where, field + " is not an integer");
    const bool too_large =
        id.is_number_unsigned() &&
        id.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    const int64_t value = too_large ? std::numeric_limits<int64_t>::max() : id.get<int64_t>();
    if (value < 0 || too_large || (context.vocab_size > 0 && value >= context.vocab_size)) {
      throw InputError(where, field + " = " + id.dump() + " is outside the vocabulary [0, " +
                                  (context.vocab_size > 0 ? std::to_string(context.vocab_size)
                                                          : std::string("inf")) +
                                  ")");
    }
    sequence.push_back(value);
  }
  if (sequence.size() < 2) {
    throw InputError(where, "a sequence of " + std::to_string(sequence.size()) +
                                " token(s); at least 2 are needed (one prediction)");
  }
  return sequence;
}

// The record of one jsonl line, with the reason when the line is not JSON.
Json parse_record(const std::string& line, const std::string& where) {
  try {
    return Json::parse(line);
  } catch (const Json::exception& error) {
    // parse_error for bad syntax; out_of_range for a number beyond double (1E888, found by
    // fuzzing: tests/fuzz/regressions/calibration_data/number_out_of_range).
    const std::size_t bad = invalid_utf8_offset(line);
    if (bad != std::string_view::npos) {
      throw InputError(where, "invalid UTF-8 at byte " + std::to_string(bad + 1) +
                                  " of the line (data files must be UTF-8)");
    }
    if (const auto* parse_error = dynamic_cast<const Json::parse_error*>(&error)) {
      throw InputError(where, "not valid JSON (error at byte " + std::to_string(parse_error->byte) + ")");
    }
    throw InputError(where, "not valid JSON (a number is out of range)");
  }
}

enum class RecordKind { kText, kInputIds };

RecordKind record_kind(const Json& record, const std::string& where) {
  if (!record.is_object()) {
    throw InputError(where, "expected a JSON object with \"text\" or \"input_ids\"");
  }
  const bool has_text = record.contains("text");
  const bool has_ids = record.contains("input_ids");
  if (has_text && has_ids) throw InputError(where, "has both \"text\" and \"input_ids\"; give one");
  if (!has_text && !has_ids) throw InputError(where, "has neither \"text\" nor \"input_ids\"");
  return has_text ? RecordKind::kText : RecordKind::kInputIds;
}

const char* kind_name(RecordKind kind) {
  return kind == RecordKind::kText ? "\"text\"" : "\"input_ids\"";
}

void read_jsonl(const ReadContext& context, LoadedSource& source) {
  LineReader lines(source.info.path);
  const std::string& path = source.info.path;
  std::string line;
  std::optional<RecordKind> file_kind;
  int64_t first_line = 0;
  int64_t records = 0;
  while (lines.next(line)) {
    if (is_blank(line)) continue;
    const std::string where = path + ": " + line_label(lines.line_number());
    const Json record = parse_record(line, where);
    const RecordKind kind = record_kind(record, where);
    ++records;
    if (!file_kind) {
      file_kind = kind, first_line = lines.line_number();
      source.packed = kind == RecordKind::kText;
      if (source.packed && context.tokenizer == nullptr) throw_no_tokenizer(path);
    } else if (kind != *file_kind) {
      throw InputError(where, std::string("a ") + kind_name(kind) + " record, but " +
                                  line_label(first_line) + " is a " + kind_name(*file_kind) +
                                  " record; one file holds one kind");
    }
    if (kind == RecordKind::kInputIds) {
      source.verbatim.push_back(checked_ids(record["input_ids"], context, where));
      ++source.info.documents;
      continue;
    }
    const Json& text = record["text"];
    if (!text.is_string()) throw InputError(where, "\"text\" must be a string");
    const std::string& document = text.get_ref<const std::string&>();
    if (!is_blank(document)) add_text_document(document, context, source);
  }
  source.info.sha256 = lines.sha256();
  if (records == 0) throw InputError(path, "empty file: no records");
  if (source.info.documents == 0) throw InputError(path, "no text: every document is empty");
}

void read_text_file(const ReadContext& context, LoadedSource& source) {
  const std::string& path = source.info.path;
  if (context.tokenizer == nullptr) throw_no_tokenizer(path);
  ChunkReader chunks(path);
  std::string text;
  for (std::string_view chunk = chunks.next(); !chunk.empty(); chunk = chunks.next()) {
    text.append(chunk.data(), chunk.size());
  }
  source.info.sha256 = chunks.sha256();
  const std::size_t bad = invalid_utf8_offset(text);
  if (bad != std::string_view::npos) {
    const auto line =
        1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
    throw InputError(path, "invalid UTF-8 at " + line_label(line) + " (byte " +
                               std::to_string(bad + 1) + " of the file; data files must be UTF-8)");
  }
  if (text.empty()) throw InputError(path, "empty file");
  if (is_blank(text)) throw InputError(path, "no text: the file holds only white space");
  source.packed = true;
  add_text_document(text, context, source);
}

std::string lowercase_extension(const std::string& path) {
  std::string extension = file_extension(path);
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

LoadedSource read_source(DataSource info, const ReadContext& context) {
  LoadedSource source;
  source.info = std::move(info);
  source.seq_len = context.seq_len;
  if (lowercase_extension(source.info.path) == ".txt") {
    read_text_file(context, source);
  } else {
    read_jsonl(context, source);
  }
  if (source.packed && source.available() == 0) {
    throw InputError(source.info.path, "the text gives " + std::to_string(source.stream.size()) +
                                           " tokens, not enough for one sequence of seq_len " +
                                           std::to_string(context.seq_len));
  }
  return source;
}

// ---------------------------------------------------------------------------------------------
// Specs: files, bundled set names and YAML mixes
// ---------------------------------------------------------------------------------------------

std::string bundled_set_path(const std::string& name, const std::string& split) {
  return join_path(join_path(bundled_data_directory(), name), split + ".jsonl");
}

bool looks_like_set_name(const std::string& spec) {
  return !spec.empty() && std::all_of(spec.begin(), spec.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  });
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

DataSource bundled_source(const std::string& name, const std::string& split, double weight) {
  DataSource source;
  source.spec = name;
  source.path = bundled_set_path(name, split);
  source.domain = name;
  source.weight = weight;
  if (!is_regular_file(source.path)) {
    if (is_directory(join_path(bundled_data_directory(), name))) {
      throw InputError(name, "the bundled data set has no split \"" + split + "\" (expected " +
                                 source.path + ")");
    }
    const std::vector<std::string> available = bundled_data_sets(split);
    throw InputError(name, "no bundled data set of that name (split \"" + split + "\"); " +
                               (available.empty() ? "none found in " + bundled_data_directory() +
                                                        " (set INDEXCACHE_DATA_DIR)"
                                                  : "available: " + joined(available)));
  }
  return source;
}

DataSource file_source(const std::string& spec, const std::string& path, double weight) {
  DataSource source;
  source.spec = spec;
  source.path = path;
  source.domain = file_stem(path);
  source.weight = weight;
  const std::string extension = lowercase_extension(path);
  if (extension != ".jsonl" && extension != ".txt") {
    const std::string names = joined(bundled_data_sets());
    throw InputError(path, "unsupported data file: expected .jsonl, .txt, a .yaml/.yml mix or a "
                           "bundled set name (" + names + ")");
  }
  require_regular_file(path, "a data file");
  return source;
}

bool is_mix(const std::string& spec) {
  const std::string extension = lowercase_extension(spec);
  return extension == ".yaml" || extension == ".yml";
}

// Mixes do not nest: an entry naming another mix is refused. When the mixes such an entry leads
// to come back to one already on the way (a mix naming itself, A -> B -> A), the message shows
// that cycle, the thing the user has to break.

// `path` without "./" components (joining "./a.yaml" to a folder, or any name to ".", gives them).
std::string shown_path(std::string path) {
  for (std::size_t at = path.find("/./"); at != std::string::npos; at = path.find("/./", at)) path.erase(at, 2);
  while (path.rfind("./", 0) == 0 && path.size() > 2) path.erase(0, 2);
  return path;
}

// Device and inode: the same file however it is spelt (relative, absolute, through links).
std::optional<std::pair<dev_t, ino_t>> file_identity(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::nullopt;
  return std::make_pair(info.st_dev, info.st_ino);
}

// The mixes named by the `path` entries of the mix at `path`, resolved against its folder; none
// where it cannot be read (only the cycle message depends on this, never the data).
std::vector<std::string> mixes_named_by(const std::string& path) {
  std::vector<std::string> named;
  if (!is_regular_file(path)) return named;
  try {
    const YAML::Node root = YAML::LoadFile(path);
    const YAML::Node sets = root.IsMap() ? root["sets"] : YAML::Node();
    if (!sets.IsSequence()) return named;
    for (const YAML::Node& entry : sets) {
      if (!entry.IsMap() || !entry["path"] || !entry["path"].IsScalar()) continue;
      const std::string written = entry["path"].as<std::string>();
      if (is_mix(written)) named.push_back(join_path(parent_directory(path), written));
    }
  } catch (const YAML::Exception&) {
  }
  return named;
}

// Depth first from `chain` (mixes, each naming the next) on to `next`: the chain up to and
// including the first mix seen twice, or empty when there is no cycle. `budget` bounds the
// files read, so a wide web of mixes cannot make the message expensive.
std::vector<std::string> mix_cycle(std::vector<std::string>& chain, const std::string& next, int& budget) {
  if (--budget < 0) return {};
  const auto identity = file_identity(next);
  if (!identity) return {};
  for (const std::string& earlier : chain) {
    if (file_identity(earlier) == identity) {
      std::vector<std::string> cycle = chain;
      cycle.push_back(next);
      return cycle;
    }
  }
  chain.push_back(next);
  for (const std::string& named : mixes_named_by(next)) {
    std::vector<std::string> cycle = mix_cycle(chain, named, budget);
    if (!cycle.empty()) return cycle;
  }
  chain.pop_back();
  return {};
}

// The error for entry `field` of mix `mix`, which names the mix `nested`.
[[noreturn]] void refuse_nested_mix(const std::string& mix, const std::string& field, const std::string& nested) {
  std::vector<std::string> chain = {mix};
  int budget = 64;
  const std::vector<std::string> cycle = mix_cycle(chain, nested, budget);
  if (!cycle.empty()) {
    std::string text;
    for (const std::string& path : cycle) text += (text.empty() ? "" : " -> ") + shown_path(path);
    throw InputError(mix, field + ": mix cycle: " + text);
  }
  throw InputError(mix, field + ": " + shown_path(nested) +
                            " is a mix; a mix cannot include another mix (list its sets in this file instead)");
}

// What the specs ask for, before anything is read.
struct Request {
  std::vector<DataSource> sources;
  bool weighted = false;  // a YAML mix: sample by weight
  int64_t seq_len = 0;
  int64_t num_samples = 0;
  std::optional<uint64_t> seed;
  std::string where;  // names the data in errors about the whole set
};

// YAML mix schema (documented for users in configs/README.md):
//
//   seq_len: 1024        # optional: packing length of text data
//   num_samples: 64      # optional: default as many as the data gives at these weights
//   seed: 0              # optional
//   description: ...     # optional, ignored
//   sets:                # required, non-empty
//     - set: code        # a bundled set name, or
//       path: my.jsonl   # a .jsonl/.txt file, relative to the YAML file's folder
//       weight: 1        # optional (default 1): share of num_samples, >= 0, sum > 0
//       split: heldout   # optional, bundled sets: default the --split option
//       name: mine       # optional: the domain name recorded in reports
template <typename T>
T yaml_value(const YAML::Node& node, const std::string& path, const std::string& field,
             const char* expected) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw InputError(path, field + ": expected " + expected);
  }
}

void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed,
                const std::string& path, const std::string& field) {
  for (const auto& entry : map) {
    // YAML allows lists and maps as keys ("? - a"); a mix only has plain names.
    if (!entry.first.IsScalar()) {
      throw InputError(path, (field.empty() ? "" : field + ": ") + "a key that is not a plain name");
    }
    const std::string key = entry.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      throw InputError(path, (field.empty() ? "" : field + ".") + key +
                                 ": unknown key (allowed: " + joined(allowed) + ")");
    }
  }
}

DataSource mix_entry(const YAML::Node& entry, const std::string& path, const std::string& field,
                     const std::string& default_split) {
  if (!entry.IsMap()) throw InputError(path, field + ": expected a map with set or path");
  check_keys(entry, {"set", "path", "weight", "split", "name"}, path, field);
  if (entry["set"].IsDefined() == entry["path"].IsDefined()) {
    throw InputError(path, field + ": give exactly one of set (a bundled name) or path");
  }
  const double weight =
      entry["weight"] ? yaml_value<double>(entry["weight"], path, field + ".weight", "a number")
                      : 1.0;
  if (!std::isfinite(weight)) throw InputError(path, field + ".weight: not a finite number");
  if (weight < 0) throw InputError(path, field + ".weight is negative");
  DataSource source;
  if (entry["set"]) {
    const std::string split =
        entry["split"] ? yaml_value<std::string>(entry["split"], path, field + ".split", "a name")
                       : default_split;
    const std::string name = yaml_value<std::string>(entry["set"], path, field + ".set", "a name");
    try {
      source = bundled_source(name, split, weight);
    } catch (const InputError& error) {  // say which mix entry named it
      throw InputError(path, field + ".set: " + error.what());
    }
  } else {
    const std::string written =
        yaml_value<std::string>(entry["path"], path, field + ".path", "a file path");
    // Relative paths in a mix are relative to the mix file.
    const std::string resolved = join_path(parent_directory(path), written);
    if (is_mix(written)) refuse_nested_mix(path, field + ".path", resolved);
    try {
      source = file_source(written, resolved, weight);
    } catch (const InputError& error) {  // say which mix entry named it
      throw InputError(path, field + ".path: " + error.what());
    }
  }
  if (entry["name"]) {
    source.domain = yaml_value<std::string>(entry["name"], path, field + ".name", "a name");
  }
  return source;
}

int64_t positive_integer(const YAML::Node& node, const std::string& path, const std::string& field,
                         int64_t minimum) {
  const int64_t value = yaml_value<int64_t>(node, path, field, "an integer");
  if (value < minimum) {
    throw InputError(
        path, field + ": " + std::to_string(value) + " is less than " + std::to_string(minimum));
  }
  return value;
}

YAML::Node load_yaml(const std::string& path) {
  require_regular_file(path, "a data file");
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& error) {
    throw InputError(path, "not valid YAML (line " + std::to_string(error.mark.line + 1) + ": " +
                               error.msg + ")");
  }
}

Request read_mix(const std::string& path, const std::string& default_split) {
  const YAML::Node root = load_yaml(path);
  if (!root.IsMap()) throw InputError(path, "expected a map with a \"sets\" list");
  check_keys(root, {"sets", "seq_len", "num_samples", "seed", "description"}, path, "");
  const YAML::Node sets = root["sets"];
  if (!sets || !sets.IsSequence() || sets.size() == 0) {
    throw InputError(path, "sets: expected a non-empty list of {set|path, weight}");
  }
  Request request;
  request.weighted = true;
  request.where = path;
  double total_weight = 0;
  for (std::size_t i = 0; i < sets.size(); ++i) {
    request.sources.push_back(
        mix_entry(sets[i], path, "sets[" + std::to_string(i) + "]", default_split));
    total_weight += request.sources.back().weight;
  }
  if (!(total_weight > 0)) throw InputError(path, "the weights of sets sum to 0");
  // An infinite sum would make every share 0 and the search for the largest sample count
  // (largest_fitting_total) start at 2^63.
  if (!std::isfinite(total_weight)) throw InputError(path, "the weights of sets are too large (their sum overflows)");
  if (root["seq_len"]) request.seq_len = positive_integer(root["seq_len"], path, "seq_len", 2);
  if (root["num_samples"]) {
    request.num_samples = positive_integer(root["num_samples"], path, "num_samples", 1);
  }
  if (root["seed"]) {
    request.seed = yaml_value<uint64_t>(root["seed"], path, "seed", "an integer >= 0");
  }
  return request;
}

Request read_specs(const DataOptions& options) {
  if (options.specs.empty()) throw InputError("--data", "no calibration data given");
  for (const std::string& spec : options.specs) {
    if (is_mix(spec) && options.specs.size() > 1) {
      throw InputError(spec, "a YAML mix must be the only --data value");
    }
  }
  if (is_mix(options.specs.front())) return read_mix(options.specs.front(), options.split);
  Request request;
  request.where = joined(options.specs);
  for (const std::string& spec : options.specs) {
    // A name without an extension is always a bundled set, even where a folder of that name
    // exists in the working directory.
    request.sources.push_back(looks_like_set_name(spec) ? bundled_source(spec, options.split, 1.0)
                                                        : file_source(spec, spec, 1.0));
  }
  return request;
}

// ---------------------------------------------------------------------------------------------
// Deterministic sampling
// ---------------------------------------------------------------------------------------------

uint64_t splitmix64(uint64_t value) {
  value += 0x9E3779B97F4A7C15ull;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
  return value ^ (value >> 31);
}

// Uniform integers from std::mt19937_64, whose output sequence the standard fixes, with a
// range reduction of our own (rejection below 2^64 mod bound, so no value is favoured).
class Sampler {
 public:
  explicit Sampler(uint64_t seed) : engine_(splitmix64(seed)) {}

  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    for (;;) {
      const uint64_t value = engine_();
      if (value >= threshold) return value % bound;
    }
  }

 private:
  std::mt19937_64 engine_;
};

// `count` distinct indices of [0, population), ascending (Floyd's algorithm: O(count) memory).
std::vector<int64_t> choose(int64_t population, int64_t count, Sampler& sampler) {
  std::vector<int64_t> chosen;
  if (count >= population) {
    chosen.resize(static_cast<std::size_t>(population));
    for (int64_t i = 0; i < population; ++i) chosen[static_cast<std::size_t>(i)] = i;
    return chosen;
  }
  std::unordered_set<int64_t> taken;
  for (int64_t j = population - count; j < population; ++j) {
    const auto candidate = static_cast<int64_t>(sampler.below(static_cast<uint64_t>(j) + 1));
    const int64_t pick = taken.count(candidate) ? j : candidate;
    taken.insert(pick);
    chosen.push_back(pick);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Sequences per source for `total` samples: proportional to the weights, rounded by largest
// remainder (ties to the earlier source).
std::vector<int64_t> quotas(int64_t total, const std::vector<double>& weights) {
  double weight_sum = 0;
  for (const double weight : weights) weight_sum += weight;
  std::vector<int64_t> result(weights.size(), 0);
  std::vector<std::pair<double, std::size_t>> remainders;
  int64_t assigned = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0) continue;
    const double exact = static_cast<double>(total) * weights[i] / weight_sum;
    result[i] = static_cast<int64_t>(std::floor(exact));
    assigned += result[i];
    remainders.emplace_back(exact - std::floor(exact), i);
  }
  std::sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  for (std::size_t k = 0; assigned < total && k < remainders.size(); ++k, ++assigned) {
    ++result[remainders[k].second];
  }
  return result;
}

bool fits(const std::vector<int64_t>& wanted, const std::vector<int64_t>& available) {
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if (wanted[i] > available[i]) return false;
  }
  return true;
}

// The largest sample count whose quotas every source can fill.
int64_t largest_fitting_total(const std::vector<int64_t>& available,
                              const std::vector<double>& weights) {
  double weight_sum = 0;
  for (const double weight : weights) weight_sum += weight;
  // A source's quota is at least floor(total * share), so total * share < available + 1.
  double bound = 9.0e18;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] > 0) {
      bound = std::min(bound, (static_cast<double>(available[i]) + 1) * weight_sum / weights[i]);
    }
  }
  for (auto total = static_cast<int64_t>(bound); total > 0; --total) {
    if (fits(quotas(total, weights), available)) return total;
  }
  return 0;
}

std::string availability(const std::vector<LoadedSource>& sources) {
  std::string text;
  for (const LoadedSource& source : sources) {
    text +=
        (text.empty() ? "" : ", ") + source.info.domain + ": " + std::to_string(source.available());
  }
  return text;
}

// Indices chosen per source for a weighted mix.
std::vector<std::vector<int64_t>> sample_mix(const std::vector<LoadedSource>& sources,
                                             int64_t num_samples, uint64_t seed,
                                             const std::string& where) {
  std::vector<int64_t> available;
  std::vector<double> weights;
  for (const LoadedSource& source : sources) {
    available.push_back(source.available());
    weights.push_back(source.info.weight);
  }
  const int64_t largest = largest_fitting_total(available, weights);
  if (largest == 0) throw InputError(where, "the data gives no sequences at these weights");
  const int64_t total = num_samples > 0 ? num_samples : largest;
  const std::vector<int64_t> wanted = quotas(total, weights);
  if (!fits(wanted, available)) {
    throw InputError(where, "num_samples " + std::to_string(total) +
                                " is more than the data can provide at these weights: at most " +
                                std::to_string(largest) +
                                " (sequences per set: " + availability(sources) + ")");
  }
  std::vector<std::vector<int64_t>> chosen;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    // One generator per source, so each source's choice depends only on the seed, its
    // position and its own counts.
    Sampler sampler(seed ^ splitmix64(0xC0FFEEull + i));
    chosen.push_back(choose(available[i], wanted[i], sampler));
  }
  return chosen;
}

// Indices chosen per source without a mix: all, or `num_samples` drawn from all sequences
// of all sources alike.
std::vector<std::vector<int64_t>> sample_plain(const std::vector<LoadedSource>& sources,
                                               int64_t num_samples, uint64_t seed,
                                               const std::string& where) {
  int64_t total = 0;
  for (const LoadedSource& source : sources) total += source.available();
  if (num_samples > total) {
    throw InputError(where, "num_samples " + std::to_string(num_samples) + " is more than the " +
                                std::to_string(total) + " sequences the data provides");
  }
  Sampler sampler(seed);
  const std::vector<int64_t> pooled = choose(total, num_samples > 0 ? num_samples : total, sampler);
  std::vector<std::vector<int64_t>> chosen(sources.size());
  std::size_t source = 0;
  int64_t offset = 0;  // first pooled index of `source`
  for (const int64_t index : pooled) {
    while (index >= offset + sources[source].available()) offset += sources[source++].available();
    chosen[source].push_back(index - offset);
  }
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

int64_t effective_seq_len(const DataOptions& options, const Request& request) {
  if (options.seq_len != 0) {
    if (options.seq_len < 2) {
      throw InputError("--seq-len", std::to_string(options.seq_len) +
                                        " is less than 2 (a sequence needs two tokens)");
    }
    return options.seq_len;
  }
  return request.seq_len != 0 ? request.seq_len : kDefaultSeqLen;
}

int64_t effective_num_samples(const DataOptions& options, const Request& request) {
  if (options.num_samples < 0) {
    throw InputError("--num-samples", std::to_string(options.num_samples) + " is negative");
  }
  return options.num_samples != 0 ? options.num_samples : request.num_samples;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public interface
// ---------------------------------------------------------------------------------------------

std::string bundled_data_directory() {
  const char* override_directory = std::getenv("INDEXCACHE_DATA_DIR");
  if (override_directory != nullptr && *override_directory != '\0') return override_directory;
  return join_path(INDEXCACHE_SOURCE_DIR, "calibration_data");
}

std::vector<std::string> bundled_data_sets(const std::string& split) {
  std::vector<std::string> names;
  const std::string directory = bundled_data_directory();
  for (const std::string& name : list_directory(directory)) {
    if (looks_like_set_name(name) && is_regular_file(join_path(join_path(directory, name), split + ".jsonl"))) {
      names.push_back(name);
    }
  }
  return names;
}

int64_t CalibrationSet::total_tokens() const {
  int64_t total = 0;
  for (const auto& sequence : sequences) total += static_cast<int64_t>(sequence.size());
  return total;
}

int64_t CalibrationSet::predicted_positions() const {
  int64_t total = 0;
  for (const auto& sequence : sequences) total += static_cast<int64_t>(sequence.size()) - 1;
  return total;
}

CalibrationSet load_calibration_data(const DataOptions& options) {
  const Request request = read_specs(options);
  ReadContext context;
  context.tokenizer = options.tokenizer;
  context.vocab_size = options.vocab_size;
  context.seq_len = effective_seq_len(options, request);
  const int64_t num_samples = effective_num_samples(options, request);
  const uint64_t seed = options.seed != 0 ? options.seed : request.seed.value_or(0);

  std::vector<LoadedSource> sources;
  for (const DataSource& info : request.sources) sources.push_back(read_source(info, context));

  const std::vector<std::vector<int64_t>> chosen =
      request.weighted ? sample_mix(sources, num_samples, seed, request.where)
                       : sample_plain(sources, num_samples, seed, request.where);

  CalibrationSet set;
  set.seed = seed;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    DataSource info = sources[i].info;
    for (const int64_t index : chosen[i]) {
      set.sequences.push_back(sources[i].sequence(index));
      set.sequence_source.push_back(static_cast<int>(i));
      info.tokens += static_cast<int64_t>(set.sequences.back().size());
      ++info.sequences;
    }
    if (sources[i].packed) set.seq_len = context.seq_len;
    set.sources.push_back(std::move(info));
  }
  return set;
}

}  // namespace indexcache
