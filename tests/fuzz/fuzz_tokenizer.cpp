// libFuzzer entry point for tokenizer.json loading and encoding (lib/tokenizer*.cpp).
// The work is in fuzz_harness.h, shared with the Catch2 replay of the corpus.
#include "fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  indexcache::fuzz::fuzz_tokenizer(data, size);
  return 0;
}
