// Issue 16, item 2: one run at a time per --out. A search takes an advisory lock (<plan>.lock,
// flock) before any model work; a second search or a --resume on the same --out while the first
// is alive exits 2 naming it (pid, host, start time, command); a killed holder leaves no lock
// behind (the kernel releases it), so the next run locks the stale file again.
//
// The process tests run the real tool twice at once. The first run is held alive by the
// journal's test-only delay (INDEXCACHE_TEST_JOURNAL_DELAY_MS: each journal write waits before
// its rename), so the second run meets it in the middle of its search every time.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "input_error.h"
#include "run_lock.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A copy of the 6-layer golden model and its data, and the search arguments for an --out.
struct Workspace {
  TempDir temp;
  std::string model, data;
  Workspace() {
    model = temp.file("model");
    copy_tree(golden_dir("dsv32_default"), model);
    data = temp.file("data.jsonl");
    copy_tree(golden_dir("dsv32_default") + "/data.jsonl", data);
  }
  std::vector<std::string> search(const std::string& out, const std::string& keep_layers) const {
    return {"--model", model, "--data", data, "--keep-layers", keep_layers, "--out", out, "--no-report"};
  }
};

bool alive(pid_t child) {
  int status = 0;
  return ::waitpid(child, &status, WNOHANG) == 0;
}

// Waits (up to `seconds`) until `ready` holds while `child` runs; false if it ended or time ran out.
template <typename Ready>
bool wait_while_running(pid_t child, Ready ready, int seconds = 120) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    if (!alive(child)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// True once the lock file at `path` records `child` as its holder.
bool holds_lock(const std::string& path, pid_t child) {
  return RunLock::recorded_owner(path).pid == std::to_string(child);
}

void kill_and_reap(pid_t child) {
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
}

}  // namespace

TEST_CASE("run lock: a second holder is refused naming the first; release removes the file", "[lock]") {
  TempDir temp;
  const std::string path = temp.file("plan.yaml.lock");
  {
    RunLock first = RunLock::take(path, "plan.yaml (and its journal)");
    REQUIRE(first.held());
    const RunOwner owner = RunLock::recorded_owner(path);
    CHECK(owner.pid == std::to_string(::getpid()));
    CHECK_FALSE(owner.host.empty());
    CHECK(owner.started.size() == 20);  // 2026-12-04T18:40:03Z
    CHECK(contains(owner.command, "indexcache_tests"));
    // flock locks belong to an open file description: a second take conflicts even in-process.
    const auto refused = input_error_message([&] { RunLock::take(path, "plan.yaml (and its journal)"); });
    REQUIRE(refused);
    CHECK(contains(*refused, "plan.yaml (and its journal): in use by another run: pid " + std::to_string(::getpid())));
    CHECK(contains(*refused, "lock file " + path));
    CHECK(first.held());  // the refused attempt closed only its own descriptor
  }
  CHECK_FALSE(path_exists(path));
  RunLock again = RunLock::take(path, "plan.yaml");
  CHECK(again.held());
}

TEST_CASE("run lock: a stale lock file is locked again; a link or folder at its name is refused", "[lock]") {
  TempDir temp;
  const std::string path = temp.file("p.lock");
  write_text(path, "pid: 999999\nhost: elsewhere\nstarted: 2020-01-01T00:00:00Z\ncommand: gone\n");
  {
    RunLock lock = RunLock::take(path, "p");
    CHECK(RunLock::recorded_owner(path).pid == std::to_string(::getpid()));
    CHECK(RunLock::recorded_owner(path).command != "gone");
  }
  REQUIRE(::symlink(temp.file("elsewhere").c_str(), path.c_str()) == 0);
  const auto link = input_error_message([&] { RunLock::take(path, "p"); });
  REQUIRE(link);
  CHECK(contains(*link, path + ": cannot create the lock file"));
  CHECK_FALSE(path_exists(temp.file("elsewhere")));  // the link was not followed
  ::unlink(path.c_str());
  REQUIRE(make_directories(path));
  const auto folder = input_error_message([&] { RunLock::take(path, "p"); });
  REQUIRE(folder);
  CHECK(contains(*folder, path));
}

TEST_CASE("two searches on one --out: the second exits 2 naming the first; after kill -9 the next run resumes",
          "[lock][tools][crash]") {
  Workspace ws;
  const std::string out = ws.temp.file("plan.yaml");
  const std::string lock = out + ".lock";
  const std::string journal = out + ".journal";
  // The first run, slowed down so it is still searching when the others start.
  const pid_t first = start_tool("indexcache-calibrate", ws.search(out, "1"), "INDEXCACHE_TEST_JOURNAL_DELAY_MS=3000");
  REQUIRE(first > 0);
  // Its lock exists from before the model loads; wait for its first committed step as well, so
  // the --resume below has a live run's journal to be refused.
  REQUIRE(wait_while_running(first, [&] { return holds_lock(lock, first) && path_exists(journal); }));

  const ToolResult second = run_tool("indexcache-calibrate", ws.search(out, "2"));
  INFO("second: " << second.err);
  CHECK(second.status == 2);
  CHECK(second.error_lines() == 1);
  CHECK(contains(second.err, "error: " + out + " (and its journal): in use by another run: pid " +
                                 std::to_string(first) + " on host "));
  CHECK(contains(second.err, "--keep-layers 1"));  // the holder's command line, from the lock file
  CHECK(contains(second.err, ", started 20"));

  const ToolResult resume = run_tool("indexcache-calibrate", [&] {
    std::vector<std::string> arguments = ws.search(out, "1");
    arguments.push_back("--resume");
    return arguments;
  }());
  INFO("resume: " << resume.err);
  CHECK(resume.status == 2);
  CHECK(resume.error_lines() == 1);
  CHECK(contains(resume.err, "in use by another run: pid " + std::to_string(first)));
  // Both were refused while the first run was alive, and it still owns plan and journal.
  REQUIRE(alive(first));
  CHECK(holds_lock(lock, first));
  CHECK_FALSE(path_exists(out));

  kill_and_reap(first);
  REQUIRE(path_exists(lock));  // left behind, but no longer locked
  std::vector<std::string> third_arguments = ws.search(out, "1");
  third_arguments.push_back("--resume");
  const ToolResult third = run_tool("indexcache-calibrate", third_arguments);
  INFO("third: " << third.err);
  CHECK(third.status == 0);
  CHECK(path_exists(out));
  CHECK_FALSE(path_exists(lock));  // released and removed at the end
  CHECK_FALSE(path_exists(journal));
}

TEST_CASE("a run killed before its first search step: --resume says to start again without it",
          "[lock][tools][crash]") {
  Workspace ws;
  const std::string out = ws.temp.file("plan.yaml");
  // The journal's first write is held before its rename, so no step is committed at the kill.
  const pid_t run = start_tool("indexcache-calibrate", ws.search(out, "2"), "INDEXCACHE_TEST_JOURNAL_DELAY_MS=60000");
  REQUIRE(run > 0);
  REQUIRE(wait_while_running(run, [&] { return holds_lock(out + ".lock", run); }));
  kill_and_reap(run);
  REQUIRE_FALSE(path_exists(out + ".journal"));

  std::vector<std::string> arguments = ws.search(out, "2");
  arguments.push_back("--resume");
  const ToolResult resume = run_tool("indexcache-calibrate", arguments);
  INFO(resume.err);
  CHECK(resume.status == 2);
  CHECK(resume.error_lines() == 1);
  CHECK(contains(resume.err, "error: " + out + ".journal: nothing to resume"));
  CHECK(contains(resume.err, "start it again without --resume"));
  CHECK_FALSE(path_exists(out + ".lock"));  // the refused run released the lock it took

  const ToolResult again = run_tool("indexcache-calibrate", ws.search(out, "2"));
  INFO(again.err);
  CHECK(again.status == 0);
  CHECK(path_exists(out));
}
