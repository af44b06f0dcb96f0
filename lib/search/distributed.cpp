#include "distributed.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <stdexcept>

#include "c10d_backends.h"
#include "error.h"
#include "layer_pattern.h"
#include "sha256.h"

namespace indexcache {

// ---------------------------------------------------------------------------------------------
// Environment

namespace {

// The launcher's variable names: torchrun's, or Slurm's when torchrun's are absent.
struct VariableNames {
  const char* world_size;
  const char* rank;
  const char* local_rank;
};
constexpr VariableNames kTorchrun{"WORLD_SIZE", "RANK", "LOCAL_RANK"};
constexpr VariableNames kSlurm{"SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"};

class Environment {
 public:
  explicit Environment(const EnvironmentLookup& lookup) : lookup_(lookup) {}

  std::optional<std::string> text(const char* name) const {
    const char* value = lookup_ ? lookup_(name) : std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  }

  // A whole non-negative decimal number in [minimum, maximum].
  int number(const char* name, const std::string& value, int minimum, int maximum, const std::string& meaning) const {
    const bool digits = !value.empty() && value.size() <= 9 && value.find_first_not_of("0123456789") == std::string::npos;
    const long parsed = digits ? std::stol(value) : -1;
    if (!digits || parsed < minimum || parsed > maximum) {
      throw InputError(std::string("environment variable ") + name,
                       "\"" + value + "\" is not " + meaning + " (" + std::to_string(minimum) + ".." +
                           std::to_string(maximum) + ")");
    }
    return static_cast<int>(parsed);
  }

  std::string required(const char* name, const std::string& why) const {
    std::optional<std::string> value = text(name);
    if (!value) throw InputError(std::string("environment variable ") + name, "is not set: " + why);
    return *value;
  }

 private:
  const EnvironmentLookup& lookup_;
};

}  // namespace

RankEnvironment read_rank_environment(const EnvironmentLookup& lookup) {
  const Environment environment(lookup);
  const VariableNames names = environment.text(kTorchrun.world_size) ? kTorchrun : kSlurm;
  RankEnvironment result;
  const std::optional<std::string> world_text = environment.text(names.world_size);
  if (!world_text) return result;
  const int world_size = environment.number(names.world_size, *world_text, 1, 1 << 20, "a number of processes");
  if (world_size == 1) return result;  // one process: exactly as without a launcher
  const std::string launched = std::string(names.world_size) + "=" + *world_text;
  result.world_size = world_size;
  result.rank = environment.number(names.rank, environment.required(names.rank, launched + " needs this process's rank"), 0,
                                   world_size - 1, "a rank below " + launched);
  if (std::optional<std::string> local = environment.text(names.local_rank)) {
    result.local_rank = environment.number(names.local_rank, *local, 0, world_size - 1, "a rank on this host");
  }
  const std::string meeting = launched + ": the ranks meet at MASTER_ADDR:MASTER_PORT (rank 0's host and a free port; "
                                         "torchrun sets both, a Slurm job script exports them; docs/SCALING.md)";
  result.master_addr = environment.required("MASTER_ADDR", meeting);
  result.master_port = environment.number("MASTER_PORT", environment.required("MASTER_PORT", meeting), 1, 65535, "a TCP port");
  result.agent_store = environment.text("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  result.attempt = environment.text("TORCHELASTIC_RESTART_COUNT").value_or("0");
  return result;
}

std::string rank_device(const std::string& device, int local_rank, int64_t visible_gpus) {
  if (device != "cuda" || visible_gpus <= 0) return device;
  return "cuda:" + std::to_string(local_rank % visible_gpus);
}

int64_t visible_gpus() { return static_cast<int64_t>(torch::cuda::device_count()); }

// ---------------------------------------------------------------------------------------------
// Splitting and committing

CandidateBlock candidate_block(const std::vector<int64_t>& costs, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) throw std::logic_error("candidate_block: bad rank");
  int64_t total = 0;
  for (int64_t cost : costs) total += std::max<int64_t>(cost, 1);
  // Candidate i belongs to the rank whose equal share of the total cost holds its midpoint:
  // owner = floor(world x (before + cost / 2) / total), which never decreases along the list.
  CandidateBlock block{costs.size(), costs.size()};
  int64_t before = 0;
  bool started = false;
  for (std::size_t i = 0; i < costs.size(); ++i) {
    const int64_t cost = std::max<int64_t>(costs[i], 1);
    const int64_t owner = std::min<int64_t>(world_size - 1, world_size * (2 * before + cost) / (2 * total));
    if (owner == rank && !started) {
      block.first = i;
      started = true;
    }
    if (owner > rank) {
      if (!started) block.first = i;
      block.end = i;
      return block;
    }
    before += cost;
  }
  return block;
}

CandidateLoss lowest_loss(const std::vector<CandidateLoss>& candidates) {
  if (candidates.empty()) throw std::logic_error("lowest_loss: no candidates");
  CandidateLoss best = candidates.front();
  for (const CandidateLoss& candidate : candidates) {
    if (candidate.loss < best.loss) best = candidate;  // strictly lower: ties keep the earlier (lower) layer
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Resumed steps as numbers

std::vector<double> encode_steps(const std::vector<SearchStep>& steps) {
  std::vector<double> values{static_cast<double>(steps.size())};
  for (const SearchStep& step : steps) {
    values.push_back(static_cast<double>(step.removed));
    values.push_back(step.loss);
    values.push_back(static_cast<double>(step.candidates.size()));
    for (const CandidateLoss& candidate : step.candidates) {
      values.push_back(static_cast<double>(candidate.layer));
      values.push_back(candidate.loss);
    }
  }
  return values;
}

std::vector<SearchStep> decode_steps(const std::vector<double>& values, int64_t layers) {
  std::size_t at = 0;
  auto next = [&]() {
    if (at >= values.size()) throw std::logic_error("decode_steps: truncated");
    return values[at++];
  };
  std::vector<SearchStep> steps(static_cast<std::size_t>(next()));
  LayerPattern pattern = LayerPattern::all_full(layers);
  for (SearchStep& step : steps) {
    step.removed = static_cast<int64_t>(next());
    step.loss = next();
    step.candidates.resize(static_cast<std::size_t>(next()));
    for (CandidateLoss& candidate : step.candidates) {
      candidate.layer = static_cast<int64_t>(next());
      candidate.loss = next();
    }
    pattern = pattern.with_shared(step.removed);
    step.pattern = pattern;
  }
  if (at != values.size()) throw std::logic_error("decode_steps: trailing values");
  return steps;
}

// ---------------------------------------------------------------------------------------------
// The process group

bool distributed_search_built() { return gloo_built(); }

// The c10d objects of a RankGroup: the store (also used for arrival marks and verdicts), gloo
// (the monitored barrier, and every exchange on the CPU) and, on CUDA, NCCL for the candidates.
class RankGroupBackends {
 public:
  c10::intrusive_ptr<c10d::Store> store;   // under the group's prefix
  std::unique_ptr<Collectives> gloo;
  std::unique_ptr<Collectives> nccl;       // null unless the exchange runs on NCCL
  Collectives& exchange() { return nccl ? *nccl : *gloo; }
};

namespace {

std::vector<uint8_t> bytes_of(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

std::string seconds_text(std::chrono::seconds timeout) { return std::to_string(timeout.count()) + " s"; }

std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) text += (i ? ", " : "") + std::to_string(ranks[i]);
  return text;
}

std::string resolve_backend(const std::string& requested, const c10::Device& device) {
  if (requested != "auto" && requested != "gloo" && requested != "nccl") {
    throw InputError("--dist-backend", "\"" + requested + "\" is not a backend (use auto, gloo or nccl)");
  }
  const std::string backend = requested == "auto" ? (device.is_cuda() && nccl_built() ? "nccl" : "gloo") : requested;
  if (backend == "nccl" && !device.is_cuda()) throw InputError("--dist-backend", "nccl needs the search on a GPU (--device cuda)");
  if (backend == "nccl" && !nccl_built()) {
    throw InputError("--dist-backend", "this build has no NCCL backend (a CUDA libtorch and nccl.h are needed); use gloo");
  }
  return backend;
}

}  // namespace

RankGroup::RankGroup(RankEnvironment environment, DistributedOptions options)
    : environment_(std::move(environment)), options_(std::move(options)) {}

RankGroup::~RankGroup() = default;

std::unique_ptr<RankGroup> RankGroup::join(const RankEnvironment& environment, const DistributedOptions& options,
                                           const c10::Device& device) {
  const std::string launched = "WORLD_SIZE=" + std::to_string(environment.world_size);
  if (!distributed_search_built()) {
    throw InputError(launched, "this build of indexcache has no torch.distributed (c10d gloo) support: build it against "
                               "a libtorch with gloo's headers (Debian: libgloo-dev), or run one process");
  }
  if (options.timeout.count() < 1) throw InputError("--dist-timeout", "must be at least 1 second");
  std::unique_ptr<RankGroup> group(new RankGroup(environment, options));
  group->backend_ = resolve_backend(options.backend, device);
  auto backends = std::make_unique<RankGroupBackends>();
  const std::chrono::milliseconds timeout = options.timeout;
  try {
    const bool serves_store = environment.rank == 0 && !environment.agent_store;
    c10::intrusive_ptr<c10d::Store> store = make_tcp_store(environment.master_addr, environment.master_port, serves_store,
                                                           environment.world_size, timeout);
    // Keys of this tool and of this torchrun attempt apart from anything else in the store.
    const std::string prefix = "indexcache/attempt_" + environment.attempt + "/";
    backends->store = make_prefix_store(prefix + "status/", store);
    backends->gloo = make_gloo_collectives(make_prefix_store(prefix + "gloo/", store), environment.rank,
                                           environment.world_size, timeout);
    if (group->backend_ == "nccl") {
      backends->nccl = make_nccl_collectives(make_prefix_store(prefix + "nccl/", store), environment.rank,
                                             environment.world_size, timeout, device);
    }
  } catch (const std::exception& error) {
    throw InputError("MASTER_ADDR:MASTER_PORT " + environment.master_addr + ":" + std::to_string(environment.master_port),
                     "rank " + std::to_string(environment.rank) + " of " + std::to_string(environment.world_size) +
                         " could not join the others within " + seconds_text(options.timeout) + ": " +
                         c10d_error_text(error));
  }
  group->backends_ = std::move(backends);
  return group;
}

namespace {

std::string status_key(const char* kind, int64_t collective, int rank = -1) {
  return std::string(kind) + "/" + std::to_string(collective) + (rank >= 0 ? "/" + std::to_string(rank) : "");
}

}  // namespace

void RankGroup::collective(const std::string& what, const std::function<void()>& exchange) {
  const int64_t number = ++collectives_;
  std::string error;
  try {
    backends_->store->set(status_key("arrived", number, rank()), bytes_of("1"));
    backends_->gloo->monitored_barrier(options_.timeout);
    exchange();
    return;
  } catch (const std::exception& failure) {
    error = c10d_error_text(failure);
  }
  fail(what, error);
}

void RankGroup::fail(const std::string& what, const std::string& error) {
  // c10d's objects may wait forever on a peer that is gone: never destroy them from here on.
  backends_->gloo->abandon();
  if (backends_->nccl) backends_->nccl->abandon();
  c10d::Store& store = *backends_->store;
  const int64_t number = collectives_;
  const std::chrono::milliseconds timeout = options_.timeout;
  std::string verdict;
  try {
    if (rank() == 0) {
      // Rank 0 passed the monitored barrier's wait: whoever has not marked its arrival by now did
      // not come within the timeout.
      std::vector<int> missing;
      for (int other = 1; other < world_size(); ++other) {
        if (!store.check({status_key("arrived", number, other)})) missing.push_back(other);
      }
      verdict = missing.empty() ? what + " failed on some rank (" + error + ")"
                                : rank_list(missing) + " did not reach " + what + " within " + seconds_text(options_.timeout) +
                                      " (died or hangs)";
      store.set(status_key("verdict", number), bytes_of(verdict));
      // Keep serving the store (rank 0 holds it, outside torchrun) until the live ranks have read it.
      std::vector<std::string> read;
      for (int other = 1; other < world_size(); ++other) {
        if (std::find(missing.begin(), missing.end(), other) == missing.end()) read.push_back(status_key("read", number, other));
      }
      try {
        if (!read.empty()) store.wait(read, std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(60)));
      } catch (const std::exception&) {
        // A rank that stopped after arriving never reads it; its peers' messages name rank 0's verdict.
      }
    } else {
      // Rank 0 names the missing ranks once its own wait is over: at most a timeout after this one.
      store.wait({status_key("verdict", number)}, timeout + std::chrono::seconds(10));
      const std::vector<uint8_t> text = store.get(status_key("verdict", number));
      verdict = std::string(text.begin(), text.end());
      store.set(status_key("read", number, rank()), bytes_of("1"));
    }
  } catch (const std::exception& store_error) {
    // The store lives in rank 0 (outside torchrun): unreachable means rank 0 is gone.
    verdict = rank() == 0 ? what + " failed (" + error + ")"
                          : "rank 0 stopped answering during " + what + " (died or hangs): " + error;
  }
  throw InputError("distributed search", verdict + "; rank " + std::to_string(rank()) +
                                             " stops; rerun with --resume to continue from the committed steps");
}

void RankGroup::require_same(const std::string& what, const std::string& text) {
  Sha256 hash;
  hash.update(text.data(), text.size());
  const std::string digest = hash.hex_digest();
  // The first 60 bits of the digest, exactly representable as a double... and as int64.
  const int64_t mine = static_cast<int64_t>(std::stoull(digest.substr(0, 15), nullptr, 16));
  std::vector<at::Tensor> all;
  collective(what, [&] { all = backends_->gloo->allgather(at::full({1}, mine, at::kLong)); });
  for (int other = 1; other < world_size(); ++other) {
    if (all[other].item<int64_t>() != all[0].item<int64_t>()) {
      throw InputError("distributed search", "rank " + std::to_string(other) + "'s " + what + " differ from rank 0's: " +
                                                 "every rank must run the same search (same model, data and options)");
    }
  }
}

std::vector<CandidateLoss> RankGroup::gather_candidates(int64_t step, const std::vector<CandidateLoss>& mine,
                                                        const std::vector<int64_t>& layers) {
  // [step, candidates, then (layer, loss) pairs padded with layer -1 to the step's candidate
  // count]: the same shape on every rank, and a rank out of step shows in the header.
  const int64_t width = 2 + 2 * static_cast<int64_t>(layers.size());
  at::Tensor packed = at::full({width}, -1.0, at::kDouble);
  auto* values = packed.data_ptr<double>();
  values[0] = static_cast<double>(step);
  values[1] = static_cast<double>(layers.size());
  for (std::size_t i = 0; i < mine.size(); ++i) {
    values[2 + 2 * i] = static_cast<double>(mine[i].layer);
    values[3 + 2 * i] = mine[i].loss;
  }
  std::vector<at::Tensor> all;
  collective("step " + std::to_string(step) + "'s exchange", [&] { all = backends_->exchange().allgather(packed); });
  std::vector<std::optional<double>> losses(layers.size());
  for (const at::Tensor& tensor : all) {
    const double* row = tensor.data_ptr<double>();
    if (row[0] != values[0] || row[1] != values[1]) throw std::logic_error("distributed search: ranks out of step");
    for (int64_t i = 0; i < static_cast<int64_t>(layers.size()); ++i) {
      if (row[2 + 2 * i] < 0) break;
      const auto layer = static_cast<int64_t>(row[2 + 2 * i]);
      const auto at = std::find(layers.begin(), layers.end(), layer);
      if (at == layers.end() || losses[at - layers.begin()]) throw std::logic_error("distributed search: bad candidate");
      losses[at - layers.begin()] = row[3 + 2 * i];
    }
  }
  std::vector<CandidateLoss> merged;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (!losses[i]) throw std::logic_error("distributed search: candidate " + std::to_string(layers[i]) + " unevaluated");
    merged.push_back({layers[i], *losses[i]});
  }
  return merged;
}

std::vector<double> RankGroup::broadcast_from_rank0(const std::string& what, const std::vector<double>& values) {
  at::Tensor size = at::full({1}, static_cast<double>(values.size()), at::kDouble);
  at::Tensor data;
  collective(what, [&] {
    backends_->gloo->broadcast(size);
    data = rank() == 0 ? at::tensor(values, at::kDouble) : at::empty({static_cast<int64_t>(size.item<double>())}, at::kDouble);
    if (data.numel() > 0) backends_->gloo->broadcast(data);
  });
  const double* begin = data.data_ptr<double>();
  return std::vector<double>(begin, begin + data.numel());
}

}  // namespace indexcache
