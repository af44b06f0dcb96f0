#include "pretokenizer.h"

namespace indexcache::tokenizer_detail {
namespace {

// The pattern tokenizers' ByteLevel pre-tokenizer splits with (GPT-2's), in Oniguruma syntax.
constexpr const char* kByteLevelPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct Segment {
  Span span;
  bool is_match;
};

// The subject cut into alternating non-matching and matching segments, as tokenizers' Pattern
// find_matches reports them (empty matches included, as the regex yields them).
std::vector<Segment> segments_of(std::size_t subject_size, const std::vector<Span>& matches, bool invert) {
  std::vector<Segment> segments;
  segments.reserve(matches.size() * 2 + 1);
  std::size_t previous = 0;
  for (const Span& match : matches) {
    if (previous != match.begin) segments.push_back({{previous, match.begin}, invert});
    segments.push_back({match, !invert});
    previous = match.end;
  }
  if (previous != subject_size) segments.push_back({{previous, subject_size}, invert});
  return segments;
}

// Contiguous: neighbouring segments of the same kind become one piece.
std::vector<Span> merge_contiguous(const std::vector<Segment>& segments) {
  std::vector<Span> merged;
  bool previous_match = false;
  for (const Segment& segment : segments) {
    if (segment.is_match == previous_match && !merged.empty()) {
      merged.back().end = segment.span.end;
    } else {
      merged.push_back(segment.span);
    }
    previous_match = segment.is_match;
  }
  return merged;
}

// MergedWithPrevious: a match that follows a non-match is glued to the end of it.
std::vector<Span> merge_with_previous(const std::vector<Segment>& segments) {
  std::vector<Span> merged;
  bool previous_match = false;
  for (const Segment& segment : segments) {
    if (segment.is_match && !previous_match && !merged.empty()) {
      merged.back().end = segment.span.end;
    } else {
      merged.push_back(segment.span);
    }
    previous_match = segment.is_match;
  }
  return merged;
}

// MergedWithNext: a match that precedes a non-match is glued to its start (scanning backwards).
std::vector<Span> merge_with_next(const std::vector<Segment>& segments) {
  std::vector<Span> merged;
  bool previous_match = false;
  for (auto segment = segments.rbegin(); segment != segments.rend(); ++segment) {
    if (segment->is_match && !previous_match && !merged.empty()) {
      merged.back().begin = segment->span.begin;
    } else {
      merged.push_back(segment->span);
    }
    previous_match = segment->is_match;
  }
  return {merged.rbegin(), merged.rend()};
}

void append_non_empty(const std::vector<Span>& spans, std::vector<Span>& pieces) {
  for (const Span& span : spans) {
    if (span.begin != span.end) pieces.push_back(span);
  }
}

// Isolated and Removed need no merging: walk the matches directly (the hot path).
void split_without_merging(std::size_t subject_size, const std::vector<Span>& matches, bool keep_gaps,
                           bool keep_matches, std::vector<Span>& pieces) {
  std::size_t previous = 0;
  for (const Span& match : matches) {
    if (keep_gaps && previous < match.begin) pieces.push_back({previous, match.begin});
    if (keep_matches && match.begin < match.end) pieces.push_back(match);
    previous = match.end;
  }
  if (keep_gaps && previous < subject_size) pieces.push_back({previous, subject_size});
}

}  // namespace

void split_by_behavior(std::size_t subject_size, const std::vector<Span>& matches, bool invert,
                       SplitBehavior behavior, std::vector<Span>& pieces) {
  switch (behavior) {
    case SplitBehavior::Isolated:
      split_without_merging(subject_size, matches, true, true, pieces);
      return;
    case SplitBehavior::Removed:
      split_without_merging(subject_size, matches, !invert, invert, pieces);
      return;
    case SplitBehavior::Contiguous:
      append_non_empty(merge_contiguous(segments_of(subject_size, matches, invert)), pieces);
      return;
    case SplitBehavior::MergedWithPrevious:
      append_non_empty(merge_with_previous(segments_of(subject_size, matches, invert)), pieces);
      return;
    case SplitBehavior::MergedWithNext:
      append_non_empty(merge_with_next(segments_of(subject_size, matches, invert)), pieces);
      return;
  }
}

PreTokenizer::PreTokenizer() : byte_level_regex_(Regex::from_oniguruma(kByteLevelPattern)) {}

void PreTokenizer::add_split(SplitRule rule) { splits_.push_back(std::move(rule)); }

void PreTokenizer::set_byte_level(bool add_prefix_space, bool use_regex) {
  byte_level_ = true;
  add_prefix_space_ = add_prefix_space;
  use_regex_ = use_regex;
}

void PreTokenizer::run(std::string_view text, PreTokenizeScratch& scratch, WordSink emit) const {
  if (scratch.pieces_per_step.size() < splits_.size()) scratch.pieces_per_step.resize(splits_.size());
  run_step(0, text, scratch, emit);
}

// Each Split refines every piece of the previous step; the pieces of step i are kept in
// scratch.pieces_per_step[i], which deeper steps never touch.
void PreTokenizer::run_step(std::size_t step, std::string_view piece, PreTokenizeScratch& scratch,
                            WordSink emit) const {
  if (step == splits_.size()) {
    run_byte_level(piece, scratch, emit);
    return;
  }
  const SplitRule& rule = splits_[step];
  scratch.matches.clear();
  rule.pattern.find_all(piece, scratch.match, scratch.matches);
  std::vector<Span>& pieces = scratch.pieces_per_step[step];
  pieces.clear();
  split_by_behavior(piece.size(), scratch.matches, rule.invert, rule.behavior, pieces);
  for (const Span& span : pieces) {
    run_step(step + 1, piece.substr(span.begin, span.end - span.begin), scratch, emit);
  }
}

// ByteLevel adds the prefix space to each piece that lacks one and splits it with the GPT-2
// regex (Isolated). Its byte-to-unicode mapping is not applied here: the BPE model works on raw
// bytes and its vocabulary was mapped back to bytes when loading.
void PreTokenizer::run_byte_level(std::string_view piece, PreTokenizeScratch& scratch, WordSink emit) const {
  if (!byte_level_) {
    emit(piece);
    return;
  }
  if (add_prefix_space_ && piece.front() != ' ') {
    scratch.prefixed.assign(1, ' ');
    scratch.prefixed.append(piece.data(), piece.size());
    piece = scratch.prefixed;
  }
  if (!use_regex_) {
    emit(piece);
    return;
  }
  scratch.matches.clear();
  byte_level_regex_.find_all(piece, scratch.match, scratch.matches);
  std::vector<Span>& words = scratch.words;
  words.clear();
  split_by_behavior(piece.size(), scratch.matches, false, SplitBehavior::Isolated, words);
  for (const Span& word : words) emit(piece.substr(word.begin, word.end - word.begin));
}

}  // namespace indexcache::tokenizer_detail
