// A Hugging Face `tokenizer.json` (tokenizers library format) read and applied in C++:
// normalizer -> added/special tokens split out -> pre-tokenizer -> byte-level BPE -> post-processor.
// Components indexcache does not implement are refused by name when loading, never approximated.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace indexcache {

class Tokenizer {
 public:
  // Parses and checks `path`. Throws InputError naming the file and the component/field.
  static Tokenizer load(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text` (UTF-8; invalid bytes handled as documented in tokenizer.cpp), with the
  // post-processor's template (BOS/EOS) applied when `add_special_tokens` is true.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;

  // The BOS token the post-processor's single-sequence template puts first, if any.
  std::optional<int32_t> bos_token_id() const;
  // The largest id + 1 over the model vocabulary and the added tokens.
  int64_t vocab_size() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace indexcache
