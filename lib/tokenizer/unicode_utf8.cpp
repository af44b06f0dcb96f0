#include "unicode_utf8.h"

namespace indexcache::utf8 {
namespace {

// The accepted range of the second byte depends on the lead byte (Unicode table 3-7); the
// remaining continuation bytes are always 0x80..0xBF.
struct LeadRule {
  int length;  // 0: the byte cannot start a sequence
  unsigned char second_low;
  unsigned char second_high;
};

LeadRule rule_for(unsigned char lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead < 0xC2) return {0, 0, 0};
  if (lead < 0xE0) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};  // excludes the surrogates
  if (lead < 0xF0) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead < 0xF4) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};
}

// Length of the well-formed sequence at bytes[position], or of its maximal ill-formed
// subpart as a negative number (at least 1 byte is always consumed).
long measure_sequence(std::string_view bytes, std::size_t position) {
  const auto lead = static_cast<unsigned char>(bytes[position]);
  const LeadRule rule = rule_for(lead);
  if (rule.length == 1) return 1;
  if (rule.length == 0) return -1;
  long accepted = 1;
  for (int index = 1; index < rule.length; ++index) {
    if (position + index >= bytes.size()) return -accepted;
    const auto byte = static_cast<unsigned char>(bytes[position + index]);
    const unsigned char low = index == 1 ? rule.second_low : 0x80;
    const unsigned char high = index == 1 ? rule.second_high : 0xBF;
    if (byte < low || byte > high) return -accepted;
    ++accepted;
  }
  return accepted;
}

bool all_ascii(const unsigned char* data, std::size_t size) {
  unsigned char any_high = 0;
  for (std::size_t index = 0; index < size; ++index) any_high |= data[index];
  return (any_high & 0x80) == 0;
}

}  // namespace

void append(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

bool is_valid(std::string_view bytes) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t position = 0;
  while (position < bytes.size()) {
    // Most text is ASCII: check 16 bytes at a time before looking at sequences.
    if (position + 16 <= bytes.size() && all_ascii(data + position, 16)) {
      position += 16;
      continue;
    }
    const long length = measure_sequence(bytes, position);
    if (length < 0) return false;
    position += static_cast<std::size_t>(length);
  }
  return true;
}

std::string replace_invalid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 16);
  std::size_t position = 0;
  while (position < bytes.size()) {
    const long length = measure_sequence(bytes, position);
    if (length > 0) {
      out.append(bytes.data() + position, static_cast<std::size_t>(length));
      position += static_cast<std::size_t>(length);
    } else {
      append(out, kReplacementCharacter);
      position += static_cast<std::size_t>(-length);
    }
  }
  return out;
}

bool is_white_space(char32_t code_point) {
  if (code_point <= 0x20) return code_point == 0x20 || (code_point >= 0x09 && code_point <= 0x0D);
  if (code_point < 0x85) return false;
  switch (code_point) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return code_point >= 0x2000 && code_point <= 0x200A;
  }
}

}  // namespace indexcache::utf8
