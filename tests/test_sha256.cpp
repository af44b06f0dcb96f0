// SHA-256 against the FIPS 180-4 / NIST example vectors, at every padding boundary, streamed
// in odd chunk sizes, and over files.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "safetensors_writer.h"
#include "sha256.h"
// Catch2 last: ATen on Debian brings glog, whose CHECK macro would clash with Catch2's.
#undef CHECK
#include "catch_shim.h"

using indexcache::Sha256;
using indexcache::sha256_file_hex;
using indexcache::sha256_hex;
using namespace indexcache::test_support;

namespace {

std::string hash_of(const std::string& text) { return sha256_hex(text.data(), text.size()); }

// The message hashed through update() calls of `chunk` bytes each.
std::string streamed(const std::string& text, std::size_t chunk) {
  Sha256 hash;
  for (std::size_t start = 0; start < text.size(); start += chunk) {
    hash.update(text.data() + start, std::min(chunk, text.size() - start));
  }
  return hash.hex_digest();
}

}  // namespace

TEST_CASE("sha256: standard test vectors", "[sha256]") {
  CHECK(hash_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hash_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hash_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hash_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
                "nopqrstu") == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(hash_of(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256: message lengths around the padding boundaries", "[sha256]") {
  // 55 bytes is the longest message whose padding fits in one block; 56..63 need a second.
  const std::vector<std::pair<std::size_t, std::string>> vectors = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
  };
  for (const auto& [length, digest] : vectors) {
    INFO("length " << length);
    CHECK(hash_of(std::string(length, 'a')) == digest);
  }
}

TEST_CASE("sha256: streaming in any chunk size gives the one-shot digest", "[sha256]") {
  const std::string million(1000000, 'a');
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{63}, std::size_t{64}, std::size_t{65},
                                  std::size_t{1000}, std::size_t{65536}}) {
    INFO("chunk " << chunk);
    CHECK(streamed(million, chunk) == expected);
  }
  // Empty updates change nothing.
  Sha256 hash;
  hash.update(nullptr, 0);
  hash.update("abc", 3);
  hash.update("", 0);
  CHECK(hash.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("sha256: a finished hash refuses more input", "[sha256]") {
  Sha256 hash;
  hash.update("abc", 3);
  CHECK(hash.hex_digest().size() == 64);
  CHECK_THROWS_AS(hash.update("x", 1), std::logic_error);
  CHECK_THROWS_AS(hash.hex_digest(), std::logic_error);
}

TEST_CASE("sha256: files, including ones longer than the read chunk", "[sha256]") {
  TempDir dir;
  const std::string empty = dir.file("empty");
  write_text(empty, "");
  CHECK(sha256_file_hex(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  const std::string million = dir.file("million");
  write_text(million, std::string(1000000, 'a'));
  CHECK(sha256_file_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  // 3 MiB + 7 bytes of varied content: several full reads and a short one.
  std::string varied(3 * 1024 * 1024 + 7, '\0');
  for (std::size_t i = 0; i < varied.size(); ++i) varied[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
  const std::string large = dir.file("large");
  write_text(large, varied);
  CHECK(sha256_file_hex(large) == hash_of(varied));
}

TEST_CASE("sha256: missing files and directories are input errors", "[sha256][errors]") {
  TempDir dir;
  const std::string missing = dir.file("nothing.bin");
  auto message = input_error_message([&] { sha256_file_hex(missing); });
  REQUIRE(message.has_value());
  CHECK(message->rfind(missing + ": cannot open", 0) == 0);
  message = input_error_message([&] { sha256_file_hex(dir.path()); });
  REQUIRE(message.has_value());
  CHECK(*message == dir.path() + ": is not a regular file");
}
