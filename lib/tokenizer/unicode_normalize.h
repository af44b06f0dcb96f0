// Unicode canonical composition (NFC) of UTF-8 text, with the quick-check fast path for text
// that is already in NFC. Data: lib/tokenizer/unicode_nfc_tables.h (see scripts/gen_unicode_tables.py for
// the Unicode version and why the repertoire is that of Unicode 9.0).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace indexcache::unicode {

// Canonical combining class of a code point (0 for starters and unknown code points).
uint8_t combining_class(char32_t code_point);

// NFC of valid UTF-8 `text`. Returns false, leaving `out` untouched, when `text` is already in
// NFC (then the caller keeps using `text`); otherwise writes the normalized text to `out`.
bool to_nfc(std::string_view text, std::string& out);

// Convenience form that always returns the normalized text.
std::string nfc(std::string_view text);

}  // namespace indexcache::unicode
