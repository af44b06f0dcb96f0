// Crash safety: a run killed while it writes its resume journal resumes to the plan an
// uninterrupted run writes; non-finite activations or losses stop a run before any result is
// written; and every file the tools write goes through write_file_atomically.
//
// Kills during journal writes use a test-only hook: INDEXCACHE_TEST_JOURNAL_DELAY_MS makes each
// journal write wait between its complete, flushed temporary file and the rename
// (lib/search/search_journal.cpp). The test watches for the temporary file and sends SIGKILL while it
// exists, so the kill lands inside the write every time, not by chance.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "layer_plan.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

// The plan text without its `volatile:` block (the only part allowed to differ between runs).
std::string stable_part(const std::string& plan_text) { return plan_text.substr(0, plan_text.find("\nvolatile:")); }

struct Workspace {
  TempDir temp;
  std::string model, data;
  Workspace() {
    model = temp.file("model");
    copy_tree(golden_dir("dsv32_default"), model);
    data = temp.file("data.jsonl");
    copy_tree(golden_dir("dsv32_default") + "/data.jsonl", data);
  }
  std::string file(const std::string& name) const { return temp.file(name); }
  std::vector<std::string> search(const std::string& out) const {
    return {"--model", model, "--data", data, "--keep-layers", "1", "--out", out, "--no-report"};
  }
};

// Names in `directory` that start with `prefix`.
std::set<std::string> names_with_prefix(const std::string& directory, const std::string& prefix) {
  std::set<std::string> names;
  for (const std::string& name : list_directory(directory)) {
    if (name.compare(0, prefix.size(), prefix) == 0) names.insert(name);
  }
  return names;
}

// Starts the search, waits until its `write_number`-th journal write has its temporary file on
// disk (the hook holds it there), and kills it with SIGKILL. Returns false when the run ended
// before that write.
bool kill_during_journal_write(const Workspace& ws, const std::string& out, int write_number) {
  const pid_t child = start_tool("indexcache-calibrate", ws.search(out), "INDEXCACHE_TEST_JOURNAL_DELAY_MS=400");
  REQUIRE(child >= 0);
  const std::string prefix = file_name(out) + ".journal.tmp." + std::to_string(child) + ".";
  std::set<std::string> seen;
  bool killed = false;
  for (;;) {
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) break;  // finished first
    for (const std::string& name : names_with_prefix(ws.temp.path(), prefix)) seen.insert(name);
    if (static_cast<int>(seen.size()) >= write_number) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return killed;
}

// Every tensor of a safetensors file with `scale` applied to the one named `name`.
void scale_tensor(const std::string& path, const std::string& name, float scale) {
  std::vector<WriterTensor> tensors;
  {
    auto file = SafetensorsFile::open(path);
    for (const TensorInfo& info : file->tensors()) {
      const uint8_t* bytes = file->data(info);
      tensors.push_back({info.name, dtype_name(info.dtype), info.shape,
                         std::vector<uint8_t>(bytes, bytes + (info.end - info.begin))});
    }
  }
  bool found = false;
  for (WriterTensor& tensor : tensors) {
    if (tensor.name != name) continue;
    REQUIRE(tensor.dtype == "F32");
    for (std::size_t i = 0; i + 4 <= tensor.bytes.size(); i += 4) {
      float value = 0.0f;
      std::memcpy(&value, tensor.bytes.data() + i, 4);
      value *= scale;  // stays finite: |weights| < 1 and scale < FLT_MAX
      std::memcpy(tensor.bytes.data() + i, &value, 4);
    }
    found = true;
  }
  REQUIRE(found);
  write_safetensors(path, tensors);
}

}  // namespace

TEST_CASE("SIGKILL during journal writes, then --resume, gives the uninterrupted plan", "[plan][resume][crash]") {
  Workspace ws;
  const std::string reference = ws.file("reference.yaml");
  ToolResult full = run_tool("indexcache-calibrate", ws.search(reference));
  INFO(full.err);
  REQUIRE(full.status == 0);
  const std::string expected = stable_part(read_text(reference));

  // Writes 1..5 (keep 1 of 6 layers: five steps); always the first, second and last, then
  // random ones: five trials.
  std::mt19937 random(20261124);
  std::vector<int> writes = {1, 2, 5, static_cast<int>(random() % 5) + 1, static_cast<int>(random() % 5) + 1};
  for (std::size_t trial = 0; trial < writes.size(); ++trial) {
    const std::string out = ws.file("trial" + std::to_string(trial) + ".yaml");
    const std::string journal = out + ".journal";
    INFO("trial " << trial << ": killed during journal write " << writes[trial]);
    REQUIRE(kill_during_journal_write(ws, out, writes[trial]));
    CHECK_FALSE(path_exists(out));  // a killed run never leaves a plan
    // The interrupted write left its temporary file; the journal holds the steps before it.
    CHECK(names_with_prefix(ws.temp.path(), file_name(journal) + ".tmp.").size() == 1);
    if (writes[trial] == 1) {
      CHECK_FALSE(path_exists(journal));
    } else {
      nlohmann::json committed = read_json_file(journal);
      CHECK(committed["steps"].size() == static_cast<std::size_t>(writes[trial] - 1));
    }
    std::vector<std::string> again = ws.search(out);
    if (path_exists(journal)) again.push_back("--resume");
    ToolResult finished = run_tool("indexcache-calibrate", again);
    INFO(finished.err);
    REQUIRE(finished.status == 0);
    CHECK(stable_part(read_text(out)) == expected);
    CHECK_FALSE(path_exists(journal));
    // The dead writer's temporary file was cleaned up by the run that finished.
    CHECK(names_with_prefix(ws.temp.path(), file_name(journal) + ".tmp.").empty());
  }
}

TEST_CASE("non-finite activations stop the run naming the layer and the sequence; nothing is written",
          "[crash][nan]") {
  Workspace ws;
  // Finite weights whose products overflow float32: layer 1's attention output becomes Inf.
  // o_proj x 1e37 alone leaves some entries just under FLT_MAX (later RMSNorms then give
  // zeros, not Inf, on some BLAS builds); scaling the values (kv_b_proj) by 1e6 as well puts
  // attention output x o_proj orders of magnitude beyond FLT_MAX, so the overflow is certain.
  scale_tensor(ws.model + "/model.safetensors", "model.layers.1.self_attn.kv_b_proj.weight", 1e6f);
  scale_tensor(ws.model + "/model.safetensors", "model.layers.1.self_attn.o_proj.weight", 1e37f);
  SECTION("--eval") {
    ToolResult result = run_tool("indexcache-calibrate", {"--model", ws.model, "--data", ws.data, "--eval", "FSFSFS",
                                                          "--json", ws.file("out.json")});
    INFO(result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.find("calibration sequence 0: layer 1 produced NaN or Inf activations") != std::string::npos);
    CHECK_FALSE(path_exists(ws.file("out.json")));
  }
  SECTION("search") {
    ToolResult result = run_tool("indexcache-calibrate", ws.search(ws.file("p.yaml")));
    INFO(result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.find("layer 1 produced NaN or Inf activations") != std::string::npos);
    CHECK_FALSE(path_exists(ws.file("p.yaml")));
    CHECK_FALSE(path_exists(ws.file("p.yaml.journal")));
  }
}

TEST_CASE("a non-finite loss from finite activations never reaches a plan", "[crash][nan]") {
  Workspace ws;
  // The final hidden states are finite; the output head's logits overflow, so the NLL is NaN.
  scale_tensor(ws.model + "/model.safetensors", "lm_head.weight", 1e37f);
  ToolResult eval = run_tool("indexcache-calibrate", {"--model", ws.model, "--data", ws.data, "--eval", "FSFSFS",
                                                      "--json", ws.file("out.json")});
  INFO(eval.err);
  CHECK(eval.status == 2);
  CHECK(eval.error_lines() == 1);
  CHECK(eval.err.find("calibration sequence 0: the output head gave a NaN or Inf loss") != std::string::npos);
  CHECK_FALSE(path_exists(ws.file("out.json")));
  ToolResult search = run_tool("indexcache-calibrate", ws.search(ws.file("p.yaml")));
  INFO(search.err);
  CHECK(search.status == 2);
  CHECK(search.err.find("NaN or Inf loss") != std::string::npos);
  CHECK_FALSE(path_exists(ws.file("p.yaml")));
}

TEST_CASE("every file the tools write goes through write_file_atomically", "[crash]") {
  // Calls that create or write files. Only atomic_file.cpp (the atomic writer itself) and
  // file_system.cpp (copy_tree and temporary directories, used by tests and never for
  // outputs) may make them, and run_lock.cpp (a lock file, locked in place, so never renamed;
  // not an output); anything else that writes must use write_file_atomically.
  const std::vector<std::string> writers = {"ofstream", "O_WRONLY", "O_RDWR", "O_CREAT", "\"w\"", "\"wb\"",
                                            "\"a\"",      "\"ab\"",   "\"w+",   "creat(",  "fwrite("};
  const std::set<std::string> allowed = {"atomic_file.cpp", "file_system.cpp", "run_lock.cpp"};
  int files = 0;
  std::string violations;
  // tools/ and every wing folder of lib/.
  std::vector<std::string> folders = {"tools"};
  const std::string lib = std::string(INDEXCACHE_SOURCE_DIR) + "/lib";
  for (const std::string& wing : list_directory(lib)) {
    if (is_directory(join_path(lib, wing))) folders.push_back("lib/" + wing);
  }
  CHECK(folders.size() >= 11);
  for (const std::string& folder : folders) {
    const std::string directory = std::string(INDEXCACHE_SOURCE_DIR) + "/" + folder;
    for (const std::string& name : list_directory(directory)) {
      if (file_extension(name) != ".cpp" || allowed.count(name) != 0) continue;
      ++files;
      std::ifstream in(join_path(directory, name));
      std::string line;
      for (int number = 1; std::getline(in, line); ++number) {
        for (const std::string& writer : writers) {
          if (line.find(writer) != std::string::npos) {
            violations += folder + "/" + name + ":" + std::to_string(number) + ": " + line + "\n";
          }
        }
      }
    }
  }
  INFO("writes outside write_file_atomically:\n" << violations);
  CHECK(violations.empty());
  CHECK(files > 20);
}
