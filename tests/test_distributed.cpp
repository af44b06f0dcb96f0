// The distributed search (lib/search/distributed.h) on torch.distributed's gloo backend: the bundled
// tiny model searched by 1, 2 and 3 processes started the way torchrun starts them (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT on a free port) writes the same plan; a rank
// killed mid-search makes the others exit 2 naming it, with the journal intact; --resume after
// every rank was killed finishes with the same plan on another number of ranks. Plus the pure
// parts: the environment, the candidate blocks, the commit rule, the resumed steps' encoding.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "catch_shim.h"
#include "distributed.h"
#include "error.h"
#include "file_system.h"
#include "golden_fixture.h"
#include "safetensors_writer.h"
#include "tool_runner.h"

using namespace indexcache;
using namespace indexcache::testing;
using namespace indexcache::test_support;

namespace {

using Clock = std::chrono::steady_clock;

// The plan without its `volatile:` block (date, wall time, device, this process's forwards).
std::string stable_part(const std::string& plan_text) { return plan_text.substr(0, plan_text.find("\nvolatile:")); }

// A value of the plan's volatile block, e.g. "layer_forwards_run".
std::string volatile_field(const std::string& plan_text, const std::string& field) {
  const std::size_t at = plan_text.find("\n  " + field + ": ", plan_text.find("\nvolatile:"));
  if (at == std::string::npos) return "";
  const std::size_t begin = at + 5 + field.size();
  return plan_text.substr(begin, plan_text.find('\n', begin) - begin);
}

// A TCP port no one listens on right now (the kernel's pick for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A small search of the bundled tiny model on the bundled mix: 4 sequences of 256 tokens (128
// past index_topk), every step down to 2 of 12 indexers: a few seconds per run on 2 cores.
std::vector<std::string> search_arguments(const std::string& out, int timeout_seconds) {
  return {"--num-samples", "4", "--seq-len", "256", "--keep-layers", "2", "--out", out, "--no-report",
          "--dist-timeout", std::to_string(timeout_seconds)};
}

struct Process {
  pid_t pid = -1;
  std::string err_path;
  int status = -1;  // exit status, or 128 + signal, once reaped
  std::string err() const { return read_text(err_path); }
};

// Starts indexcache-calibrate as rank `rank` of `world_size` (world size 0: no launcher variables
// at all), stdout and stderr into files under `directory`. One CPU thread per process so that three
// ranks on two cores do not fight over them (every run in these tests uses the same setting).
Process start_rank(const std::string& directory, const std::vector<std::string>& arguments, int rank, int world_size,
                   int port) {
  Process process;
  process.err_path = directory + "/rank" + std::to_string(rank) + "-of-" + std::to_string(world_size) + "-" +
                     std::to_string(port) + ".err";
  const std::string out_path = process.err_path.substr(0, process.err_path.size() - 4) + ".out";
  const std::string tool = std::string(INDEXCACHE_TOOLS_DIR) + "/indexcache-calibrate";
  process.pid = ::fork();
  REQUIRE(process.pid >= 0);
  if (process.pid == 0) {
    for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS",
                             "SLURM_PROCID", "SLURM_LOCALID", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT"}) {
      ::unsetenv(name);
    }
    if (world_size > 0) {
      ::setenv("WORLD_SIZE", std::to_string(world_size).c_str(), 1);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    }
    ::setenv("OMP_NUM_THREADS", "1", 1);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(process.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv{const_cast<char*>(tool.c_str())};
    for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execv(tool.c_str(), argv.data());
    ::_exit(127);
  }
  return process;
}

void reap(Process& process, int options = 0) {
  int raw = 0;
  if (::waitpid(process.pid, &raw, options) == process.pid) {
    process.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  }
}

// Waits for every process, killing what is left after `limit`; returns the seconds it took.
double wait_all(std::vector<Process>& processes, std::chrono::seconds limit) {
  const Clock::time_point start = Clock::now();
  for (;;) {
    bool running = false;
    for (Process& process : processes) {
      if (process.status < 0) reap(process, WNOHANG);
      running = running || process.status < 0;
    }
    if (!running) break;
    if (Clock::now() - start > limit) {
      for (Process& process : processes) {
        if (process.status < 0) {
          ::kill(process.pid, SIGKILL);
          reap(process);
        }
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs the search as `world_size` ranks (0: one process without launcher variables) and waits.
std::vector<Process> run_ranks(const std::string& directory, const std::vector<std::string>& arguments, int world_size) {
  const int port = free_port();
  std::vector<Process> processes;
  for (int rank = 0; rank < std::max(world_size, 1); ++rank) {
    processes.push_back(start_rank(directory, arguments, rank, world_size, port));
  }
  wait_all(processes, std::chrono::seconds(300));
  return processes;
}

// Waits until `path` exists and holds at least `steps` committed steps, or `limit` passes.
bool wait_for_journal(const std::string& path, std::size_t steps, std::chrono::seconds limit) {
  const Clock::time_point start = Clock::now();
  while (Clock::now() - start < limit) {
    if (path_exists(path)) {
      const nlohmann::json journal = nlohmann::json::parse(read_text(path), nullptr, false);
      if (!journal.is_discarded() && journal.contains("steps") && journal["steps"].size() >= steps) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Reference plan of the search from one process without launcher variables.
std::string single_process_plan(const TempDir& temp) {
  const std::string out = temp.file("single.yaml");
  std::vector<Process> single = run_ranks(temp.path(), search_arguments(out, 60), 0);
  INFO(single[0].err());
  REQUIRE(single[0].status == 0);
  return read_text(out);
}

}  // namespace

TEST_CASE("distributed search: 1, 2 and 3 gloo ranks write byte-identical plans; only rank 0 writes or reports",
          "[distributed]") {
  REQUIRE(distributed_search_built());
  TempDir temp;
  const std::string single = single_process_plan(temp);
  for (int world_size : {2, 3}) {
    INFO(world_size << " ranks");
    TempDir run;
    const std::string out = run.file("plan.yaml");
    std::vector<Process> ranks = run_ranks(temp.path(), search_arguments(out, 60), world_size);
    for (const Process& rank : ranks) {
      INFO(rank.err());
      REQUIRE(rank.status == 0);
    }
    const std::string plan = read_text(out);
    CHECK(stable_part(plan) == stable_part(single));
    // Rank 0 ran only its share of the candidates; the plan says how it ran.
    CHECK(std::stoll(volatile_field(plan, "layer_forwards_run")) <
          std::stoll(volatile_field(single, "layer_forwards_run")));
    CHECK(volatile_field(plan, "device").find("rank 0 of " + std::to_string(world_size) + " (gloo)") != std::string::npos);
    // Nothing but the plan: no journal left, no second plan or temporary file from another rank.
    CHECK(list_directory(run.path()) == std::vector<std::string>{"plan.yaml"});
    // Progress and the summary come from rank 0 alone.
    CHECK(ranks[0].err().find("step 1:") != std::string::npos);
    for (int rank = 1; rank < world_size; ++rank) CHECK(ranks[rank].err().empty());
  }
}

TEST_CASE("distributed search: a killed rank makes the others exit 2 within the timeout, naming it", "[distributed]") {
  REQUIRE(distributed_search_built());
  TempDir temp;
  const std::string out = temp.file("plan.yaml");
  constexpr int kTimeout = 20;  // wide enough for a rank starved by a loaded 2-core machine
  const int port = free_port();
  std::vector<Process> ranks;
  for (int rank = 0; rank < 3; ++rank) ranks.push_back(start_rank(temp.path(), search_arguments(out, kTimeout), rank, 3, port));
  // Rank 0 committed step 1: every rank is inside step 2 (or its exchange) when rank 2 dies.
  REQUIRE(wait_for_journal(out + ".journal", 1, std::chrono::seconds(120)));
  ::kill(ranks[2].pid, SIGKILL);
  reap(ranks[2]);
  std::vector<Process> live{ranks[0], ranks[1]};
  const double seconds = wait_all(live, std::chrono::seconds(120));
  for (const Process& rank : live) {
    INFO(rank.err());
    CHECK(rank.status == 2);
    CHECK(rank.err().find("error: distributed search: rank 2 did not reach step ") != std::string::npos);
  }
  // Rank 0 finishes step 2's share, waits the timeout for rank 2, names it: well within a minute.
  CHECK(seconds < kTimeout + 30);
  CHECK_FALSE(path_exists(out));
  const nlohmann::json journal = read_json_file(out + ".journal");
  CHECK(journal["steps"].size() >= 1);
}

TEST_CASE("distributed search: --resume after every rank was killed finishes with the same plan on other ranks",
          "[distributed][resume]") {
  REQUIRE(distributed_search_built());
  TempDir temp;
  const std::string single = single_process_plan(temp);
  const std::string out = temp.file("plan.yaml");
  const int port = free_port();
  std::vector<Process> ranks;
  for (int rank = 0; rank < 2; ++rank) ranks.push_back(start_rank(temp.path(), search_arguments(out, 60), rank, 2, port));
  REQUIRE(wait_for_journal(out + ".journal", 2, std::chrono::seconds(120)));
  for (Process& rank : ranks) ::kill(rank.pid, SIGKILL);
  for (Process& rank : ranks) reap(rank);
  REQUIRE_FALSE(path_exists(out));
  std::vector<std::string> again = search_arguments(out, 60);
  again.push_back("--resume");
  std::vector<Process> resumed = run_ranks(temp.path(), again, 3);
  for (const Process& rank : resumed) {
    INFO(rank.err());
    REQUIRE(rank.status == 0);
  }
  CHECK(resumed[0].err().find("resuming from") != std::string::npos);
  CHECK(stable_part(read_text(out)) == stable_part(single));
  CHECK_FALSE(path_exists(out + ".journal"));
}

TEST_CASE("distributed search: launcher environment, candidate blocks, commit rule", "[distributed]") {
  auto lookup_in = [](std::map<std::string, const char*> values) {
    return [values](const char* name) -> const char* {
      const auto found = values.find(name);
      return found == values.end() ? nullptr : found->second;
    };
  };
  SECTION("no launcher, or a world of one, is one process") {
    CHECK_FALSE(read_rank_environment(lookup_in({})).distributed());
    CHECK_FALSE(read_rank_environment(lookup_in({{"WORLD_SIZE", "1"}, {"RANK", "0"}})).distributed());
    CHECK_FALSE(read_rank_environment(lookup_in({{"SLURM_NTASKS", "1"}, {"SLURM_PROCID", "0"}})).distributed());
  }
  SECTION("torchrun's variables, then Slurm's") {
    const RankEnvironment torchrun = read_rank_environment(lookup_in(
        {{"WORLD_SIZE", "8"}, {"RANK", "5"}, {"LOCAL_RANK", "5"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"},
         {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}, {"SLURM_NTASKS", "3"}}));
    CHECK(torchrun.world_size == 8);
    CHECK(torchrun.rank == 5);
    CHECK(torchrun.local_rank == 5);
    CHECK(torchrun.master_addr == "node0");
    CHECK(torchrun.master_port == 29500);
    CHECK(torchrun.agent_store);
    CHECK(torchrun.attempt == "2");
    const RankEnvironment slurm = read_rank_environment(lookup_in({{"SLURM_NTASKS", "16"}, {"SLURM_PROCID", "9"},
                                                                   {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "10.0.0.1"},
                                                                   {"MASTER_PORT", "1234"}}));
    CHECK(slurm.world_size == 16);
    CHECK(slurm.rank == 9);
    CHECK(slurm.local_rank == 1);
    CHECK_FALSE(slurm.agent_store);
  }
  SECTION("bad values name the variable") {
    auto message = [&](std::map<std::string, const char*> values) {
      try {
        read_rank_environment(lookup_in(values));
      } catch (const InputError& error) {
        return std::string(error.what());
      }
      return std::string("no error");
    };
    CHECK(message({{"WORLD_SIZE", "two"}}).find("environment variable WORLD_SIZE: \"two\"") == 0);
    CHECK(message({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}})
              .find("environment variable RANK: \"2\" is not a rank below WORLD_SIZE=2") == 0);
    CHECK(message({{"WORLD_SIZE", "2"}}).find("environment variable RANK: is not set") == 0);
    CHECK(message({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_PORT", "1"}}).find("environment variable MASTER_ADDR: is not set") == 0);
    CHECK(message({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}}).find("environment variable MASTER_ADDR: is not set") == 0);
    CHECK(message({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}})
              .find("environment variable MASTER_PORT") == 0);
  }
  SECTION("a bare --device cuda takes the GPU of the rank's local index") {
    CHECK(rank_device("cuda", 5, 8) == "cuda:5");
    CHECK(rank_device("cuda", 5, 1) == "cuda:0");  // one visible GPU per rank (srun --gpus-per-task=1)
    CHECK(rank_device("cuda:3", 5, 8) == "cuda:3");
    CHECK(rank_device("cpu", 5, 8) == "cpu");
  }
  SECTION("candidate blocks are contiguous, cover every candidate once and balance the layer forwards") {
    // A 61-layer step with every layer but 0 a candidate: candidate c costs 61 - c forwards.
    std::vector<int64_t> costs;
    for (int64_t layer = 1; layer < 61; ++layer) costs.push_back(61 - layer);
    for (int world_size : {1, 2, 3, 8, 60, 100}) {
      std::size_t next = 0;
      int64_t total = 0, largest = 0;
      for (int rank = 0; rank < world_size; ++rank) {
        const CandidateBlock block = candidate_block(costs, rank, world_size);
        CHECK(block.first == next);
        CHECK(block.end >= block.first);
        next = block.end;
        int64_t cost = 0;
        for (std::size_t i = block.first; i < block.end; ++i) cost += costs[i];
        total += cost;
        largest = std::max(largest, cost);
      }
      CHECK(next == costs.size());
      // No rank carries more than its share plus one candidate.
      CHECK(largest <= total / world_size + 60);
    }
    CHECK(candidate_block(costs, 0, 2).end == 18);  // 60+...+43 = 927 of 1830 forwards
  }
  SECTION("the commit rule: lowest loss, ties to the lowest layer") {
    CHECK(lowest_loss({{3, 2.5}, {5, 2.25}, {7, 2.25}, {9, 2.75}}).layer == 5);
    CHECK(lowest_loss({{1, 1.0}}).layer == 1);
  }
  SECTION("resumed steps survive their encoding") {
    std::vector<SearchStep> steps(2);
    steps[0].removed = 4;
    steps[0].loss = 2.125;
    steps[0].candidates = {{1, 2.5}, {4, 2.125}, {5, 2.25}};
    steps[1].removed = 1;
    steps[1].loss = 2.375;
    steps[1].candidates = {{1, 2.375}, {5, 2.5}};
    const std::vector<SearchStep> decoded = decode_steps(encode_steps(steps), 6);
    REQUIRE(decoded.size() == 2);
    CHECK(decoded[1].pattern.text() == "FSFFSF");
    CHECK(decoded[0].candidates[2].loss == 2.25);
    CHECK(decoded[1].removed == 1);
  }
}
