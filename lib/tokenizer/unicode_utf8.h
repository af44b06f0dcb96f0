// UTF-8 decoding, encoding, validation and the replacement of invalid bytes, plus the few
// Unicode character predicates the tokenizer needs outside of regular expressions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace indexcache::utf8 {

constexpr char32_t kReplacementCharacter = 0xFFFD;

// Number of bytes of the well-formed sequence that starts at text[position] (1 for ASCII).
// Only meaningful on valid UTF-8.
inline std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at text[position] of valid UTF-8 and advances `position` past it.
inline char32_t decode(std::string_view text, std::size_t& position) {
  const auto byte = [&](std::size_t offset) {
    return static_cast<char32_t>(static_cast<unsigned char>(text[position + offset]));
  };
  const char32_t lead = byte(0);
  if (lead < 0x80) {
    position += 1;
    return lead;
  }
  if (lead < 0xE0) {
    const char32_t code_point = ((lead & 0x1F) << 6) | (byte(1) & 0x3F);
    position += 2;
    return code_point;
  }
  if (lead < 0xF0) {
    const char32_t code_point = ((lead & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    position += 3;
    return code_point;
  }
  const char32_t code_point = ((lead & 0x07) << 18) | ((byte(1) & 0x3F) << 12) |
                              ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
  position += 4;
  return code_point;
}

// Appends the UTF-8 encoding of a Unicode scalar value.
void append(std::string& out, char32_t code_point);

// True when `bytes` is well-formed UTF-8 (no overlong forms, surrogates or values > U+10FFFF).
bool is_valid(std::string_view bytes);

// Decodes `bytes` as UTF-8, replacing every maximal ill-formed subpart with U+FFFD: the
// "substitution of maximal subparts" practice of the Unicode standard (ch. 3.9), which is what
// Python's bytes.decode("utf-8", errors="replace") does.
std::string replace_invalid(std::string_view bytes);

// Unicode White_Space (what Rust's char::is_whitespace and regex `\s` accept).
bool is_white_space(char32_t code_point);

}  // namespace indexcache::utf8
