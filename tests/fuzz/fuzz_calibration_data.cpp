// libFuzzer entry point for the calibration data reader: jsonl, txt and YAML mixes (lib/calibration_data.cpp).
// The work is in fuzz_harness.h, shared with the Catch2 replay of the corpus.
#include "fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  indexcache::fuzz::fuzz_calibration_data(data, size);
  return 0;
}
