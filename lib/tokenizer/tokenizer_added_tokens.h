// Added tokens (special or not) found in text before the model sees it, never split: the
// tokenizers library's AddedVocabulary matching (leftmost-longest, with the single_word, lstrip
// and rstrip rules).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_regex.h"

namespace indexcache::tokenizer_detail {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A stretch of text, or an added token (token_id >= 0) covering [begin, end).
struct Piece {
  std::size_t begin;
  std::size_t end;
  int32_t token_id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the text that stands for tokens[i] (its content, normalized when the token
  // is matched against normalized text). Patterns must be non-empty.
  AddedTokenMatcher(std::vector<AddedToken> tokens, const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }

  // Cuts `text` into pieces that cover it: text pieces (token_id -1) and token pieces. With no
  // match the whole text is one piece. Appends to `pieces`.
  void split(std::string_view text, MatchScratch& scratch, std::vector<Piece>& pieces) const;

 private:
  struct Node {
    int32_t token = -1;  // index into tokens_ of the pattern ending here
    std::vector<std::pair<unsigned char, int32_t>> children;
  };
  struct Match {
    std::size_t begin;
    std::size_t end;
    int32_t token;
  };

  void insert(const std::string& pattern, int32_t token);
  int32_t child(int32_t node, unsigned char byte) const;
  std::optional<Match> find_from(std::string_view text, std::size_t from) const;
  bool is_single_word(std::string_view text, const Match& match, MatchScratch& scratch) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  std::array<bool, 256> starts_pattern_{};
  std::optional<Regex> word_character_;  // only when some token is single_word
};

}  // namespace indexcache::tokenizer_detail
