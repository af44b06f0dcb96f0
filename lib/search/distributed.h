// Candidate parallelism of the greedy search over torch.distributed (c10d), the engine torchrun
// and Slurm jobs already run: N processes ("ranks") each hold the whole model, every greedy step's
// candidates are split over them in contiguous blocks, the ranks exchange their (layer, loss)
// pairs with an allgather and every rank commits the same layer (lowest loss, ties to the lowest
// layer). A candidate's loss is computed by the same forwards whichever rank runs it, so the plan
// does not depend on the number of ranks (docs/SCALING.md, "Distributed search").
//
// Backends: gloo (CPU, and the liveness check on every device) and NCCL for the exchange when the
// search runs on CUDA. The version differences of libtorch's c10d (1.13 on Debian, 2.x with the
// Python package) live in c10d_backends.cpp alone.
#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "search_step.h"

namespace indexcache {

// Who this process is among the ones a launcher started: torchrun's RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT, or Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (with
// MASTER_ADDR/MASTER_PORT set by the job script) when torchrun's are absent.
struct RankEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // index among the ranks of this host: picks the GPU for a bare --device cuda
  std::string master_addr;
  int master_port = 0;
  // torchrun's agent already serves the store at MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE),
  // so no rank starts one; `attempt` (TORCHELASTIC_RESTART_COUNT) keeps each restart's keys apart.
  bool agent_store = false;
  std::string attempt = "0";
  bool distributed() const { return world_size > 1; }
};

// Reads the environment through `lookup` (std::getenv by default; tests pass their own). WORLD_SIZE
// unset or 1 (and no SLURM_NTASKS above 1) is one process: rank 0 of 1, nothing else read. Throws
// InputError naming the variable for a value that is not a number, a rank outside [0, world size)
// or a missing MASTER_ADDR/MASTER_PORT.
using EnvironmentLookup = std::function<const char*(const char*)>;
RankEnvironment read_rank_environment(const EnvironmentLookup& lookup = {});

// The device a rank computes on: "cuda" without an index becomes cuda:(local_rank mod the visible
// GPUs), so torchrun's 8 ranks of one host take a GPU each, and ranks given one GPU each through
// CUDA_VISIBLE_DEVICES (srun --gpus-per-task=1) all take their cuda:0. Anything else is kept.
std::string rank_device(const std::string& device, int local_rank, int64_t visible_gpus);
// GPUs this process sees (0 with a CPU-only libtorch).
int64_t visible_gpus();

// Rank `rank`'s share of a step's candidates [first, end): contiguous in candidate order and
// balanced by `costs` (layer forwards per candidate), each candidate going to the rank whose share
// of the total cost holds the candidate's midpoint. Ranks may get none when there are fewer
// candidates than ranks. Depends only on its arguments, so every rank computes every block alike.
struct CandidateBlock {
  std::size_t first = 0;
  std::size_t end = 0;
};
CandidateBlock candidate_block(const std::vector<int64_t>& costs, int rank, int world_size);

// The greedy search's commit rule: the candidate with the lowest loss, the earliest in `candidates`
// (ascending layers: the lowest layer) among equal losses. `candidates` must not be empty.
CandidateLoss lowest_loss(const std::vector<CandidateLoss>& candidates);

// How the ranks talk: the wait at any one exchange before a missing rank is named, and the backend
// for the exchange ("auto": nccl when the search runs on CUDA, else gloo; "gloo"; "nccl").
struct DistributedOptions {
  std::chrono::seconds timeout{1800};
  std::string backend = "auto";
};

// Whether this build has libtorch's c10d gloo backend (libtorch with gloo's headers).
bool distributed_search_built();

class RankGroupBackends;

// This process's membership of the ranks' process group. Every rank calls the collectives below in
// the same order. When a rank dies or hangs, the others stop at the next collective: rank 0 waits
// up to the timeout for every rank (c10d's monitored barrier), names the ranks that did not come,
// and every live rank throws InputError with that message (exit status 2): "rank 2 did not reach
// step 4's exchange within 30 s (it died or hangs)". When rank 0 itself is gone, the others name it.
class RankGroup {
 public:
  // Joins the group `environment` describes: rank 0 (or torchrun's agent) serves a c10d TCPStore at
  // MASTER_ADDR:MASTER_PORT and the ranks build their process groups through it, waiting up to the
  // timeout for each other. `device`: where the search runs (NCCL needs it). Throws InputError.
  static std::unique_ptr<RankGroup> join(const RankEnvironment& environment, const DistributedOptions& options,
                                         const c10::Device& device);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int rank() const { return environment_.rank; }
  int world_size() const { return environment_.world_size; }
  const std::string& backend() const { return backend_; }  // of the candidate exchange: "gloo" or "nccl"

  // Throws InputError on every rank when `text` (the search's identity: model, data, settings) is
  // not the same on all ranks, naming the first rank that differs from rank 0 and `what`.
  void require_same(const std::string& what, const std::string& text);

  // Every rank's (layer, loss) pairs of greedy step `step`, merged into the order of `layers` (the
  // step's candidates, the same list on every rank); each rank passes its own block's pairs.
  // Throws std::logic_error when the merged pairs are not exactly `layers`.
  std::vector<CandidateLoss> gather_candidates(int64_t step, const std::vector<CandidateLoss>& mine,
                                               const std::vector<int64_t>& layers);

  // Rank 0's `values` on every rank (other ranks' arguments are ignored). `what` names the
  // exchange in messages ("the resumed steps").
  std::vector<double> broadcast_from_rank0(const std::string& what, const std::vector<double>& values);

 private:
  RankGroup(RankEnvironment environment, DistributedOptions options);
  // Runs one collective named `what` (same order on every rank): posts this rank's arrival in the
  // store, passes the monitored barrier, then `exchange`; any failure becomes fail(what, ...).
  void collective(const std::string& what, const std::function<void()>& exchange);
  [[noreturn]] void fail(const std::string& what, const std::string& error);

  RankEnvironment environment_;
  DistributedOptions options_;
  std::string backend_;
  std::unique_ptr<RankGroupBackends> backends_;
  int64_t collectives_ = 0;  // how many collectives this rank has started: keys of each apart
};

// The resumed steps of a search (from rank 0's journal) as numbers for broadcast_from_rank0, and back.
std::vector<double> encode_steps(const std::vector<SearchStep>& steps);
std::vector<SearchStep> decode_steps(const std::vector<double>& values, int64_t layers);

}  // namespace indexcache
