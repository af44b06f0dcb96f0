// Issue 17, hub ids: `--model org/name[@revision]` resolved offline from a Hugging Face cache
// (lib/checkpoint/hub_cache.h). The cache here is a fake one in the layout huggingface_hub
// writes: refs/<revision> holding a commit hash, snapshots/<commit>/ whose files are symbolic
// links into ../../blobs/, the blobs being the bundled tiny model's files.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "hub_cache.h"
#include "input_error.h"
#include "layer_plan.h"
#include "model_config.h"
#include "safetensors_writer.h"
#include "sha256.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const std::string kMainCommit = "1111111111111111111111111111111111111111";
const std::string kTaggedCommit = "2222222222222222222222222222222222222222";

// <root>/models--acme--tiny-dsa with refs main -> kMainCommit and v1 -> kTaggedCommit, both
// snapshots linking to the same blobs (copies of models/tiny-dsa's files, named by SHA-256).
struct FakeHubCache {
  TempDir temp;
  std::string root = temp.file("hub");
  std::string repository = root + "/models--acme--tiny-dsa";

  FakeHubCache() {
    REQUIRE(make_directories(repository + "/blobs"));
    REQUIRE(make_directories(repository + "/refs"));
    const std::string model = std::string(INDEXCACHE_SOURCE_DIR) + "/models/tiny-dsa";
    for (const std::string& commit : {kMainCommit, kTaggedCommit}) {
      REQUIRE(make_directories(snapshot(commit)));
      for (const char* name : {"config.json", "model.safetensors", "tokenizer.json"}) {
        const std::string blob = sha256_file_hex(model + "/" + name);
        if (!path_exists(repository + "/blobs/" + blob)) REQUIRE(copy_tree(model + "/" + name, repository + "/blobs/" + blob));
        REQUIRE(::symlink(("../../blobs/" + blob).c_str(), (snapshot(commit) + "/" + name).c_str()) == 0);
      }
    }
    write_text(repository + "/refs/main", kMainCommit);  // huggingface_hub writes the hash without a newline
    write_text(repository + "/refs/v1", kTaggedCommit + "\n");
  }
  std::string snapshot(const std::string& commit) const { return repository + "/snapshots/" + commit; }
  // The shell prefix that points a tool at this cache.
  std::string environment() const { return "HF_HUB_CACHE=" + shell_quote(root); }
};

// Sets an environment variable for one scope (nullptr: unset), restoring it afterwards.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnvironment() { old_.empty() ? ::unsetenv(name_) : ::setenv(name_, old_.c_str(), 1); }

 private:
  const char* name_;
  std::string old_;
};

std::string tiny_data() { return golden_dir("tiny_dsa") + "/data.jsonl"; }

}  // namespace

TEST_CASE("hub ids resolve offline from the Hugging Face cache", "[hub]") {
  FakeHubCache cache;
  ScopedEnvironment hub_cache("HF_HUB_CACHE", cache.root.c_str());

  const ModelLocation main = locate_model("acme/tiny-dsa");
  CHECK(main.directory == cache.snapshot(kMainCommit));
  REQUIRE(main.hub);
  CHECK(main.hub->id == "acme/tiny-dsa");
  CHECK(main.hub->revision == "main");
  CHECK(main.hub->commit == kMainCommit);
  CHECK(load_model_config(main.directory).num_hidden_layers == 12);  // read through the blob links

  const ModelLocation tagged = locate_model("acme/tiny-dsa@v1");
  CHECK(tagged.directory == cache.snapshot(kTaggedCommit));
  CHECK(tagged.hub->revision == "v1");
  CHECK(tagged.hub->commit == kTaggedCommit);

  const ModelLocation by_commit = locate_model("acme/tiny-dsa@" + kTaggedCommit);  // no ref names it
  CHECK(by_commit.directory == cache.snapshot(kTaggedCommit));
  CHECK(by_commit.hub->revision == kTaggedCommit);
  CHECK(by_commit.hub->commit == kTaggedCommit);

  // Anything that is not shaped like a hub id is a path for the checkpoint reader to report.
  CHECK_FALSE(locate_model("./acme/tiny-dsa").hub);
  CHECK_FALSE(locate_model("/no/such/dir").hub);
  CHECK_FALSE(looks_like_hub_id("a/b/c"));
  CHECK_FALSE(looks_like_hub_id("../x"));
  CHECK_FALSE(looks_like_hub_id("acme/tiny@../../etc"));
  CHECK(looks_like_hub_id("deepseek-ai/DeepSeek-V3.2@refs/pr/1"));
}

TEST_CASE("the cache is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub", "[hub]") {
  FakeHubCache cache;
  ScopedEnvironment no_hub_cache("HF_HUB_CACHE", nullptr);
  ScopedEnvironment no_xdg("XDG_CACHE_HOME", nullptr);
  {
    ScopedEnvironment home("HF_HOME", cache.temp.path().c_str());  // <HF_HOME>/hub is the fake cache
    CHECK(hub_cache_root().directory == cache.root);
    CHECK(locate_model("acme/tiny-dsa").directory == cache.snapshot(kMainCommit));
  }
  ScopedEnvironment no_home("HF_HOME", nullptr);
  REQUIRE(make_directories(cache.temp.file("user/.cache/huggingface")));
  REQUIRE(::symlink(cache.root.c_str(), cache.temp.file("user/.cache/huggingface/hub").c_str()) == 0);
  ScopedEnvironment user_home("HOME", cache.temp.file("user").c_str());
  CHECK(hub_cache_root().source == "~/.cache/huggingface/hub");
  CHECK(locate_model("acme/tiny-dsa@v1").hub->commit == kTaggedCommit);
}

TEST_CASE("a hub id that is not cached is exit 2 naming what was searched and how to download it", "[hub][bad-input]") {
  FakeHubCache cache;
  auto eval = [&](const std::string& model) {
    return run_tool("indexcache-calibrate", {"--model", model, "--data", tiny_data(), "--eval", "FSSSFSSSSSSF"},
                    cache.environment());
  };
  const ToolResult missing = eval("acme/missing");
  CHECK(missing.status == 2);
  CHECK(missing.error_lines() == 1);
  CHECK(contains(missing.err, "error: acme/missing: is not a local path, and is not in the Hugging Face cache (searched "
                              "./acme/missing and " + cache.root + "/models--acme--missing, the cache from $HF_HUB_CACHE)"));
  CHECK(contains(missing.err, "`huggingface-cli download acme/missing`"));
  CHECK(contains(missing.err, "`hf download acme/missing`"));

  const ToolResult revision = eval("acme/tiny-dsa@v9");
  CHECK(revision.status == 2);
  CHECK(contains(revision.err, "revision \"v9\" is not in the Hugging Face cache (searched " + cache.repository +
                               "/refs/v9; cached refs: main, v1)"));
  CHECK(contains(revision.err, "huggingface-cli download acme/tiny-dsa --revision v9"));

  const std::string unknown_commit(40, 'a');
  const ToolResult commit = eval("acme/tiny-dsa@" + unknown_commit);
  CHECK(commit.status == 2);
  CHECK(contains(commit.err, "commit " + unknown_commit + " is not in the Hugging Face cache (searched " +
                             cache.snapshot(unknown_commit) + ")"));

  std::remove((cache.snapshot(kTaggedCommit) + "/config.json").c_str());  // an interrupted download
  const ToolResult partial = eval("acme/tiny-dsa@v1");
  CHECK(partial.status == 2);
  CHECK(contains(partial.err, cache.snapshot(kTaggedCommit) + ": has no config.json"));

  // The overlap tool reads --model the same way (here for --layers, before any weights load).
  const ToolResult overlap = run_tool("indexcache-overlap", {"--model", "acme/missing", "--layers", "0-1", "--json",
                                                             cache.temp.file("o.json")},
                                      cache.environment());
  CHECK(overlap.status == 2);
  CHECK(contains(overlap.err, cache.root + "/models--acme--missing"));
}

TEST_CASE("a hub model runs, and a local path of the same spelling wins over the hub id", "[hub]") {
  FakeHubCache cache;
  const std::string json = cache.temp.file("eval.json");
  const ToolResult from_cache = run_tool("indexcache-calibrate", {"--model", "acme/tiny-dsa@v1", "--data", tiny_data(),
                                                                  "--num-samples", "1", "--eval", "FSSSFSSSSSSF",
                                                                  "--json", json},
                                         cache.environment());
  INFO(from_cache.err);
  REQUIRE(from_cache.status == 0);
  CHECK(read_json_file(json)["model"] == cache.snapshot(kTaggedCommit));

  // ./acme/tiny-dsa is a 6-layer model: a 6-character pattern only fits it, not the cached 12-layer one.
  REQUIRE(copy_tree(golden_dir("dsv32_default"), cache.temp.file("work/acme/tiny-dsa")));
  const ToolResult local = run_tool("indexcache-calibrate", {"--model", "acme/tiny-dsa", "--data",
                                                             golden_dir("dsv32_default") + "/data.jsonl", "--eval", "FSSSSF"},
                                    "cd " + shell_quote(cache.temp.file("work")) + " && " + cache.environment());
  INFO(local.err);
  CHECK(local.status == 0);
}

TEST_CASE("a plan made from a hub id records id, revision and commit, and --check resolves it", "[hub][plan]") {
  FakeHubCache cache;
  const std::string plan = cache.temp.file("plan.yaml");
  const ToolResult search = run_tool("indexcache-calibrate", {"--model", "acme/tiny-dsa@v1", "--data", tiny_data(),
                                                              "--num-samples", "2", "--keep-layers", "11", "--out", plan,
                                                              "--no-report"},
                                     cache.environment());
  INFO(search.err);
  REQUIRE(search.status == 0);
  const LayerPlan recorded = read_plan(plan);
  CHECK(recorded.model_path == "acme/tiny-dsa@v1");
  REQUIRE(recorded.model_hub);
  CHECK(recorded.model_hub->id == "acme/tiny-dsa");
  CHECK(recorded.model_hub->revision == "v1");
  CHECK(recorded.model_hub->commit == kTaggedCommit);
  CHECK_FALSE(contains(read_text(plan), cache.root));  // the cache's location is this machine's business

  const ToolResult check = run_tool("indexcache-calibrate", {"--check", plan}, cache.environment());
  INFO(check.out << check.err);
  CHECK(check.status == 0);
  CHECK(contains(check.out, "up to date"));

  // On a machine whose cache lacks the model: exit 2 with the download command.
  REQUIRE(make_directories(cache.temp.file("empty-cache")));
  const ToolResult uncached = run_tool("indexcache-calibrate", {"--check", plan},
                                       "HF_HUB_CACHE=" + shell_quote(cache.temp.file("empty-cache")));
  CHECK(uncached.status == 2);
  CHECK(contains(uncached.err, cache.temp.file("empty-cache") + "/models--acme--tiny-dsa"));
  CHECK(contains(uncached.err, "huggingface-cli download acme/tiny-dsa --revision v1"));
}
