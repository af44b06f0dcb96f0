// Regular expressions of tokenizer.json, run with PCRE2 the way the tokenizers library runs them
// with Oniguruma: pattern syntax translated where the engines differ, and matches enumerated with
// the same stepping over empty matches.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace indexcache::tokenizer_detail {

// A byte range [begin, end) of a subject string.
struct Span {
  std::size_t begin;
  std::size_t end;
};

// Per-call matching state (PCRE2 match data). One per encode call, so that a Regex stays
// immutable and shareable between threads.
class MatchScratch {
 public:
  MatchScratch();
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
  ~MatchScratch();
  void* match_data() const { return match_data_; }

 private:
  void* match_data_;
};

// Thrown by Regex factories when a pattern cannot be used; the message says why.
class RegexError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Regex {
 public:
  // A pattern in the Oniguruma (Ruby) syntax that tokenizer.json regexes are written in.
  static Regex from_oniguruma(const std::string& pattern);
  // A literal string (tokenizer.json {"String": ...} patterns).
  static Regex literal(const std::string& text);

  // All matches in `subject` (valid UTF-8), in order, as the Rust library's onig find_iter
  // yields them: after an empty match that ends where the previous match ended, the search
  // resumes one character later. Appends to `matches`.
  void find_all(std::string_view subject, MatchScratch& scratch, std::vector<Span>& matches) const;

  // True when the pattern matches anywhere in `subject`.
  bool contains_match(std::string_view subject, MatchScratch& scratch) const;

  const std::string& source() const { return source_; }

 private:
  struct Compiled;
  explicit Regex(std::string source, const std::string& translated);
  bool search(std::string_view subject, std::size_t start, MatchScratch& scratch, Span& found) const;

  std::string source_;
  std::shared_ptr<const Compiled> compiled_;
};

// Rewrites an Oniguruma pattern into PCRE2 syntax with the same meaning under PCRE2_UTF|UCP.
// Throws RegexError for constructs whose meaning would differ and that are not translated.
std::string translate_oniguruma(const std::string& pattern);

}  // namespace indexcache::tokenizer_detail
