#include "tokenizer_added_tokens.h"

#include <algorithm>

#include "unicode_utf8.h"

namespace indexcache::tokenizer_detail {
namespace {

// Rust regex's Unicode `\w` (the library tests word boundaries for single_word with it).
constexpr const char* kWordCharacterPattern = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";

std::size_t previous_character_start(std::string_view text, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

// Start of the run of white space that ends `text` (text.size() when there is none).
std::size_t trailing_space_start(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t start = previous_character_start(text, end);
    std::size_t position = start;
    if (!utf8::is_white_space(utf8::decode(text, position))) break;
    end = start;
  }
  return end;
}

// Length of the run of white space that starts `text`.
std::size_t leading_space_length(std::string_view text) {
  std::size_t position = 0;
  while (position < text.size()) {
    std::size_t next = position;
    if (!utf8::is_white_space(utf8::decode(text, next))) break;
    position = next;
  }
  return position;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, const std::vector<std::string>& patterns)
    : tokens_(std::move(tokens)), nodes_(1) {
  for (std::size_t index = 0; index < tokens_.size(); ++index) {
    insert(patterns[index], static_cast<int32_t>(index));
    starts_pattern_[static_cast<unsigned char>(patterns[index].front())] = true;
  }
  const bool any_single_word = std::any_of(tokens_.begin(), tokens_.end(),
      [](const AddedToken& token) { return token.single_word; });
  if (any_single_word) word_character_ = Regex::from_oniguruma(kWordCharacterPattern);
}

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
  for (const auto& [label, target] : nodes_[node].children) {
    if (label == byte) return target;
  }
  return -1;
}

void AddedTokenMatcher::insert(const std::string& pattern, int32_t token) {
  int32_t node = 0;
  for (const char character : pattern) {
    const auto byte = static_cast<unsigned char>(character);
    int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(byte, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  // Two tokens with the same pattern: the first one wins, as in a leftmost-longest automaton
  // built from the patterns in order.
  if (nodes_[node].token < 0) nodes_[node].token = token;
}

// Leftmost-longest: the first position where any pattern matches, the longest one there.
std::optional<AddedTokenMatcher::Match> AddedTokenMatcher::find_from(std::string_view text, std::size_t from) const {
  for (std::size_t start = from; start < text.size(); ++start) {
    if (!starts_pattern_[static_cast<unsigned char>(text[start])]) continue;
    std::optional<Match> longest;
    int32_t node = 0;
    for (std::size_t position = start; position < text.size(); ++position) {
      node = child(node, static_cast<unsigned char>(text[position]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) longest = Match{start, position + 1, nodes_[node].token};
    }
    if (longest) return longest;
  }
  return std::nullopt;
}

bool AddedTokenMatcher::is_single_word(std::string_view text, const Match& match, MatchScratch& scratch) const {
  if (match.begin > 0) {
    const std::size_t start = previous_character_start(text, match.begin);
    if (word_character_->contains_match(text.substr(start, match.begin - start), scratch)) return false;
  }
  if (match.end < text.size()) {
    const std::size_t length = utf8::sequence_length(static_cast<unsigned char>(text[match.end]));
    if (word_character_->contains_match(text.substr(match.end, length), scratch)) return false;
  }
  return true;
}

// The library's AddedVocabulary::find_matches: non-overlapping leftmost-longest matches; a
// single_word token next to a word character is skipped (the search still resumes after it);
// lstrip/rstrip make the token swallow neighbouring white space (lstrip never reaches back into
// an earlier token's piece).
void AddedTokenMatcher::split(std::string_view text, MatchScratch& scratch, std::vector<Piece>& pieces) const {
  std::size_t covered = 0;  // end of the last piece emitted
  std::size_t search_from = 0;
  while (search_from < text.size()) {
    const std::optional<Match> match = find_from(text, search_from);
    if (!match) break;
    search_from = match->end;
    const AddedToken& token = tokens_[match->token];
    if (token.single_word && !is_single_word(text, *match, scratch)) continue;
    std::size_t begin = match->begin;
    std::size_t end = match->end;
    if (token.lstrip) begin = std::max(trailing_space_start(text.substr(0, begin)), covered);
    if (token.rstrip) end += leading_space_length(text.substr(end));
    if (covered < begin) pieces.push_back({covered, begin, -1});
    pieces.push_back({begin, end, token.id});
    covered = end;
  }
  if (covered != text.size()) pieces.push_back({covered, text.size(), -1});
}

}  // namespace indexcache::tokenizer_detail
