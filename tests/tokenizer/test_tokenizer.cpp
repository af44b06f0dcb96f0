// Unit tests of the tokenizer.json reader and encoder on small hand-written fixtures
// (tests/fixtures/tokenizer/). Every expected id list is derived by hand in the comment above it.
//
// Fixtures byte_level_string_merges.json and byte_level_pair_merges.json (identical except for
// the spelling of the merges: "a b" strings vs ["a", "b"] pairs):
//   vocab: the 256 characters of the byte-level alphabet with id = the byte they stand for
//          (so 'a' = 97, ' ' -> "Ġ" = 32, 0xC3 -> "Ã" = 195), then
//          256 "bc", 257 "ab", 258 "abc", 259 "Ġa", 260 "ĠĠ", 261 "12", 262 "123", 263 "Ã©" (é)
//   merges in rank order: b c | a b | ab c | Ġ a | Ġ Ġ | 1 2 | 12 3 | Ã ©
//   normalizer NFC; pre_tokenizer ByteLevel(add_prefix_space=false, use_regex=true: GPT-2 regex)
//   added tokens (ids as the library assigns them: vocabulary size 264 onwards):
//     264 <s> and 265 </s> (special, not normalized), 266 <mask> (special, lstrip+rstrip),
//     267 "cat" (single_word), 268 "Cafe\u0301" (normalized: matches NFC "Café")
//   post_processor TemplateProcessing single = <s> $A </s>.
// Fixture char_level_byte_fallback.json (a Llama-2-like layout without ByteLevel):
//   normalizer Sequence[Prepend "▁", Replace " " -> "▁"], no pre-tokenizer,
//   vocab <unk>=0 ▁=1 h=2 i=3 ▁h=4 ▁hi=5 <0xC3>=6 <0xA9>=7, merges "▁ h", "▁h i",
//   unk_token <unk>, fuse_unk, byte_fallback.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "catch_shim.h"
#include "bpe.h"
#include "error.h"
#include "pretokenizer.h"
#include "tokenizer.h"
#include "unicode_normalize.h"
#include "unicode_utf8.h"

#ifndef INDEXCACHE_FIXTURES_DIR
#define INDEXCACHE_FIXTURES_DIR "tests/fixtures"
#endif

namespace {

using indexcache::Tokenizer;
using Ids = std::vector<int32_t>;

std::string fixture(const std::string& name) {
  return std::string(INDEXCACHE_FIXTURES_DIR) + "/tokenizer/" + name;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream stream(path);
  return nlohmann::json::parse(stream);
}

// A temporary file that is removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char name[] = "/tmp/indexcache_tokenizer_XXXXXX";
    const int descriptor = mkstemp(name);
    REQUIRE(descriptor >= 0);
    close(descriptor);
    path_ = name;
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Tokenizer load_json(const nlohmann::json& json) {
  TempFile file(json.dump());
  return Tokenizer::load(file.path());
}

// The message of the InputError that loading `contents` raises ("" if none).
std::string load_error(const std::string& contents) {
  TempFile file(contents);
  try {
    Tokenizer::load(file.path());
  } catch (const indexcache::InputError& error) {
    const std::string message = error.what();
    CHECK(message.rfind(file.path() + ": ", 0) == 0);  // where = the file
    CHECK(message.find('\n') == std::string::npos);     // one line
    return message.substr(file.path().size() + 2);
  }
  return "";
}

std::string load_error(const nlohmann::json& json) { return load_error(json.dump()); }

nlohmann::json base_fixture() { return read_json(fixture("byte_level_string_merges.json")); }

// Words the pre-tokenizer makes of `text`.
std::vector<std::string> words_of(const indexcache::tokenizer_detail::PreTokenizer& pre_tokenizer,
                                  const std::string& text) {
  std::vector<std::string> words;
  auto collect = [&](std::string_view word) { words.emplace_back(word); };
  indexcache::tokenizer_detail::PreTokenizeScratch scratch;
  pre_tokenizer.run(text, scratch, indexcache::tokenizer_detail::WordSink(collect));
  return words;
}

}  // namespace

TEST_CASE("tokenizer: BPE merges follow rank order in both merge spellings", "[tokenizer]") {
  for (const char* name : {"byte_level_string_merges.json", "byte_level_pair_merges.json"}) {
    INFO(name);
    const Tokenizer tokenizer = Tokenizer::load(fixture(name));
    // "abc": pairs (a,b) rank 1 and (b,c) rank 0; "b c" goes first, then (a,bc) is no merge,
    // so "ab c" (rank 2) never applies: a=97, bc=256.
    CHECK(tokenizer.encode("abc", false) == Ids{97, 256});
    // "abab": two (a,b) candidates of equal rank; the leftmost merges first, then the other.
    CHECK(tokenizer.encode("abab", false) == Ids{257, 257});
    // "x abc": GPT-2 regex words "x", " abc"; Ġ a b c -> Ġ a bc (rank 0) -> Ġa bc (rank 3).
    CHECK(tokenizer.encode("x abc", false) == Ids{120, 259, 256});
    // "  a": \s+(?!\S) takes only the first space (the second is followed by 'a'), then " a".
    CHECK(tokenizer.encode("  a", false) == Ids{32, 259});
    // "12345": one GPT-2 number word; 1 2 -> 12, 12 3 -> 123, then 4 and 5 stay.
    CHECK(tokenizer.encode("12345", false) == Ids{262, 52, 53});
    // "1212": one word; both (1,2) pairs merge (leftmost first) and (12,12) is no merge.
    CHECK(tokenizer.encode("1212", false) == Ids{261, 261});
    CHECK(tokenizer.vocab_size() == 269);
  }
}

TEST_CASE("tokenizer: template adds BOS/EOS only with add_special_tokens", "[tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::load(fixture("byte_level_string_merges.json"));
  REQUIRE(tokenizer.bos_token_id() == std::optional<int32_t>(264));
  CHECK(tokenizer.encode("abc", true) == Ids{264, 97, 256, 265});
  CHECK(tokenizer.encode("abc", false) == Ids{97, 256});
  CHECK(tokenizer.encode("", true) == Ids{264, 265});
  CHECK(tokenizer.encode("", false).empty());
}

TEST_CASE("tokenizer: added and special tokens are matched in raw text and never split", "[tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::load(fixture("byte_level_string_merges.json"));
  // <s> and </s> are cut out first; "hello" is plain bytes h e l l o (no merges apply).
  CHECK(tokenizer.encode("<s>hello</s>", false) == Ids{264, 104, 101, 108, 108, 111, 265});
  // Leftmost-longest: "</s>" at 1 is found before "<s>" could be, "<" alone is plain text.
  CHECK(tokenizer.encode("<</s>", false) == Ids{60, 265});
  // <mask> has lstrip and rstrip: it swallows the spaces around it, leaving "a" and "b".
  CHECK(tokenizer.encode("a <mask> b", false) == Ids{97, 266, 98});
  // "cat" is single_word: inside "concat" it is not a token; after a space it is. "concat " is
  // split by the GPT-2 regex into "concat" and " " (no merges apply to these bytes).
  CHECK(tokenizer.encode("concat cat", false) == Ids{99, 111, 110, 99, 97, 116, 32, 267});
  // "Cafe\u0301" is a normalized token: its pattern is the NFC form "Café", which both the
  // composed and the decomposed input become after NFC.
  CHECK(tokenizer.encode("Cafe\xcc\x81 Caf\xc3\xa9", false) == Ids{268, 32, 268});
}

TEST_CASE("tokenizer: NFC normalizes decomposed input and keeps NFC input", "[tokenizer]") {
  const Tokenizer tokenizer = Tokenizer::load(fixture("byte_level_string_merges.json"));
  // é is C3 A9, byte-level "Ã©" = 263 whether typed composed or as e + U+0301.
  CHECK(tokenizer.encode("\xc3\xa9", false) == Ids{263});
  CHECK(tokenizer.encode("e\xcc\x81", false) == Ids{263});
  // Without the normalizer the decomposed form stays e (101), CC (204), 81 (129).
  nlohmann::json json = base_fixture();
  json["normalizer"] = nullptr;
  CHECK(load_json(json).encode("e\xcc\x81", false) == Ids{101, 204, 129});
  // Sequence of one NFC behaves like NFC.
  json["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  CHECK(load_json(json).encode("e\xcc\x81", false) == Ids{263});
}

TEST_CASE("unicode: NFC quick check and composition and reordering and Hangul", "[tokenizer]") {
  using indexcache::unicode::nfc;
  std::string out = "untouched";
  // Text already in NFC passes the quick check: to_nfc reports no change and leaves out alone.
  const std::string already = "plain ASCII, caf\xc3\xa9, \xe4\xb8\xad\xe6\x96\x87, \xed\x95\x9c, \xf0\x9f\x98\x80";
  CHECK_FALSE(indexcache::unicode::to_nfc(already, out));
  CHECK(out == "untouched");
  CHECK(nfc("e\xcc\x81") == "\xc3\xa9");                    // e + acute -> é
  CHECK(nfc("\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab") == "\xed\x95\x9c");  // jamo H A N -> 한
  // a + acute (class 230) + dot below (220) is reordered to a + dot below + acute; a + dot below
  // composes to ạ (U+1EA1), and no character is ạ + acute, so the acute stays.
  CHECK(nfc("a\xcc\x81\xcc\xa3") == "\xe1\xba\xa1\xcc\x81");
  // Å (U+212B ANGSTROM SIGN) is a singleton: NFC is U+00C5.
  CHECK(nfc("\xe2\x84\xab") == "\xc3\x85");
  // Mixed: only the region around the decomposed character changes.
  CHECK(nfc("abc e\xcc\x81 xyz") == "abc \xc3\xa9 xyz");
}

TEST_CASE("tokenizer: invalid UTF-8 becomes U+FFFD as Python decode with errors=replace does", "[tokenizer]") {
  using indexcache::utf8::replace_invalid;
  // Expected strings are what Python 3.11 prints for bytes.decode("utf-8", "replace").
  CHECK(replace_invalid("a\xff" "b") == "a\xef\xbf\xbd" "b");
  CHECK(replace_invalid("\xe2\x82x") == "\xef\xbf\xbdx");  // truncated sequence: one U+FFFD
  CHECK(replace_invalid("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  CHECK(replace_invalid("\xf0\x9f\x98") == "\xef\xbf\xbd");
  CHECK(replace_invalid("\xe0\x80\xaf") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // overlong
  CHECK(replace_invalid("\xf4\x90\x80\x80") ==
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // above U+10FFFF
  CHECK(replace_invalid("ok\xf0\x9f\x98\x80\x80") == "ok\xf0\x9f\x98\x80\xef\xbf\xbd");
  const Tokenizer tokenizer = Tokenizer::load(fixture("byte_level_string_merges.json"));
  // "a\uFFFDb": GPT-2 words "a", "\uFFFD" (a symbol), "b"; U+FFFD is EF BF BD = 239 191 189.
  CHECK(tokenizer.encode("a\xff" "b", false) == Ids{97, 239, 191, 189, 98});
  CHECK(tokenizer.encode("a\xff" "b", false) == tokenizer.encode("a\xef\xbf\xbd" "b", false));
}

TEST_CASE("tokenizer: Split behaviours cut pieces as the library does", "[tokenizer]") {
  using indexcache::tokenizer_detail::PreTokenizer;
  using indexcache::tokenizer_detail::Regex;
  using indexcache::tokenizer_detail::SplitBehavior;
  using Words = std::vector<std::string>;
  // Pattern \w+|[^\w\s]+ with invert=true: words and punctuation are the pieces to keep, the
  // spaces are the delimiters. Matches in "How are you doing?": How, are, you, doing, "?"
  // (doing and ? are two adjacent matches); the spaces are the gaps between them.
  const auto split = [](SplitBehavior behavior) {
    PreTokenizer pre_tokenizer;
    pre_tokenizer.add_split({Regex::from_oniguruma("\\w+|[^\\w\\s]+"), behavior, true});
    return words_of(pre_tokenizer, "How are you doing?");
  };
  // Removed drops the delimiters.
  CHECK(split(SplitBehavior::Removed) == Words{"How", "are", "you", "doing", "?"});
  // Isolated keeps every segment on its own.
  CHECK(split(SplitBehavior::Isolated) == Words{"How", " ", "are", " ", "you", " ", "doing", "?"});
  // MergedWithPrevious glues each delimiter to the piece before it.
  CHECK(split(SplitBehavior::MergedWithPrevious) == Words{"How ", "are ", "you ", "doing", "?"});
  // MergedWithNext glues each delimiter to the piece after it.
  CHECK(split(SplitBehavior::MergedWithNext) == Words{"How", " are", " you", " doing", "?"});
  // Contiguous merges neighbours of the same kind: "doing" and "?" are both kept pieces.
  CHECK(split(SplitBehavior::Contiguous) == Words{"How", " ", "are", " ", "you", " ", "doing?"});

  // Without invert, a literal " " pattern (String) with Removed splits on single spaces.
  PreTokenizer literal;
  literal.add_split({Regex::literal(" "), SplitBehavior::Removed, false});
  CHECK(words_of(literal, "a b  c") == Words{"a", "b", "c"});
  // MergedWithNext, non-inverted: "a" | " b" | " " | " c"; the first space of the double one
  // precedes another delimiter, so it is merged with nothing and stays alone.
  PreTokenizer next;
  next.add_split({Regex::literal(" "), SplitBehavior::MergedWithNext, false});
  CHECK(words_of(next, "a b  c") == Words{"a", " b", " ", " c"});
}

TEST_CASE("tokenizer: DeepSeek-style Split sequence and Digits", "[tokenizer]") {
  nlohmann::json json = base_fixture();
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                     {"trim_offsets", false}, {"use_regex", false}};
  const nlohmann::json digits3 = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}"}}},
                                  {"behavior", "Isolated"}, {"invert", false}};
  const nlohmann::json cjk = {{"type", "Split"},
                              {"pattern", {{"Regex", "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+"}}},
                              {"behavior", "Isolated"}, {"invert", false}};
  json["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {digits3, cjk, byte_level}}};
  const Tokenizer grouped = load_json(json);
  // \p{N}{1,3}: "1212" -> "121", "2"; 1 2 1 -> 12 1 = 261 49; "2" = 50.
  CHECK(grouped.encode("1212", false) == Ids{261, 49, 50});
  // No regex in ByteLevel: "x abc" is one word x Ġ a b c -> x Ġ a bc -> x Ġa bc.
  CHECK(grouped.encode("x abc", false) == Ids{120, 259, 256});
  // CJK run "中文" is cut from "ab": "ab" -> 257, then the six bytes of 中文 (E4 B8 AD E6 96 87).
  CHECK(grouped.encode("ab\xe4\xb8\xad\xe6\x96\x87", false) == Ids{257, 228, 184, 173, 230, 150, 135});

  json["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}};
  // Individual digits: 1 | 2 | 1 | 2, nothing to merge.
  CHECK(load_json(json).encode("1212", false) == Ids{49, 50, 49, 50});
  json["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false;
  // Digit runs stay together: "1212" -> 12 12; "a12b" -> "a" | "12" | "b".
  CHECK(load_json(json).encode("1212", false) == Ids{261, 261});
  CHECK(load_json(json).encode("a12b", false) == Ids{97, 261, 98});
}

TEST_CASE("tokenizer: ByteLevel add_prefix_space adds a space to each piece", "[tokenizer]") {
  nlohmann::json json = base_fixture();
  json["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}};
  const Tokenizer tokenizer = load_json(json);
  // "abc" -> " abc" -> Ġ a b c -> Ġa bc. A leading space is not doubled.
  CHECK(tokenizer.encode("abc", false) == Ids{259, 256});
  CHECK(tokenizer.encode(" abc", false) == Ids{259, 256});
  // Each piece between added tokens gets its own prefix: "<s>" then " a" -> Ġa.
  CHECK(tokenizer.encode("<s>a", false) == Ids{264, 259});
}

TEST_CASE("tokenizer: ignore_merges and unk and byte fallback", "[tokenizer]") {
  nlohmann::json json = base_fixture();
  json["model"]["ignore_merges"] = true;
  // "abc" is itself a vocabulary entry (258): taken whole instead of a + bc.
  CHECK(load_json(json).encode("abc", false) == Ids{258});

  const Tokenizer llama_like = Tokenizer::load(fixture("char_level_byte_fallback.json"));
  // "hi hi é" -> "▁hi▁hi▁é"; é is not in the vocabulary: bytes <0xC3> <0xA9>; merges give
  // ▁h (rank 0) then ▁hi (rank 1): ▁hi ▁hi ▁ <0xC3> <0xA9>.
  CHECK(llama_like.encode("hi hi \xc3\xa9", false) == Ids{5, 5, 1, 6, 7});
  // "x" has no byte token either: unk, and two unknowns in a row fuse into one.
  CHECK(llama_like.encode("hi xx", false) == Ids{5, 1, 0});
  CHECK_FALSE(llama_like.bos_token_id().has_value());
}

TEST_CASE("tokenizer: unsupported components and bad files are refused by name", "[tokenizer]") {
  const auto with = [](const char* pointer, const nlohmann::json& value) {
    nlohmann::json json = base_fixture();
    json[nlohmann::json::json_pointer(pointer)] = value;
    return load_error(json);
  };
  const auto contains = [](const std::string& message, const std::string& part) {
    INFO(message);
    CHECK(message.find(part) != std::string::npos);
  };
  contains(with("/pre_tokenizer", {{"type", "Sequence"},
                                   {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}},
                                                      {{"type", "Metaspace"}, {"replacement", "_"}}}}}),
           "pre_tokenizer.pretokenizers[1].type \"Metaspace\" is not supported (supported: Split, ByteLevel, "
           "Digits, Sequence)");
  contains(with("/pre_tokenizer", {{"type", "Sequence"},
                                   {"pretokenizers", {{{"type", "ByteLevel"}, {"add_prefix_space", false},
                                                       {"trim_offsets", false}},
                                                      {{"type", "Digits"}, {"individual_digits", true}}}}}),
           "pre_tokenizer.pretokenizers[1] comes after ByteLevel");
  contains(with("/pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "\\bx"}}},
                                   {"behavior", "Isolated"}, {"invert", false}}),
           "pre_tokenizer.pattern.Regex pattern uses a word boundary");
  contains(with("/pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "a"}}},
                                   {"behavior", "Sideways"}, {"invert", false}}),
           "pre_tokenizer.behavior \"Sideways\" is not one of");
  contains(with("/pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                                   {"behavior", "Isolated"}, {"invert", false}}),
           "pre_tokenizer.pattern.Regex pattern does not compile");
  contains(with("/normalizer", {{"type", "Lowercase"}}),
           "normalizer.type \"Lowercase\" is not supported (supported: NFC, Replace, Prepend, Sequence)");
  contains(with("/normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}}),
           "normalizer.normalizers[0].type \"NFKC\" is not supported");
  contains(with("/post_processor", {{"type", "RobertaProcessing"}}),
           "post_processor.type \"RobertaProcessing\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  contains(with("/post_processor/single/0/SpecialToken/id", "<nope>"), "\"<nope>\" is not in special_tokens");
  contains(with("/model/type", "WordPiece"), "model.type \"WordPiece\" is not supported (supported: BPE)");
  contains(with("/model/dropout", 0.1), "model.dropout is not supported");
  contains(with("/model/continuing_subword_prefix", "##"), "model.continuing_subword_prefix is not supported");
  contains(with("/model/end_of_word_suffix", "</w>"), "model.end_of_word_suffix is not supported");
  contains(with("/model/unk_token", "<unk>"), "model.unk_token \"<unk>\" is not in model.vocab");
  contains(with("/model/merges/0", "b zz"), "model.merges[0] uses \"zz\", which is not in model.vocab");
  contains(with("/model/merges/0", "bc"), "model.merges[0] must be two tokens separated by one space");
  contains(with("/model/merges/1", {"a", "c"}), "model.merges[1] makes \"ac\", which is not in model.vocab");
  contains(with("/model/vocab", nlohmann::json::array()), "model.vocab must be an object (found array)");
  contains(with("/model/vocab/a", -3), "model.vocab.a is not a valid token id");
  contains(with("/added_tokens/1/content", "<s>"), "added_tokens[1].content repeats an earlier added token");
  contains(with("/version", "2.0"), "version \"2.0\" is not supported");
  contains(load_error(std::string("{\"model\": ")), "malformed JSON");
  contains(load_error(std::string("[1, 2]")), "top level must be an object");
  nlohmann::json no_model = base_fixture();
  no_model.erase("model");
  contains(load_error(no_model), "model is missing");
  CHECK_THROWS_AS(Tokenizer::load("/nonexistent/tokenizer.json"), indexcache::InputError);
}

TEST_CASE("regex: Oniguruma syntax is translated where PCRE2 differs", "[tokenizer]") {
  using indexcache::tokenizer_detail::MatchScratch;
  using indexcache::tokenizer_detail::Regex;
  using indexcache::tokenizer_detail::Span;
  MatchScratch scratch;
  const auto matches = [&](const std::string& pattern, const std::string& subject) {
    std::vector<Span> found;
    Regex::from_oniguruma(pattern).find_all(subject, scratch, found);
    std::vector<std::string> texts;
    for (const Span& span : found) texts.push_back(subject.substr(span.begin, span.end - span.begin));
    return texts;
  };
  using Texts = std::vector<std::string>;
  // \s is Oniguruma's set: U+3000 and U+0085 are spaces, U+180E (Mongolian vowel separator,
  // a format character since Unicode 6.3) is not, although PCRE2's own \s would take it.
  CHECK(matches("\\s+", "a\xe3\x80\x80" "b\xc2\x85" "c\xe1\xa0\x8e" "d") == Texts{"\xe3\x80\x80", "\xc2\x85"});
  CHECK(matches("[^\\s]+", "a b") == Texts{"a", "b"});
  // \h is a hex digit in Ruby syntax; {,2} means {0,2}; \u0041 is 'A'.
  CHECK(matches("\\h+", "xyz0fFg") == Texts{"0fF"});
  CHECK(matches("a{,2}b", "aaab") == Texts{"aab"});
  CHECK(matches("\\u0041", "bAb") == Texts{"A"});
  // Empty matches are reported, and the search steps over one character after an empty match
  // that ends where the previous match ended (onig find_iter): "x*" on "ab" -> "" at 0, 1, 2.
  CHECK(matches("x*", "ab") == Texts{"", "", ""});
  // "a*" on "baa": "" at 0, then "aa"; the empty match at 3 ends where "aa" ended: skipped.
  CHECK(matches("a*", "baa") == Texts{"", "aa"});
  // Lookahead as in the GPT-2 / DeepSeek patterns.
  CHECK(matches("\\s+(?!\\S)|\\s+", "a   b") == Texts{"  ", " "});
  // Case-insensitive groups are kept.
  CHECK(matches("(?i:'s|'t)", "IT'S it's") == Texts{"'S", "'s"});
  // Refused: word boundaries, class intersection, nested classes, Ruby's (?m).
  for (const char* pattern : {"\\bx", "[a-z&&[^aeiou]]", "[[:alpha:]]", "(?m:.)"}) {
    INFO(pattern);
    CHECK_THROWS_AS(Regex::from_oniguruma(pattern), indexcache::tokenizer_detail::RegexError);
  }
}

TEST_CASE("tokenizer: byte-level alphabet", "[tokenizer]") {
  using indexcache::tokenizer_detail::byte_level_byte;
  using indexcache::tokenizer_detail::byte_level_char;
  // Printable Latin-1 bytes stand for themselves; the other 68 map to U+0100.. in byte order:
  // 0x00 -> U+0100, space 0x20 -> U+0120 'Ġ', 0x7F -> U+0121, 0xAD (soft hyphen) -> U+0143.
  CHECK(byte_level_char('a') == U'a');
  CHECK(byte_level_char(0x00) == 0x100);
  CHECK(byte_level_char(0x20) == 0x120);
  CHECK(byte_level_char(0x7F) == 0x121);
  CHECK(byte_level_char(0xAD) == 0x143);
  for (int byte = 0; byte < 256; ++byte) CHECK(byte_level_byte(byte_level_char(static_cast<uint8_t>(byte))) == byte);
  CHECK(byte_level_byte(0x20) == -1);
  CHECK(byte_level_byte(0x144) == -1);
}
