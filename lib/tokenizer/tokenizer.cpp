// Loading tokenizer.json and encoding text the way the Hugging Face tokenizers library does:
//
//   text -> invalid UTF-8 replaced -> added tokens with normalized=false split out
//        -> each remaining stretch normalized -> added tokens with normalized=true split out
//        -> pre-tokenizer (Split/Digits steps, then ByteLevel) -> BPE per word
//        -> post-processor template (BOS/EOS) when add_special_tokens.
//
// Invalid UTF-8: the Rust library only accepts valid UTF-8 strings, so callers of its Python
// binding decode bytes first, typically with errors="replace". encode() does the same: each
// maximal ill-formed subpart becomes U+FFFD exactly as Python's bytes.decode("utf-8", "replace")
// (tests/test_tokenizer.cpp checks this against Python's output; the golden corpus of
// scripts/make_tokenizer_golden.py encodes such bytes that way).
//
// Not applied, because they describe how a caller uses encodings rather than how text maps to
// tokens: tokenizer.json's truncation and padding (we always encode whole documents) and the
// decoder. Everything else that tokenizer.json may contain and that we do not implement is
// refused by name when loading.
#include "tokenizer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_set>

#include "bpe.h"
#include "error.h"
#include "file_system.h"
#include "pretokenizer.h"
#include "tokenizer_added_tokens.h"
#include "tokenizer_json.h"
#include "tokenizer_normalizer.h"
#include "unicode_utf8.h"

namespace indexcache {

using tokenizer_detail::AddedToken;
using tokenizer_detail::AddedTokenMatcher;
using tokenizer_detail::BpeConfig;
using tokenizer_detail::BpeModel;
using tokenizer_detail::ConfigError;
using tokenizer_detail::JsonNode;
using tokenizer_detail::Normalizer;
using tokenizer_detail::Piece;
using tokenizer_detail::PreTokenizer;
using tokenizer_detail::Regex;
using tokenizer_detail::RegexError;
using tokenizer_detail::SplitBehavior;
using tokenizer_detail::SplitRule;

namespace {

// One entry of the post-processor's single-sequence template.
struct TemplatePart {
  bool is_sequence;
  std::vector<int32_t> ids;  // the special token's ids when !is_sequence
};

// Buffers of one encode call.
struct EncodeScratch {
  tokenizer_detail::PreTokenizeScratch pre_tokenize;
  tokenizer_detail::BpeScratch bpe;
  tokenizer_detail::NormalizeScratch normalize;
  std::vector<Piece> raw_pieces;
  std::vector<Piece> normalized_pieces;
};

Regex compile_pattern(const JsonNode& pattern) {
  const auto members = pattern.members();
  if (members.size() != 1 || (members[0].first != "Regex" && members[0].first != "String")) {
    pattern.fail("must be {\"Regex\": ...} or {\"String\": ...}");
  }
  const JsonNode& value = members[0].second;
  try {
    return members[0].first == "Regex" ? Regex::from_oniguruma(value.string()) : Regex::literal(value.string());
  } catch (const RegexError& error) {
    value.fail(error.what());
  }
}

// ---- normalizer -----------------------------------------------------------------------------

void add_normalizer(const JsonNode& node, Normalizer& normalizer) {
  const std::string type = node.type();
  if (type == "NFC") {
    normalizer.add_nfc();
  } else if (type == "Sequence") {
    for (const JsonNode& step : node.at("normalizers").elements()) add_normalizer(step, normalizer);
  } else if (type == "Replace") {
    normalizer.add_replace(compile_pattern(node.at("pattern")), node.at("content").string());
  } else if (type == "Prepend") {
    normalizer.add_prepend(node.at("prepend").string());
  } else {
    node.unsupported_type(type, "NFC, Replace, Prepend, Sequence");
  }
}

// ---- pre-tokenizer --------------------------------------------------------------------------

SplitBehavior parse_behavior(const JsonNode& node) {
  const std::string name = node.string();
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  node.fail("\"" + name + "\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

void add_pre_tokenizer(const JsonNode& node, PreTokenizer& pre_tokenizer) {
  const std::string type = node.type();
  if (type == "Sequence") {
    for (const JsonNode& step : node.at("pretokenizers").elements()) add_pre_tokenizer(step, pre_tokenizer);
    return;
  }
  if (pre_tokenizer.has_byte_level()) {
    node.fail("comes after ByteLevel, which is only supported as the last pre-tokenizer");
  }
  if (type == "Split") {
    pre_tokenizer.add_split(SplitRule{compile_pattern(node.at("pattern")), parse_behavior(node.at("behavior")),
                                      node.at("invert").boolean()});
  } else if (type == "Digits") {
    // Digits splits on char::is_numeric, i.e. general category N: each digit alone or runs.
    const bool individual = node.at("individual_digits").boolean();
    pre_tokenizer.add_split(SplitRule{Regex::from_oniguruma("\\p{N}"),
                                      individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false});
  } else if (type == "ByteLevel") {
    node.at("trim_offsets").boolean();  // offsets only; checked for well-formedness
    pre_tokenizer.set_byte_level(node.at("add_prefix_space").boolean(), node.boolean_or("use_regex", true));
  } else {
    node.unsupported_type(type, "Split, ByteLevel, Digits, Sequence");
  }
}

// ---- model ----------------------------------------------------------------------------------

int32_t parse_id(const JsonNode& node) {
  const int64_t id = node.integer();
  if (id < 0 || id > std::numeric_limits<int32_t>::max()) node.fail("is not a valid token id");
  return static_cast<int32_t>(id);
}

std::pair<std::string, std::string> parse_merge(const JsonNode& node) {
  if (node.is_string()) {
    // "left right": the two tokens, separated by one space.
    const std::string text = node.string();
    const auto space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos || space == 0 ||
        space + 1 == text.size()) {
      node.fail("must be two tokens separated by one space");
    }
    return {text.substr(0, space), text.substr(space + 1)};
  }
  const auto parts = node.elements();
  if (parts.size() != 2) node.fail("must be a pair of tokens");
  return {parts[0].string(), parts[1].string()};
}

void check_model_options(const JsonNode& model) {
  if (const auto dropout = model.find("dropout")) {
    if (dropout->number() != 0.0) dropout->fail("is not supported (only null or 0)");
  }
  for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto value = model.string_or_null(field);
    if (value && !value->empty()) model.at(field).fail("is not supported (only null)");
  }
}

std::unique_ptr<BpeModel> load_model(const JsonNode& model, bool byte_level) {
  if (const auto type = model.find("type")) {
    if (type->string() != "BPE") model.unsupported_type(type->string(), "BPE");
  }
  check_model_options(model);
  BpeConfig config;
  config.byte_level = byte_level;
  config.unk_token = model.string_or_null("unk_token");
  config.fuse_unk = model.boolean_or("fuse_unk", false);
  config.byte_fallback = model.boolean_or("byte_fallback", false);
  config.ignore_merges = model.boolean_or("ignore_merges", false);
  for (const auto& [token, id] : model.at("vocab").members()) config.vocab.emplace_back(token, parse_id(id));
  for (const JsonNode& merge : model.at("merges").elements()) config.merges.push_back(parse_merge(merge));
  try {
    return std::make_unique<BpeModel>(config);
  } catch (const std::invalid_argument& error) {
    throw ConfigError(error.what());
  }
}

// ---- added tokens ---------------------------------------------------------------------------

AddedToken parse_added_token(const JsonNode& node) {
  AddedToken token;
  token.content = node.at("content").string();
  token.id = parse_id(node.at("id"));
  token.single_word = node.boolean_or("single_word", false);
  token.lstrip = node.boolean_or("lstrip", false);
  token.rstrip = node.boolean_or("rstrip", false);
  token.special = node.boolean_or("special", false);
  token.normalized = node.boolean_or("normalized", !token.special);
  return token;
}

// Ids as the library assigns them while loading (it does not simply trust "id"): a token
// already in the model vocabulary keeps that id; a new one gets the vocabulary size, or one past
// the largest added id once that is at least the vocabulary size.
void assign_library_ids(std::vector<AddedToken>& tokens, const BpeModel& model) {
  const auto vocab_size = static_cast<int64_t>(model.vocab_entries());
  int64_t largest_added = -1;
  for (AddedToken& token : tokens) {
    if (const auto existing = model.token_id(token.content)) {
      token.id = *existing;
    } else if (largest_added < 0) {
      token.id = static_cast<int32_t>(vocab_size);
    } else {
      token.id = static_cast<int32_t>(largest_added >= vocab_size || vocab_size == 0 ? largest_added + 1 : vocab_size);
    }
    largest_added = std::max<int64_t>(largest_added, token.id);
  }
}

std::vector<AddedToken> load_added_tokens(const JsonNode& root, const BpeModel& model) {
  std::vector<AddedToken> tokens;
  std::unordered_set<std::string> seen;
  const auto list = root.find("added_tokens");
  if (!list) return tokens;
  for (const JsonNode& node : list->elements()) {
    AddedToken token = parse_added_token(node);
    if (token.content.empty()) continue;  // the library ignores empty tokens
    if (!seen.insert(token.content).second) node.at("content").fail("repeats an earlier added token");
    tokens.push_back(std::move(token));
  }
  assign_library_ids(tokens, model);
  return tokens;
}

// The library matches special tokens first, then the others, each group in file order.
AddedTokenMatcher make_matcher(const std::vector<AddedToken>& all, bool normalized, const Normalizer& normalizer) {
  std::vector<AddedToken> tokens;
  std::vector<std::string> patterns;
  tokenizer_detail::NormalizeScratch scratch;
  tokenizer_detail::MatchScratch match;
  for (const bool special : {true, false}) {
    for (const AddedToken& token : all) {
      if (token.special != special || token.normalized != normalized) continue;
      std::string pattern = normalized ? std::string(normalizer.apply(token.content, scratch, match)) : token.content;
      if (pattern.empty()) throw ConfigError("added token \"" + token.content + "\" normalizes to empty text");
      tokens.push_back(token);
      patterns.push_back(std::move(pattern));
    }
  }
  return AddedTokenMatcher(std::move(tokens), patterns);
}

// ---- post-processor -------------------------------------------------------------------------

std::vector<TemplatePart> parse_template(const JsonNode& list, const JsonNode& special_tokens, bool is_pair) {
  std::vector<TemplatePart> parts;
  for (const JsonNode& entry : list.elements()) {
    if (const auto sequence = entry.find("Sequence")) {
      const std::string id = sequence->at("id").string();
      if (id != "A" && !(is_pair && id == "B")) sequence->at("id").fail(is_pair ? "must be \"A\" or \"B\"" : "must be \"A\"");
      parts.push_back({true, {}});
      continue;
    }
    const auto special = entry.find("SpecialToken");
    if (!special) entry.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    const std::string name = special->at("id").string();
    const auto definition = special_tokens.find(name);
    if (!definition) special->at("id").fail("\"" + name + "\" is not in special_tokens");
    TemplatePart part{false, {}};
    for (const JsonNode& id : definition->at("ids").elements()) part.ids.push_back(parse_id(id));
    parts.push_back(std::move(part));
  }
  return parts;
}

void add_post_processor(const JsonNode& node, std::optional<std::vector<TemplatePart>>& single) {
  const std::string type = node.type();
  if (type == "Sequence") {
    for (const JsonNode& step : node.at("processors").elements()) add_post_processor(step, single);
  } else if (type == "TemplateProcessing") {
    if (single) node.fail("is a second TemplateProcessing, which is not supported");
    const JsonNode special_tokens = node.at("special_tokens");
    single = parse_template(node.at("single"), special_tokens, false);
    if (const auto pair = node.find("pair")) parse_template(*pair, special_tokens, true);  // checked, unused

  } else if (type != "ByteLevel") {  // ByteLevel only trims offsets
    node.unsupported_type(type, "TemplateProcessing, ByteLevel, Sequence");
  }
}


}  // namespace

struct Tokenizer::Impl {
  std::string path;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  AddedTokenMatcher raw_tokens;         // added tokens with normalized == false
  AddedTokenMatcher normalized_tokens;  // added tokens with normalized == true
  std::vector<TemplatePart> single_template{TemplatePart{true, {}}};
  int64_t vocab_size = 0;

  void load(const JsonNode& root);
  void encode_text(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& ids) const;
  void encode_normalized(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& ids) const;
};

void Tokenizer::Impl::load(const JsonNode& root) {
  if (const auto version = root.find("version")) {
    if (version->string() != "1.0") version->fail("\"" + version->string() + "\" is not supported (only \"1.0\")");
  }
  if (const auto node = root.find("normalizer")) add_normalizer(*node, normalizer);
  if (const auto node = root.find("pre_tokenizer")) add_pre_tokenizer(*node, pre_tokenizer);
  model = load_model(root.at("model"), pre_tokenizer.has_byte_level());
  const std::vector<AddedToken> added = load_added_tokens(root, *model);
  raw_tokens = make_matcher(added, false, normalizer);
  normalized_tokens = make_matcher(added, true, normalizer);
  std::optional<std::vector<TemplatePart>> single;
  if (const auto node = root.find("post_processor")) add_post_processor(*node, single);
  if (single) single_template = std::move(*single);
  int64_t largest = model->max_id();
  for (const AddedToken& token : added) largest = std::max<int64_t>(largest, token.id);
  vocab_size = largest + 1;
}

void Tokenizer::Impl::encode_text(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& ids) const {
  auto& pieces = scratch.raw_pieces;
  pieces.clear();
  raw_tokens.split(text, scratch.pre_tokenize.match, pieces);
  for (const Piece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else if (piece.begin < piece.end) {
      const std::string_view normalized = normalizer.apply(text.substr(piece.begin, piece.end - piece.begin),
                                                           scratch.normalize, scratch.pre_tokenize.match);
      encode_normalized(normalized, scratch, ids);
    }
  }
}

void Tokenizer::Impl::encode_normalized(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& ids) const {
  auto& pieces = scratch.normalized_pieces;
  pieces.clear();
  normalized_tokens.split(text, scratch.pre_tokenize.match, pieces);
  auto encode_word = [&](std::string_view word) { model->encode_word(word, scratch.bpe, ids); };
  const tokenizer_detail::WordSink sink(encode_word);
  for (const Piece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else if (piece.begin < piece.end) {
      pre_tokenizer.run(text.substr(piece.begin, piece.end - piece.begin), scratch.pre_tokenize, sink);
    }
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string text = read_regular_file(path, "tokenizer.json");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(path, std::string("malformed JSON: ") + error.what());
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  try {
    impl->load(JsonNode(json, ""));
  } catch (const ConfigError& error) {
    throw InputError(path, error.what());
  } catch (const RegexError& error) {
    throw InputError(path, error.what());
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string replaced;
  if (!utf8::is_valid(text)) {
    replaced = utf8::replace_invalid(text);
    text = replaced;
  }
  EncodeScratch scratch;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  try {
    impl_->encode_text(text, scratch, ids);
  } catch (const RegexError& error) {
    // A pattern from tokenizer.json that fails on this text (PCRE2's match limit, say) is a
    // problem of that file, reported like the other bad-input errors.
    throw InputError(impl_->path, error.what());
  }
  if (!add_special_tokens) return ids;
  std::vector<int32_t> with_template;
  with_template.reserve(ids.size() + 8);
  for (const TemplatePart& part : impl_->single_template) {
    const std::vector<int32_t>& source = part.is_sequence ? ids : part.ids;
    with_template.insert(with_template.end(), source.begin(), source.end());
  }
  return with_template;
}

std::optional<int32_t> Tokenizer::bos_token_id() const {
  for (const TemplatePart& part : impl_->single_template) {
    if (part.is_sequence) return std::nullopt;
    if (!part.ids.empty()) return part.ids.front();
  }
  return std::nullopt;
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

const std::string& Tokenizer::path() const { return impl_->path; }

}  // namespace indexcache
