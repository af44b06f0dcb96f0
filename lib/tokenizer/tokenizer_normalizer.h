// The normalizer of tokenizer.json: a sequence of NFC, Replace and Prepend steps, applied to each
// stretch of text between added tokens (as the tokenizers library does).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_regex.h"

namespace indexcache::tokenizer_detail {

// Buffers for one encode call; results of apply() live in them until the next apply().
struct NormalizeScratch {
  std::string buffers[2];
  std::vector<Span> matches;
};

class Normalizer {
 public:
  void add_nfc();
  // Every match of `pattern` (a literal or a regex) is replaced by `content`.
  void add_replace(Regex pattern, std::string content);
  // `prefix` is put in front of non-empty text.
  void add_prepend(std::string prefix);

  bool empty() const { return steps_.empty(); }

  // The normalized form of `text` (valid UTF-8): `text` itself when nothing changes, otherwise a
  // view into `scratch`, valid until the next call with the same scratch.
  std::string_view apply(std::string_view text, NormalizeScratch& scratch, MatchScratch& match) const;

 private:
  enum class Kind { Nfc, Replace, Prepend };
  struct Step {
    Kind kind;
    std::optional<Regex> pattern;
    std::string content;
  };
  // Writes the result to `out` and returns true when the step changes `text`.
  bool apply_step(const Step& step, std::string_view text, std::string& out, NormalizeScratch& scratch,
                  MatchScratch& match) const;

  std::vector<Step> steps_;
};

}  // namespace indexcache::tokenizer_detail
