// The BPE model of tokenizer.json: vocabulary, ranked merges and the merge loop, with a cache of
// encoded words. Byte-level vocabularies (GPT-2's byte-to-unicode alphabet) are mapped back to raw
// bytes when loading, so words are encoded straight from the UTF-8 input bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace indexcache::tokenizer_detail {

// GPT-2's bytes-to-unicode mapping: printable Latin-1 bytes stand for themselves, the other 68
// bytes for U+0100..U+0143 in byte order.
char32_t byte_level_char(uint8_t byte);
// The byte a byte-level character stands for, or -1 if it is not in the alphabet.
int byte_level_byte(char32_t character);

struct BpeConfig {
  std::vector<std::pair<std::string, int32_t>> vocab;       // as spelled in tokenizer.json
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  // Words are raw bytes and the vocabulary is spelled in the byte-level alphabet (the model sits
  // behind a ByteLevel pre-tokenizer); otherwise words are matched character by character.
  bool byte_level = true;
};

// Reusable buffers of the merge loop.
struct BpeScratch {
  struct Symbol {
    int32_t id;
    int32_t previous;  // index of the previous live symbol, -1 at the start
    int32_t next;      // index of the next symbol, -1 at the end
    int32_t length;    // 0 once merged into its left neighbour
  };
  struct Candidate {
    uint32_t rank;
    uint32_t position;
    int32_t merged_id;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> queue;
  std::string key;
};

class BpeModel {
 public:
  // Throws std::invalid_argument naming the model field when the configuration is inconsistent
  // (a merge of tokens that are not in the vocabulary, an unk_token outside it, ...).
  explicit BpeModel(const BpeConfig& config);
  ~BpeModel();
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized word (non-empty) to `ids`.
  void encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const;

  // The id of a vocabulary entry spelled as in tokenizer.json.
  std::optional<int32_t> token_id(std::string_view spelling) const;
  std::size_t vocab_entries() const;
  int32_t max_id() const { return max_id_; }

 private:
  class StringTable;
  class PairTable;

  void build_initial_symbols(std::string_view word, BpeScratch& scratch) const;
  void add_unknown(int32_t length, BpeScratch& scratch,
                   std::optional<std::pair<int32_t, int32_t>>& pending_unknown) const;
  bool add_byte_fallback(std::string_view spelling, BpeScratch& scratch) const;
  void merge_symbols(BpeScratch& scratch) const;
  bool lookup_cache(const std::string& key, std::vector<int32_t>& ids) const;
  void store_cache(const std::string& key, const std::vector<int32_t>& ids, std::size_t from) const;

  std::unique_ptr<StringTable> spellings_;   // tokenizer.json spelling -> id
  std::unique_ptr<StringTable> raw_words_;   // byte-level entries as raw bytes -> id
  std::unique_ptr<PairTable> merges_;
  int32_t byte_ids_[256];                    // byte-level: id of each byte's character, or -1
  std::optional<int32_t> unk_id_;
  bool fuse_unk_;
  bool byte_fallback_;
  bool ignore_merges_;
  bool byte_level_;
  int32_t max_id_ = -1;

  // Words already encoded. Only a cache: results never depend on it. Guarded by the mutex
  // because encode() is const and may run on several threads.
  static constexpr std::size_t kCacheCapacity = 10000;
  static constexpr std::size_t kCacheMaxWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace indexcache::tokenizer_detail
