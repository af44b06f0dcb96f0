#include "unicode_normalize.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "unicode_nfc_tables.h"
#include "unicode_utf8.h"

namespace indexcache::unicode {
namespace {

namespace tables = unicode_tables;

// Hangul syllables compose and decompose algorithmically (Unicode ch. 3.12).
constexpr char32_t kHangulFirst = 0xAC00;
constexpr char32_t kLeadingFirst = 0x1100;
constexpr char32_t kVowelFirst = 0x1161;
constexpr char32_t kTrailingFirst = 0x11A7;
constexpr char32_t kLeadingCount = 19;
constexpr char32_t kVowelCount = 21;
constexpr char32_t kTrailingCount = 28;
constexpr char32_t kSyllablesPerLeading = kVowelCount * kTrailingCount;
constexpr char32_t kSyllableCount = kLeadingCount * kSyllablesPerLeading;

// Per code point below kPlaneLimit: combining class in the low byte plus these flags.
constexpr uint16_t kQuickCheckNo = 0x100;     // never appears in NFC text
constexpr uint16_t kQuickCheckMaybe = 0x200;  // may compose with what precedes it
constexpr uint16_t kDecomposes = 0x400;       // has a canonical decomposition (not Hangul)

bool is_hangul_syllable(char32_t code_point) {
  return code_point >= kHangulFirst && code_point < kHangulFirst + kSyllableCount;
}

// The quick-check property is not in the generated header: it follows from the tables.
// NFC_QC=No: a decomposition that does not recompose to the character itself.
// NFC_QC=Maybe: the second element of a primary composite, and the Hangul V and T jamo.
std::vector<uint16_t> build_properties() {
  std::vector<uint16_t> properties(tables::kPlaneLimit, 0);
  for (const auto& run : tables::kCombiningClassRuns) {
    for (char32_t code_point = run.first; code_point <= run.last; ++code_point) {
      properties[code_point] = run.combining_class;
    }
  }
  std::vector<char32_t> composites;
  for (const auto& composition : tables::kCompositions) {
    composites.push_back(composition.composite);
    properties[composition.key & 0x1FFFFF] |= kQuickCheckMaybe;
  }
  std::sort(composites.begin(), composites.end());
  for (const auto& decomposition : tables::kDecompositions) {
    properties[decomposition.code_point] |= kDecomposes;
    if (!std::binary_search(composites.begin(), composites.end(), decomposition.code_point)) {
      properties[decomposition.code_point] |= kQuickCheckNo;
    }
  }
  for (char32_t vowel = kVowelFirst; vowel < kVowelFirst + kVowelCount; ++vowel) {
    properties[vowel] |= kQuickCheckMaybe;
  }
  for (char32_t trailing = kTrailingFirst + 1; trailing < kTrailingFirst + kTrailingCount; ++trailing) {
    properties[trailing] |= kQuickCheckMaybe;
  }
  return properties;
}

// Immutable after construction (thread-safe static initialization).
const std::vector<uint16_t>& properties_table() {
  static const std::vector<uint16_t> table = build_properties();
  return table;
}

uint16_t properties_of(char32_t code_point) {
  // Below U+00C0 nothing decomposes, combines or composes.
  if (code_point < 0xC0 || code_point >= tables::kPlaneLimit) return 0;
  return properties_table()[code_point];
}

void append_decomposition(char32_t code_point, std::vector<char32_t>& out) {
  if (is_hangul_syllable(code_point)) {
    const char32_t index = code_point - kHangulFirst;
    out.push_back(kLeadingFirst + index / kSyllablesPerLeading);
    out.push_back(kVowelFirst + (index % kSyllablesPerLeading) / kTrailingCount);
    if (index % kTrailingCount != 0) out.push_back(kTrailingFirst + index % kTrailingCount);
    return;
  }
  if ((properties_of(code_point) & kDecomposes) == 0) {
    out.push_back(code_point);
    return;
  }
  const auto* begin = std::begin(tables::kDecompositions);
  const auto* end = std::end(tables::kDecompositions);
  const auto* found = std::lower_bound(begin, end, code_point,
      [](const tables::Decomposition& row, char32_t key) { return row.code_point < key; });
  const uint32_t* parts = tables::kDecompositionPool + found->offset;
  out.insert(out.end(), parts, parts + found->length);
}

// Stable sort of each run of non-starters by combining class (canonical ordering).
void reorder_canonically(std::vector<char32_t>& code_points) {
  std::size_t index = 0;
  while (index < code_points.size()) {
    if (combining_class(code_points[index]) == 0) {
      ++index;
      continue;
    }
    std::size_t run_end = index;
    while (run_end < code_points.size() && combining_class(code_points[run_end]) != 0) ++run_end;
    std::stable_sort(code_points.begin() + index, code_points.begin() + run_end,
        [](char32_t left, char32_t right) { return combining_class(left) < combining_class(right); });
    index = run_end;
  }
}

// The primary composite of (first, second), or 0 when there is none.
char32_t compose_pair(char32_t first, char32_t second) {
  if (first >= kLeadingFirst && first < kLeadingFirst + kLeadingCount && second >= kVowelFirst &&
      second < kVowelFirst + kVowelCount) {
    return kHangulFirst + ((first - kLeadingFirst) * kVowelCount + (second - kVowelFirst)) * kTrailingCount;
  }
  if (is_hangul_syllable(first) && (first - kHangulFirst) % kTrailingCount == 0 &&
      second > kTrailingFirst && second < kTrailingFirst + kTrailingCount) {
    return first + (second - kTrailingFirst);
  }
  const uint64_t key = (static_cast<uint64_t>(first) << 21) | second;
  const auto* begin = std::begin(tables::kCompositions);
  const auto* end = std::end(tables::kCompositions);
  const auto* found = std::lower_bound(begin, end, key,
      [](const tables::Composition& row, uint64_t wanted) { return row.key < wanted; });
  return (found != end && found->key == key) ? found->composite : 0;
}

// Canonical composition (Unicode ch. 3.11) in place. A character composes with the last
// starter when nothing between them blocks it: no intervening character of equal or higher
// combining class, and no intervening starter.
void compose(std::vector<char32_t>& code_points) {
  std::size_t written = 0;
  std::size_t starter = 0;
  bool have_starter = false;
  int last_class = -1;  // class of the last character written after the starter; -1: none
  for (const char32_t code_point : code_points) {
    const int current_class = combining_class(code_point);
    if (have_starter) {
      const bool blocked = last_class != -1 && (last_class >= current_class || last_class == 0);
      if (!blocked) {
        const char32_t composite = compose_pair(code_points[starter], code_point);
        if (composite != 0) {
          code_points[starter] = composite;
          continue;
        }
      }
    }
    if (current_class == 0) {
      starter = written;
      have_starter = true;
      last_class = -1;
    } else {
      last_class = current_class;
    }
    code_points[written++] = code_point;
  }
  code_points.resize(written);
}

// Full NFC of a span of valid UTF-8, appended to `out`.
void append_nfc(std::string_view text, std::string& out) {
  std::vector<char32_t> code_points;
  code_points.reserve(text.size() + 8);
  std::size_t position = 0;
  while (position < text.size()) append_decomposition(utf8::decode(text, position), code_points);
  reorder_canonically(code_points);
  compose(code_points);
  for (const char32_t code_point : code_points) utf8::append(out, code_point);
}

// A normalization boundary: a starter that is NFC_QC=Yes. Nothing after it composes with or
// reorders across what precedes it, so text can be normalized piecewise between boundaries.
bool is_boundary(uint16_t properties) {
  return (properties & (0xFF | kQuickCheckNo | kQuickCheckMaybe)) == 0;
}

// End of the region that must be normalized together with the code point ending at `position`:
// the start of the next boundary character.
std::size_t next_boundary(std::string_view text, std::size_t position) {
  while (position < text.size()) {
    std::size_t next = position;
    if (is_boundary(properties_of(utf8::decode(text, next)))) return position;
    position = next;
  }
  return position;
}

}  // namespace

uint8_t combining_class(char32_t code_point) {
  return static_cast<uint8_t>(properties_of(code_point) & 0xFF);
}

bool to_nfc(std::string_view text, std::string& out) {
  // Quick check (UAX #15 section 9): scan until a character that is not NFC_QC=Yes or that
  // breaks canonical order; normalize only the region around it, from the last boundary.
  std::size_t copied = 0;         // bytes of `text` already accounted for in `out`
  std::size_t last_boundary = 0;  // start of the last boundary character seen
  int last_class = 0;
  bool changed = false;
  std::size_t position = 0;
  while (position < text.size()) {
    const auto lead = static_cast<unsigned char>(text[position]);
    if (lead < 0x80) {
      last_boundary = position++;
      last_class = 0;
      continue;
    }
    const std::size_t start = position;
    const uint16_t properties = properties_of(utf8::decode(text, position));
    const int current_class = properties & 0xFF;
    const bool out_of_order = current_class != 0 && last_class > current_class;
    if ((properties & (kQuickCheckNo | kQuickCheckMaybe)) != 0 || out_of_order) {
      if (!changed) {
        out.clear();
        changed = true;
      }
      const std::size_t region_end = next_boundary(text, position);
      out.append(text.data() + copied, last_boundary - copied);
      append_nfc(text.substr(last_boundary, region_end - last_boundary), out);
      copied = region_end;
      position = region_end;
      last_boundary = region_end;
      last_class = 0;
      continue;
    }
    if (is_boundary(properties)) last_boundary = start;
    last_class = current_class;
  }
  if (changed) out.append(text.data() + copied, text.size() - copied);
  return changed;
}

std::string nfc(std::string_view text) {
  std::string out;
  if (!to_nfc(text, out)) return std::string(text);
  return out;
}

}  // namespace indexcache::unicode
