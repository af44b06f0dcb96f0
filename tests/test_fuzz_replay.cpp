// Replays the fuzz corpora through the fuzz targets' own checks (tests/fuzz/fuzz_harness.h):
// the committed seeds (tests/fuzz/corpus/<target>/) and every input that once crashed a
// target (tests/fuzz/regressions/<target>/, one file per fixed bug). The fuzzers themselves
// need clang (scripts/fuzz.sh); this keeps their findings fixed in every build, sanitizers
// included. A contract violation aborts the test process with a description.
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "catch_shim.h"
#include "file_system.h"
#include "fuzz/fuzz_harness.h"
#include "tool_runner.h"

using namespace indexcache;

namespace {

using Target = void (*)(const uint8_t*, std::size_t);

// Feeds every file of tests/fuzz/{corpus,regressions}/<name>/ to `target`; returns how many.
int replay(const std::string& name, Target target) {
  int inputs = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const std::string directory = std::string(INDEXCACHE_SOURCE_DIR) + "/tests/fuzz/" + kind + "/" + name;
    for (const std::string& file : list_directory(directory)) {
      INFO(kind << "/" << name << "/" << file);
      const std::string bytes = testing::read_text(join_path(directory, file));
      target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++inputs;
    }
  }
  return inputs;
}

// The calibration-data target points $INDEXCACHE_DATA_DIR at its own folder; other tests in
// this process must see the old value again.
class DataDirectoryRestorer {
 public:
  DataDirectoryRestorer() {
    if (const char* old = std::getenv("INDEXCACHE_DATA_DIR")) old_ = old;
  }
  ~DataDirectoryRestorer() {
    if (old_) {
      ::setenv("INDEXCACHE_DATA_DIR", old_->c_str(), 1);
    } else {
      ::unsetenv("INDEXCACHE_DATA_DIR");
    }
  }

 private:
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("fuzz corpora and regressions replay cleanly", "[fuzz]") {
  CHECK(replay("safetensors", fuzz::fuzz_safetensors) >= 5);
  CHECK(replay("model_config", fuzz::fuzz_model_config) >= 5);
  CHECK(replay("tokenizer", fuzz::fuzz_tokenizer) >= 5);
  CHECK(replay("layer_plan", fuzz::fuzz_layer_plan) >= 2);
  CHECK(replay("journal", fuzz::fuzz_journal) >= 3);
  DataDirectoryRestorer restorer;
  CHECK(replay("calibration_data", fuzz::fuzz_calibration_data) >= 5);
}
