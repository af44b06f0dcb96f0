// Engine notes. The tokenizers library compiles tokenizer.json regexes with Oniguruma (Ruby
// syntax, UTF-8). We use PCRE2 (8-bit, PCRE2_UTF | PCRE2_UCP) and bridge the differences that
// matter for the patterns tokenizers use:
//   - `\s`: Oniguruma's Unicode \s is U+0009-000D, U+0085 and General_Category Z; PCRE2's also
//     takes U+180E. Rewritten to that explicit set.
//   - `\d` = \p{Nd} in both; rewritten anyway so no engine option can change it.
//   - `\w`: Oniguruma (Unicode) = Letter | Mark | Number | Connector_Punctuation, PCRE2 10.42 =
//     Letter | Number | '_'. Rewritten to the Oniguruma set.
//   - `\h` is a hex digit in Oniguruma, horizontal space in PCRE2; `\v` is the vertical tab in
//     Oniguruma, any vertical space in PCRE2: both rewritten.
//   - `\uHHHH` (Ruby) becomes `\x{HHHH}`; `{,n}` (Ruby) becomes `{0,n}` (PCRE2 10.42 reads it
//     literally).
//   - `^`/`$` are line anchors in Ruby syntax: PCRE2_MULTILINE with LF newlines.
//   - Refused (would silently differ): \b \B, negated shorthands inside a class, nested classes,
//     POSIX brackets, class intersection `&&`, and inline options other than i and x (Ruby's
//     (?m) is PCRE2's (?s)).
// JIT: patterns are JIT-compiled when PCRE2 has JIT support; when it does not (or compilation
// for JIT fails), matching silently uses the PCRE2 interpreter, which gives the same results.
#include "tokenizer_regex.h"

#include <pcre2.h>

#include <cctype>

#include "unicode_utf8.h"

namespace indexcache::tokenizer_detail {
namespace {

constexpr const char* kSpaceClassBody = "\\t-\\r\\x{85}\\p{Z}";
constexpr const char* kWordClassBody = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
constexpr const char* kHexClassBody = "0-9a-fA-F";

// Class body (without brackets) for a shorthand letter, or nullptr if it is not one we rewrite.
const char* shorthand_body(char letter) {
  switch (std::tolower(static_cast<unsigned char>(letter))) {
    case 's': return kSpaceClassBody;
    case 'w': return kWordClassBody;
    case 'h': return kHexClassBody;
    case 'd': return "\\p{Nd}";
    default: return nullptr;
  }
}

bool is_hex_digit(char character) {
  return std::isxdigit(static_cast<unsigned char>(character)) != 0;
}

class Translator {
 public:
  explicit Translator(const std::string& pattern) : pattern_(pattern) {}

  std::string run() {
    while (position_ < pattern_.size()) {
      if (pattern_[position_] == '\\') {
        escape();
      } else if (in_class_) {
        class_character();
      } else {
        plain_character();
      }
    }
    if (in_class_) fail("an unterminated character class");
    return out_;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw RegexError("pattern uses " + what + " (at byte " + std::to_string(position_) +
                     "), which is not supported");
  }

  char peek(std::size_t offset) const {
    return position_ + offset < pattern_.size() ? pattern_[position_ + offset] : '\0';
  }

  void escape() {
    if (position_ + 1 >= pattern_.size()) fail("a trailing backslash");
    const char letter = pattern_[position_ + 1];
    const bool negated = std::isupper(static_cast<unsigned char>(letter)) != 0;
    if (const char* body = shorthand_body(letter)) {
      class_start_ = false;
      if (in_class_) {
        if (negated) fail(std::string("\\") + letter + " inside a character class");
        out_ += body;
      } else {
        out_ += std::string(negated ? "[^" : "[") + body + "]";
      }
      position_ += 2;
      return;
    }
    if ((letter == 'b' || letter == 'B') && !in_class_) fail("a word boundary (\\b or \\B)");
    if (letter == 'V') fail("\\V");
    if (letter == 'v') {  // vertical tab in Ruby, any vertical space in PCRE2
      out_ += "\\x0B";
      position_ += 2;
      class_start_ = false;
      return;
    }
    if (letter == 'u') {
      if (!(is_hex_digit(peek(2)) && is_hex_digit(peek(3)) && is_hex_digit(peek(4)) && is_hex_digit(peek(5)))) {
        fail("\\u without four hex digits");
      }
      out_ += "\\x{" + pattern_.substr(position_ + 2, 4) + "}";
      position_ += 6;
      return;
    }
    out_.append(pattern_, position_, 2);  // \p{..}, \x{..}, \n, \., ... mean the same in both
    position_ += 2;
    class_start_ = false;
  }

  void class_character() {
    const char character = pattern_[position_];
    if (character == '[') fail(peek(1) == ':' ? "a POSIX bracket expression" : "a nested character class");
    if (character == '&' && peek(1) == '&') fail("character class intersection (&&)");
    if (character == ']' && !class_start_) in_class_ = false;
    class_start_ = false;
    out_ += character;
    ++position_;
  }

  void plain_character() {
    const char character = pattern_[position_];
    if (character == '[') {
      in_class_ = true;
      class_start_ = true;
      out_ += character;
      ++position_;
      if (peek(0) == '^') {
        out_ += '^';
        ++position_;
      }
      return;
    }
    if (character == '{' && peek(1) == ',') {
      out_ += "{0";
      ++position_;
      return;
    }
    if (character == '(' && peek(1) == '?') check_group_options();
    out_ += character;
    ++position_;
  }

  // (?i) (?i:...) (?x-i) ... : only options whose meaning is the same in both engines.
  void check_group_options() {
    std::size_t index = position_ + 2;
    while (index < pattern_.size() && (std::isalpha(static_cast<unsigned char>(pattern_[index])) || pattern_[index] == '-')) {
      const char option = pattern_[index];
      if (option != 'i' && option != 'x' && option != '-') fail(std::string("the inline option (?") + option + ")");
      ++index;
    }
  }

  const std::string& pattern_;
  std::string out_;
  std::size_t position_ = 0;
  bool in_class_ = false;
  bool class_start_ = false;  // just after `[` or `[^`, where `]` is a literal
};

std::string escape_literal(const std::string& text) {
  std::string out;
  for (const char character : text) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte < 0x80 && !std::isalnum(byte)) out += '\\';
    out += character;
  }
  return out;
}

pcre2_match_data* as_match_data(const MatchScratch& scratch) {
  return static_cast<pcre2_match_data*>(scratch.match_data());
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

MatchScratch::MatchScratch() : match_data_(pcre2_match_data_create(1, nullptr)) {
  if (match_data_ == nullptr) throw std::bad_alloc();
}

MatchScratch::~MatchScratch() { pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_)); }

std::string translate_oniguruma(const std::string& pattern) { return Translator(pattern).run(); }

Regex Regex::from_oniguruma(const std::string& pattern) {
  if (pattern.empty()) throw RegexError("pattern is empty");
  return Regex(pattern, translate_oniguruma(pattern));
}

Regex Regex::literal(const std::string& text) {
  if (text.empty()) throw RegexError("pattern is empty");
  return Regex(text, escape_literal(text));
}

Regex::Regex(std::string source, const std::string& translated) : source_(std::move(source)) {
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  if (context == nullptr) throw std::bad_alloc();
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error_code,
                                   &error_offset, context);
  pcre2_compile_context_free(context);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw RegexError("pattern does not compile: " + std::string(reinterpret_cast<char*>(message)));
  }
  auto compiled = std::make_shared<Compiled>();
  compiled->code = code;
  compiled->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  compiled_ = std::move(compiled);
}

bool Regex::search(std::string_view subject, std::size_t start, MatchScratch& scratch, Span& found) const {
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  pcre2_match_data* match_data = as_match_data(scratch);
  int result = compiled_->jit
      ? pcre2_jit_match(compiled_->code, data, subject.size(), start, 0, match_data, nullptr)
      : pcre2_match(compiled_->code, data, subject.size(), start, PCRE2_NO_UTF_CHECK, match_data, nullptr);
  if (result == PCRE2_ERROR_JIT_STACKLIMIT) {
    // The interpreter keeps its backtracking frames on the heap: retry there.
    result = pcre2_match(compiled_->code, data, subject.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                         match_data, nullptr);
  }
  if (result == PCRE2_ERROR_NOMATCH) return false;
  if (result < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(result, message, sizeof(message));
    throw RegexError("regex /" + source_ + "/ failed: " + reinterpret_cast<char*>(message));
  }
  // result == 0 only means the ovector was too small for the capture groups; group 0 is set.
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
  found = {ovector[0], ovector[1]};
  return true;
}

void Regex::find_all(std::string_view subject, MatchScratch& scratch, std::vector<Span>& matches) const {
  std::size_t search_from = 0;
  bool have_previous = false;
  std::size_t previous_end = 0;
  Span found{};
  while (search_from <= subject.size() && search(subject, search_from, scratch, found)) {
    if (found.begin == found.end && have_previous && previous_end == found.end) {
      // An empty match right where the last one ended: step over one character and retry.
      search_from += search_from < subject.size()
          ? utf8::sequence_length(static_cast<unsigned char>(subject[search_from]))
          : 1;
      continue;
    }
    search_from = found.end;
    previous_end = found.end;
    have_previous = true;
    matches.push_back(found);
  }
}

bool Regex::contains_match(std::string_view subject, MatchScratch& scratch) const {
  Span found{};
  return search(subject, 0, scratch, found);
}

}  // namespace indexcache::tokenizer_detail
