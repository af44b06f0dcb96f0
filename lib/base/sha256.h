// SHA-256 (FIPS 180-4), written here so fingerprints of checkpoints, data and plans need no
// crypto library. Digests are lowercase hex strings of 64 characters.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace indexcache {

// Streaming hash: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  // Adds `size` bytes at `data` to the message.
  void update(const void* data, std::size_t size);
  // Pads the message and returns its digest; the object is finished afterwards (a further
  // update() or hex_digest() throws std::logic_error).
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;       // bytes waiting in buffer_
  uint64_t message_bytes_ = 0;     // total length so far
  bool finished_ = false;
};

// Digest of one buffer.
std::string sha256_hex(const void* data, std::size_t size);

// Digest of a file's contents, read in chunks. InputError naming the file when it cannot be
// opened or read, or is not a regular file.
std::string sha256_file_hex(const std::string& path);

}  // namespace indexcache
