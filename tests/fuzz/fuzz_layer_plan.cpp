// libFuzzer entry point for the layer-plan YAML reader and its round trip through the writer (lib/layer_plan.cpp).
// The work is in fuzz_harness.h, shared with the Catch2 replay of the corpus.
#include "fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  indexcache::fuzz::fuzz_layer_plan(data, size);
  return 0;
}
