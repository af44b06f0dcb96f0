// Pre-tokenization as the tokenizers library does it: a sequence of Split steps (regex or literal
// pattern, with a delimiter behaviour) refines the text into pieces, and an optional final
// ByteLevel step (prefix space, GPT-2 regex) yields the words that the BPE model encodes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_regex.h"

namespace indexcache::tokenizer_detail {

// What a Split does with the pieces its pattern matches (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct SplitRule {
  Regex pattern;
  SplitBehavior behavior;
  bool invert;  // the pattern describes the pieces to keep, not the delimiters
};

// A non-owning reference to a callable taking one word; valid while the callable lives.
class WordSink {
 public:
  template <typename Function>
  explicit WordSink(Function& function)
      : object_(&function),
        call_([](void* object, std::string_view word) { (*static_cast<Function*>(object))(word); }) {}
  void operator()(std::string_view word) const { call_(object_, word); }

 private:
  void* object_;
  void (*call_)(void*, std::string_view);
};

// Buffers reused across the pieces of one encode call.
struct PreTokenizeScratch {
  MatchScratch match;
  std::vector<Span> matches;
  std::vector<std::vector<Span>> pieces_per_step;
  std::vector<Span> words;
  std::string prefixed;
};

// Applies `behavior` to the matches of a pattern in `subject` and appends the resulting
// non-empty pieces to `pieces`; `invert` swaps which spans count as matches.
void split_by_behavior(std::size_t subject_size, const std::vector<Span>& matches, bool invert,
                       SplitBehavior behavior, std::vector<Span>& pieces);

class PreTokenizer {
 public:
  PreTokenizer();

  void add_split(SplitRule rule);
  // The ByteLevel step: must come after every Split.
  void set_byte_level(bool add_prefix_space, bool use_regex);
  bool has_byte_level() const { return byte_level_; }

  // Calls `emit` for every word of `text` (non-empty UTF-8), in order.
  void run(std::string_view text, PreTokenizeScratch& scratch, WordSink emit) const;

 private:
  void run_step(std::size_t step, std::string_view piece, PreTokenizeScratch& scratch, WordSink emit) const;
  void run_byte_level(std::string_view piece, PreTokenizeScratch& scratch, WordSink emit) const;

  std::vector<SplitRule> splits_;
  bool byte_level_ = false;
  bool add_prefix_space_ = false;
  bool use_regex_ = false;
  Regex byte_level_regex_;  // the GPT-2 pattern ByteLevel splits with when use_regex is true
};

}  // namespace indexcache::tokenizer_detail
