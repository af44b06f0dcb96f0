// Layer plans: written deterministically, read back, validated against the model, exported
// for serving engines, checked for drift, and resumable after SIGKILL.
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <signal.h>
#include <sys/wait.h>

#include "calibrate_run.h"
#include "catch_shim.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "layer_plan.h"
#include "model_config.h"
#include "safetensors_writer.h"
#include "session.h"
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
  explicit Workspace(const std::string& name = "dsv32_default", int data_copies = 1) {
    model = temp.file("model");
    copy_tree(golden_dir(name), model);
    data = temp.file("data.jsonl");
    std::string lines = read_text(golden_dir(name) + "/data.jsonl");
    std::string repeated;
    for (int i = 0; i < data_copies; ++i) repeated += lines;
    write_text(data, repeated);
  }
  std::string file(const std::string& name) const { return temp.file(name); }
  std::vector<std::string> search_arguments(const std::string& out, const std::string& keep = "1") const {
    return {"--model", model, "--data", data, "--keep-layers", keep, "--out", out};
  }
};

}  // namespace

TEST_CASE("a search writes a plan that reads back, is byte-stable and matches the golden search", "[plan]") {
  Workspace ws;
  ToolResult first = run_tool("indexcache-calibrate", ws.search_arguments(ws.file("a.yaml"), "2"));
  INFO(first.err);
  REQUIRE(first.status == 0);
  ToolResult second = run_tool("indexcache-calibrate", ws.search_arguments(ws.file("b.yaml"), "2"));
  REQUIRE(second.status == 0);
  std::string a = read_text(ws.file("a.yaml"));
  CHECK(stable_part(a) == stable_part(read_text(ws.file("b.yaml"))));
  CHECK(a.find("\nvolatile:") != std::string::npos);
  CHECK_FALSE(path_exists(ws.file("a.yaml.journal")));  // removed once the plan is written

  LayerPlan plan = read_plan(ws.file("a.yaml"));
  CHECK(plan_to_yaml(plan) == a);  // everything survives a round trip
  nlohmann::json expected = read_json_file(golden_dir("dsv32_default") + "/expected.json");
  const auto& trajectory = expected["greedy"]["trajectory"];
  REQUIRE(plan.trajectory.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(plan.trajectory[i].removed == trajectory[i]["removed"].get<int64_t>());
    CHECK(relative_error(plan.trajectory[i].loss, trajectory[i]["loss"].get<double>()) <= 1e-5);
  }
  CHECK(plan.pattern.text() == trajectory[3]["pattern"].get<std::string>());
  CHECK(plan.kept() == 2);
  CHECK(plan.full_layers() == std::vector<int64_t>{0, 5});
  CHECK(plan.model_type == "deepseek_v32");
  CHECK(plan.indexer_tensors.size() == 6 * 5);
  CHECK(plan.sources.size() == 1);
  CHECK(plan.sources[0].sha256.size() == 64);
  CHECK(plan.layer_forwards < plan.naive_layer_forwards);
  // Both uniform references with 2 F layers: index_topk_freq=5 at the engines' default offset 2
  // gives layers 0 and 1, and the label names both numbers.
  REQUIRE(plan.uniform.size() == 2);
  CHECK(plan.uniform[0].name == "index_topk_freq=5 offset=2");
  // The MTP layer of the fixture (num_nextn_predict_layers 1, tensors at layer 6) is listed.
  REQUIRE(plan.excluded_layers.size() == 1);
  CHECK(plan.excluded_layers[0].layer == 6);
  CHECK(plan.excluded_layers[0].role == "next-n");
  CHECK(plan.uniform[0].pattern.text() == "FFSSSS");
  CHECK(plan.uniform[1].pattern.text() == "FSSFSS");
}

TEST_CASE("exports carry the pattern in the form each engine reads", "[plan]") {
  Workspace ws;
  REQUIRE(run_tool("indexcache-calibrate", ws.search_arguments(ws.file("p.yaml"), "3")).status == 0);
  LayerPlan plan = read_plan(ws.file("p.yaml"));

  ToolResult vllm = run_tool("indexcache-calibrate", {"--plan", ws.file("p.yaml"), "--export", "vllm"});
  REQUIRE(vllm.status == 0);
  nlohmann::json v = nlohmann::json::parse(vllm.out);
  CHECK(v["use_index_cache"] == true);
  CHECK(v["index_topk_pattern"] == plan.pattern.text());
  CHECK(vllm.out == "{\"use_index_cache\": true, \"index_topk_pattern\": \"" + plan.pattern.text() + "\"}\n");

  ToolResult sglang = run_tool("indexcache-calibrate", {"--plan", ws.file("p.yaml"), "--export", "sglang"});
  REQUIRE(sglang.status == 0);
  CHECK(nlohmann::json::parse(sglang.out)["index_topk_pattern"] == plan.pattern.text());

  ToolResult hf = run_tool("indexcache-calibrate",
                           {"--plan", ws.file("p.yaml"), "--export", "hf-config", "--export-out", ws.file("config.json")});
  REQUIRE(hf.status == 0);
  std::string exported = read_text(ws.file("config.json"));
  ModelConfig config = parse_model_config(exported, "exported");  // still a valid DSA config
  nlohmann::json json = nlohmann::json::parse(exported);
  CHECK(json["index_topk_pattern"] == plan.pattern.text());
  CHECK(plan.pattern.layers() == config.num_hidden_layers);
  CHECK(json["hidden_size"] == 64);
}

TEST_CASE("validate checks the schema, the model fingerprint and pipeline stages", "[plan]") {
  Workspace ws;
  REQUIRE(run_tool("indexcache-calibrate", ws.search_arguments(ws.file("p.yaml"), "2")).status == 0);
  ToolResult ok = run_tool("indexcache-calibrate", {"--validate", ws.file("p.yaml"), "--model", ws.model});
  INFO(ok.err);
  CHECK(ok.status == 0);
  CHECK(ok.out.find("ok:") == 0);
  // The plan is FSSSSF: stage starts 0 and 5 fit, 0 and 3 do not.
  CHECK(run_tool("indexcache-calibrate", {"--validate", ws.file("p.yaml"), "--pp-stages", "0,5"}).status == 0);
  ToolResult stages = run_tool("indexcache-calibrate", {"--validate", ws.file("p.yaml"), "--pp-stages", "0,3"});
  CHECK(stages.status == 2);
  CHECK(stages.err.find("layer 3") != std::string::npos);

  SECTION("other weights: the fingerprint names the tensor") {
    Workspace other("dsv32_yarn");  // same shapes and names, different weights
    ToolResult mismatch = run_tool("indexcache-calibrate", {"--validate", ws.file("p.yaml"), "--model", other.model});
    CHECK(mismatch.status == 2);
    CHECK(mismatch.error_lines() == 1);
    CHECK(mismatch.err.find("model.layers.0.self_attn.indexer.wq_b.weight") != std::string::npos);
  }
  SECTION("another model type") {
    Workspace glm("glm_dsa");
    ToolResult mismatch = run_tool("indexcache-calibrate", {"--validate", ws.file("p.yaml"), "--model", glm.model});
    CHECK(mismatch.status == 2);
    CHECK(mismatch.err.find("model.model_type") != std::string::npos);
  }
  SECTION("malformed plans") {
    std::string text = read_text(ws.file("p.yaml"));
    auto broken = [&](const std::string& from, const std::string& to) {
      std::string copy = text;
      copy.replace(copy.find(from), from.size(), to);
      write_text(ws.file("bad.yaml"), copy);
      return run_tool("indexcache-calibrate", {"--validate", ws.file("bad.yaml")});
    };
    ToolResult pattern = broken("pattern: \"FSSSSF\"", "pattern: \"FSSSF\"");
    CHECK(pattern.status == 2);
    CHECK(pattern.err.find("bad.yaml") != std::string::npos);
    CHECK(broken("kept: 2", "kept: 3").err.find("kept") != std::string::npos);
    CHECK(broken("format: \"indexcache-layer-plan/1\"", "format: \"other\"").status == 2);
    CHECK(broken("seq_len: 0", "seq_len: [1]").err.find("calibration.seq_len") != std::string::npos);
    write_text(ws.file("bad.yaml"), "model: [unclosed\n");
    CHECK(run_tool("indexcache-calibrate", {"--validate", ws.file("bad.yaml")}).status == 2);
    CHECK(run_tool("indexcache-calibrate", {"--validate", ws.file("missing.yaml")}).status == 2);
  }
}

TEST_CASE("check exits 0 when the plan is reproduced and 1 with a diff when it drifted", "[plan]") {
  Workspace ws;
  REQUIRE(run_tool("indexcache-calibrate", ws.search_arguments(ws.file("p.yaml"), "2")).status == 0);
  ToolResult same = run_tool("indexcache-calibrate", {"--check", ws.file("p.yaml")});
  INFO(same.err);
  CHECK(same.status == 0);
  CHECK(same.out.find("up to date") != std::string::npos);
  // A plan whose recorded pattern differs from what its settings produce, consistent in itself
  // (read_plan refuses a pattern its trajectory does not end in): the search removed 5, 4, 3, 2.
  LayerPlan drifted = read_plan(ws.file("p.yaml"));
  LayerPattern pattern = LayerPattern::all_full(6);
  for (std::size_t i = 0; i < drifted.trajectory.size(); ++i) {
    pattern = pattern.with_shared(5 - static_cast<int64_t>(i));
    drifted.trajectory[i].removed = 5 - static_cast<int64_t>(i);
    drifted.trajectory[i].pattern = pattern;
  }
  drifted.pattern = pattern;
  REQUIRE(pattern.text() == "FFSSSS");
  write_text(ws.file("drift.yaml"), plan_to_yaml(drifted));
  ToolResult drift = run_tool("indexcache-calibrate", {"--check", ws.file("drift.yaml")});
  CHECK(drift.status == 1);
  CHECK(drift.out.find("FFSSSS") != std::string::npos);
  CHECK(drift.out.find("FSSSSF") != std::string::npos);
  CHECK(drift.out.find("now S (indexer dropped): layers 1") != std::string::npos);
}

TEST_CASE("search command-line errors exit 2 and write nothing", "[plan][bad-input]") {
  Workspace ws;
  const std::string out = ws.file("p.yaml");
  auto rejected = [&](std::vector<std::string> arguments, const std::string& fragment) {
    ToolResult result = run_tool("indexcache-calibrate", arguments);
    INFO(result.err);
    CHECK(result.status == 2);
    CHECK(result.error_lines() == 1);
    CHECK(result.err.find(fragment) != std::string::npos);
    CHECK_FALSE(path_exists(out));
  };
  std::vector<std::string> base = {"--model", ws.model, "--data", ws.data, "--out", out};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> all = base;
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  };
  rejected(with({"--keep", "0"}), "--keep");
  rejected(with({"--keep", "1.5"}), "--keep");
  rejected(with({"--keep-layers", "0"}), "--keep-layers");
  rejected(with({"--keep-layers", "7"}), "[1, 6]");
  rejected(with({"--keep", "0.5", "--keep-layers", "2"}), "not both");
  rejected(with({}), "--keep");
  rejected(with({"--keep", "0.5", "--pp-stages", "0,9"}), "--pp-stages");
  rejected({"--model", ws.model, "--data", ws.data, "--keep", "0.5", "--out", "/nonexistent/dir/p.yaml"}, "/nonexistent/dir");
  rejected({"--model", ws.model, "--data", ws.data, "--keep", "0.5", "--out", "/proc/p.yaml"}, "not writable");
  rejected(with({"--keep", "0.5", "--resume"}), "journal");
  rejected(with({"--keep", "0.5", "--bogus-flag"}), "bogus");
}

TEST_CASE("a journal from a different run is refused, not mixed in", "[plan][bad-input]") {
  Workspace ws;
  const std::string out = ws.file("p.yaml");
  // The journal a --keep-layers 3 run leaves behind after one step, resumed with --keep-layers 2.
  SessionOptions options;
  options.model_dir = ws.model;
  options.data_specs = {ws.data};
  Session session = open_session(options);
  SearchSettings settings;
  settings.keep_layers = 3;
  nlohmann::json journal = {{"format", "indexcache-journal/1"},
                            {"run", search_identity(session, options, settings, 3)},
                            {"baseline_loss", 6.8},
                            {"steps", nlohmann::json::array()}};
  write_text(out + ".journal", journal.dump());
  ToolResult result = run_tool("indexcache-calibrate", {"--model", ws.model, "--data", ws.data, "--keep-layers", "2",
                                                        "--out", out, "--resume"});
  INFO(result.err);
  CHECK(result.status == 2);
  CHECK(result.error_lines() == 1);
  CHECK(result.err.find("different run: target_kept was 3, now 2") != std::string::npos);
  CHECK_FALSE(path_exists(out));
  // The same journal resumes a --keep-layers 3 run.
  ToolResult same = run_tool("indexcache-calibrate", {"--model", ws.model, "--data", ws.data, "--keep-layers", "3",
                                                      "--out", out, "--resume"});
  CHECK(same.status == 0);
}

namespace {

// The number of steps in the journal at `path`: -1 when there is none (yet, or any more). The
// journal is replaced by rename, so a read sees one whole version.
int journal_steps(const std::string& path) {
  if (!path_exists(path)) return -1;
  const nlohmann::json journal = nlohmann::json::parse(read_text(path), nullptr, false);
  if (journal.is_discarded() || !journal.contains("steps") || !journal["steps"].is_array()) return -1;
  return static_cast<int>(journal["steps"].size());
}

}  // namespace

TEST_CASE("SIGKILL at random points, then --resume, gives the uninterrupted plan", "[plan][resume]") {
  // Kill points are chosen by the run's progress, not by the clock, so CPU load cannot move
  // them outside the search: each trial picks how many steps must be committed first
  // (0: anywhere from start-up on) and then a random time within the next step (the previous
  // step's duration as the scale). A trial whose run ended (or wrote its plan) before the kill
  // is repeated with the kill sooner, so every trial kills a run in progress.
  // 40 sequences make each of the five steps last long enough to land inside.
  Workspace ws("dsv32_default", 10);
  const std::string reference = ws.file("reference.yaml");
  const auto reference_started = std::chrono::steady_clock::now();
  ToolResult full = run_tool("indexcache-calibrate", ws.search_arguments(reference, "1"));
  const double full_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - reference_started).count();
  REQUIRE(full.status == 0);
  const std::string expected = stable_part(read_text(reference));
  std::mt19937 random(20261123);
  std::uniform_real_distribution<double> fraction(0.0, 1.0);
  int resumed_with_steps = 0;
  constexpr int kTrials = 6;
  for (int trial = 0; trial < kTrials; ++trial) {
    const std::string out = ws.file("trial" + std::to_string(trial) + ".yaml");
    const std::string journal = out + ".journal";
    // Trials 0 and 1 kill before any step is committed or during the first; the rest after 1..3 steps.
    const int wait_steps = trial < 2 ? 0 : 1 + static_cast<int>(random() % 3);
    double when = fraction(random);
    std::vector<std::string> arguments = ws.search_arguments(out, "1");
    bool killed = false;
    int steps_at_kill = -1;
    double waited = 0.0;
    for (int attempt = 0; attempt < 8 && !killed; ++attempt, when /= 2) {
      std::remove(out.c_str());
      std::remove(journal.c_str());
      const auto started = std::chrono::steady_clock::now();
      const pid_t child = start_tool("indexcache-calibrate", arguments);
      REQUIRE(child >= 0);
      auto seconds_since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      };
      // Phase 1: until `wait_steps` steps are committed, timing the step before (the scale of phase 2).
      int status = 0;
      bool ended = false;
      auto last_change = started;
      double step_seconds = 0.0;
      int seen = -1;
      while (!ended && wait_steps > 0 && seen < wait_steps) {
        if (::waitpid(child, &status, WNOHANG) == child) {
          ended = true;
          break;
        }
        const int now = journal_steps(journal);
        if (now > seen) {
          step_seconds = seconds_since(last_change);
          last_change = std::chrono::steady_clock::now();
          seen = now;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      // With nothing to wait for, the scale is a whole run's start-up and first step.
      if (wait_steps == 0) step_seconds = full_seconds / 3;
      // Phase 2: a random time into the next step, then SIGKILL if the run is still going.
      waited = when * step_seconds;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(waited);
      while (!ended && std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(child, &status, WNOHANG) == child) ended = true;
        else std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (!ended) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
      }
      killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
      steps_at_kill = journal_steps(journal);
      if (killed && path_exists(out)) {
        // Killed between the plan's rename and the journal's removal: the plan is whole (the
        // rename is atomic), so it must be the final one; the trial is repeated with a sooner kill.
        CHECK(stable_part(read_text(out)) == expected);
        killed = false;
      }
    }
    INFO("trial " << trial << ": killed " << waited << " s after " << wait_steps << " committed steps; journal has "
                  << steps_at_kill);
    REQUIRE(killed);  // eight tries, each killing sooner, always catch the run before its end
    CHECK_FALSE(path_exists(out));  // a killed run never leaves a plan
    CHECK(steps_at_kill >= (wait_steps > 0 ? wait_steps : -1));
    if (path_exists(journal)) {
      ++resumed_with_steps;
      std::vector<std::string> resume = arguments;
      resume.push_back("--resume");
      ToolResult finished = run_tool("indexcache-calibrate", resume);
      INFO(finished.err);
      REQUIRE(finished.status == 0);
    } else {
      REQUIRE(run_tool("indexcache-calibrate", arguments).status == 0);  // killed before any step
    }
    CHECK(stable_part(read_text(out)) == expected);
    CHECK_FALSE(path_exists(journal));
  }
  CHECK(resumed_with_steps >= 4);  // trials 2..5 always had committed steps
}
