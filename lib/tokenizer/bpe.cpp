#include "bpe.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "unicode_utf8.h"

namespace indexcache::tokenizer_detail {
namespace {

bool stands_for_itself(int byte) {
  return (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

// Raw bytes of a byte-level spelling, or nullopt when a character is outside the alphabet
// (such entries, e.g. special tokens, can never come out of byte-level BPE).
std::optional<std::string> raw_bytes_of(std::string_view spelling) {
  std::string raw;
  std::size_t position = 0;
  while (position < spelling.size()) {
    const int byte = byte_level_byte(utf8::decode(spelling, position));
    if (byte < 0) return std::nullopt;
    raw.push_back(static_cast<char>(byte));
  }
  return raw;
}

std::string byte_fallback_spelling(unsigned char byte) {
  char buffer[8];
  std::snprintf(buffer, sizeof(buffer), "<0x%02X>", byte);
  return buffer;
}

// Min-heap order of merge candidates: lowest rank first, then leftmost.
bool later_candidate(const BpeScratch::Candidate& left, const BpeScratch::Candidate& right) {
  if (left.rank != right.rank) return left.rank > right.rank;
  return left.position > right.position;
}

void add_symbol(BpeScratch& scratch, int32_t id, int32_t length) {
  auto& symbols = scratch.symbols;
  const auto index = static_cast<int32_t>(symbols.size());
  if (!symbols.empty()) symbols.back().next = index;
  symbols.push_back({id, index - 1, -1, length});
}

// The 68 bytes that do not stand for themselves, in byte order: U+0100 + i stands for the i-th.
const std::vector<uint8_t>& shifted_bytes() {
  static const std::vector<uint8_t> bytes = [] {
    std::vector<uint8_t> list;
    for (int byte = 0; byte < 256; ++byte) {
      if (!stands_for_itself(byte)) list.push_back(static_cast<uint8_t>(byte));
    }
    return list;
  }();
  return bytes;
}

}  // namespace

char32_t byte_level_char(uint8_t byte) {
  if (stands_for_itself(byte)) return byte;
  const auto& shifted = shifted_bytes();
  const auto rank = std::lower_bound(shifted.begin(), shifted.end(), byte) - shifted.begin();
  return 0x100 + static_cast<char32_t>(rank);
}

int byte_level_byte(char32_t character) {
  if (character < 0x100) return stands_for_itself(static_cast<int>(character)) ? static_cast<int>(character) : -1;
  const auto& shifted = shifted_bytes();
  if (character - 0x100 >= shifted.size()) return -1;
  return shifted[character - 0x100];
}

// Immutable string -> id map whose keys are views into one arena (lookups need no allocation).
class BpeModel::StringTable {
 public:
  explicit StringTable(const std::vector<std::pair<std::string, int32_t>>& entries) {
    std::size_t total = 0;
    for (const auto& entry : entries) total += entry.first.size();
    arena_.reserve(total);
    std::vector<std::size_t> offsets;
    offsets.reserve(entries.size());
    for (const auto& entry : entries) {
      offsets.push_back(arena_.size());
      arena_ += entry.first;
    }
    ids_.reserve(entries.size());
    for (std::size_t index = 0; index < entries.size(); ++index) {
      ids_[std::string_view(arena_.data() + offsets[index], entries[index].first.size())] = entries[index].second;
    }
  }
  std::optional<int32_t> find(std::string_view key) const {
    const auto found = ids_.find(key);
    if (found == ids_.end()) return std::nullopt;
    return found->second;
  }
  std::size_t size() const { return ids_.size(); }

 private:
  std::string arena_;
  std::unordered_map<std::string_view, int32_t> ids_;
};

// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class BpeModel::PairTable {
 public:
  struct Entry {
    uint64_t key;
    uint32_t rank;
    int32_t merged_id;
  };

  explicit PairTable(std::size_t expected) {
    std::size_t capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    entries_.assign(capacity, Entry{kEmpty, 0, 0});
    mask_ = capacity - 1;
  }

  // A pair listed twice keeps its last rank, as a map built from the list in order would.
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged_id) {
    const uint64_t key = key_of(left, right);
    std::size_t slot = slot_of(key);
    while (entries_[slot].key != kEmpty && entries_[slot].key != key) slot = (slot + 1) & mask_;
    entries_[slot] = {key, rank, merged_id};
  }

  const Entry* find(int32_t left, int32_t right) const {
    const uint64_t key = key_of(left, right);
    for (std::size_t slot = slot_of(key);; slot = (slot + 1) & mask_) {
      if (entries_[slot].key == key) return &entries_[slot];
      if (entries_[slot].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t key_of(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  std::size_t slot_of(uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 17) & mask_;
  }
  std::vector<Entry> entries_;
  std::size_t mask_;
};

BpeModel::BpeModel(const BpeConfig& config)
    : spellings_(std::make_unique<StringTable>(config.vocab)),
      merges_(std::make_unique<PairTable>(config.merges.size())),
      fuse_unk_(config.fuse_unk),
      byte_fallback_(config.byte_fallback),
      ignore_merges_(config.ignore_merges),
      byte_level_(config.byte_level) {
  for (const auto& entry : config.vocab) max_id_ = std::max(max_id_, entry.second);

  std::vector<std::pair<std::string, int32_t>> raw_entries;
  if (byte_level_) {
    for (const auto& entry : config.vocab) {
      if (auto raw = raw_bytes_of(entry.first)) raw_entries.emplace_back(std::move(*raw), entry.second);
    }
  }
  raw_words_ = std::make_unique<StringTable>(raw_entries);
  for (int byte = 0; byte < 256; ++byte) {
    std::string spelling;
    utf8::append(spelling, byte_level_char(static_cast<uint8_t>(byte)));
    byte_ids_[byte] = spellings_->find(spelling).value_or(-1);
  }

  for (std::size_t rank = 0; rank < config.merges.size(); ++rank) {
    const auto& [left, right] = config.merges[rank];
    const std::string where = "model.merges[" + std::to_string(rank) + "] ";
    const auto left_id = spellings_->find(left);
    const auto right_id = spellings_->find(right);
    const auto merged_id = spellings_->find(left + right);
    if (!left_id) throw std::invalid_argument(where + "uses " + quoted(left) + ", which is not in model.vocab");
    if (!right_id) throw std::invalid_argument(where + "uses " + quoted(right) + ", which is not in model.vocab");
    if (!merged_id) {
      throw std::invalid_argument(where + "makes " + quoted(left + right) + ", which is not in model.vocab");
    }
    merges_->insert(*left_id, *right_id, static_cast<uint32_t>(rank), *merged_id);
  }

  if (config.unk_token) {
    unk_id_ = spellings_->find(*config.unk_token);
    if (!unk_id_) throw std::invalid_argument("model.unk_token " + quoted(*config.unk_token) + " is not in model.vocab");
  }
}

BpeModel::~BpeModel() = default;

std::optional<int32_t> BpeModel::token_id(std::string_view spelling) const { return spellings_->find(spelling); }

std::size_t BpeModel::vocab_entries() const { return spellings_->size(); }

void BpeModel::encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    // With ignore_merges a word that is itself in the vocabulary is one token.
    const auto whole = byte_level_ ? raw_words_->find(word) : spellings_->find(word);
    if (whole) {
      ids.push_back(*whole);
      return;
    }
  }
  scratch.key.assign(word.data(), word.size());
  if (lookup_cache(scratch.key, ids)) return;
  build_initial_symbols(word, scratch);
  merge_symbols(scratch);
  const std::size_t first = ids.size();
  for (const auto& symbol : scratch.symbols) {
    if (symbol.length != 0) ids.push_back(symbol.id);
  }
  store_cache(scratch.key, ids, first);
}

// One symbol per character (per byte for byte-level models). Characters missing from the
// vocabulary become byte-fallback tokens, or the unk token (fused when fuse_unk), or are
// dropped when the model has neither, exactly as the tokenizers library does.
void BpeModel::build_initial_symbols(std::string_view word, BpeScratch& scratch) const {
  scratch.symbols.clear();
  std::optional<std::pair<int32_t, int32_t>> pending_unknown;  // (unk id, length)
  std::string spelling;
  std::size_t position = 0;
  while (position < word.size()) {
    const std::size_t start = position;
    std::optional<int32_t> id;
    if (byte_level_) {
      const auto byte = static_cast<unsigned char>(word[position++]);
      if (byte_ids_[byte] >= 0) id = byte_ids_[byte];
      if (!id) {
        spelling.clear();
        utf8::append(spelling, byte_level_char(byte));
      }
    } else {
      position += utf8::sequence_length(static_cast<unsigned char>(word[position]));
      spelling.assign(word.data() + start, position - start);
      id = spellings_->find(spelling);
    }
    const auto length = static_cast<int32_t>(position - start);
    if (id) {
      if (pending_unknown) add_symbol(scratch, pending_unknown->first, pending_unknown->second);
      pending_unknown.reset();
      add_symbol(scratch, *id, length);
      continue;
    }
    if (byte_fallback_ && add_byte_fallback(spelling, scratch)) continue;
    add_unknown(length, scratch, pending_unknown);
  }
  if (pending_unknown) add_symbol(scratch, pending_unknown->first, pending_unknown->second);
}

// The library's byte fallback looks up "<0xHH>" for each UTF-8 byte of the character as the
// model spells it (for a byte-level model, of the byte-level character). All or nothing; a
// pending unk token is deliberately not flushed first (the library does not either).
bool BpeModel::add_byte_fallback(std::string_view spelling, BpeScratch& scratch) const {
  std::vector<int32_t> fallback;
  for (const char byte : spelling) {
    const auto id = spellings_->find(byte_fallback_spelling(static_cast<unsigned char>(byte)));
    if (!id) return false;
    fallback.push_back(*id);
  }
  for (const int32_t id : fallback) add_symbol(scratch, id, 1);
  return true;
}

void BpeModel::add_unknown(int32_t length, BpeScratch& scratch,
                           std::optional<std::pair<int32_t, int32_t>>& pending_unknown) const {
  if (!unk_id_) return;
  if (pending_unknown && fuse_unk_) {
    pending_unknown->second += length;
    return;
  }
  if (pending_unknown) add_symbol(scratch, pending_unknown->first, pending_unknown->second);
  pending_unknown = std::make_pair(*unk_id_, length);
}

// Applies merges lowest rank first, leftmost first among equal ranks, over a linked list of
// symbols with a priority queue of candidate pairs. A candidate is stale when its left symbol
// was merged away or its right neighbour changed; it is then skipped.
void BpeModel::merge_symbols(BpeScratch& scratch) const {
  auto& symbols = scratch.symbols;
  auto& queue = scratch.queue;
  queue.clear();
  for (std::size_t index = 0; index + 1 < symbols.size(); ++index) {
    if (const auto* merge = merges_->find(symbols[index].id, symbols[index + 1].id)) {
      queue.push_back({merge->rank, static_cast<uint32_t>(index), merge->merged_id});
    }
  }
  std::make_heap(queue.begin(), queue.end(), later_candidate);
  const auto push_candidate = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    if (const auto* merge = merges_->find(symbols[left].id, symbols[right].id)) {
      queue.push_back({merge->rank, static_cast<uint32_t>(left), merge->merged_id});
      std::push_heap(queue.begin(), queue.end(), later_candidate);
    }
  };
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), later_candidate);
    const BpeScratch::Candidate top = queue.back();
    queue.pop_back();
    auto& left = symbols[top.position];
    if (left.length == 0 || left.next < 0) continue;
    const int32_t right_index = left.next;
    const auto& right = symbols[right_index];
    const auto* merge = merges_->find(left.id, right.id);
    if (merge == nullptr || merge->merged_id != top.merged_id) continue;
    left.id = top.merged_id;
    left.length += right.length;
    left.next = right.next;
    symbols[right_index].length = 0;
    if (left.next >= 0) symbols[left.next].previous = static_cast<int32_t>(top.position);
    if (left.previous >= 0) push_candidate(left.previous);
    push_candidate(static_cast<int32_t>(top.position));
  }
}

bool BpeModel::lookup_cache(const std::string& key, std::vector<int32_t>& ids) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  const auto found = cache_.find(key);
  if (found == cache_.end()) return false;
  ids.insert(ids.end(), found->second.begin(), found->second.end());
  return true;
}

void BpeModel::store_cache(const std::string& key, const std::vector<int32_t>& ids, std::size_t from) const {
  if (key.size() >= kCacheMaxWordBytes) return;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheCapacity) return;  // full: keep what is there (as the library does)
  cache_.emplace(key, std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end()));
}

}  // namespace indexcache::tokenizer_detail
