// libtorch's c10d behind c10d_backends.h. Everything that differs between libtorch 1.13
// (Debian: process groups derive from c10d::ProcessGroup, NCCL reads NCCL_BLOCKING_WAIT) and 2.x
// (they derive from c10d::Backend, NCCL reads TORCH_NCCL_BLOCKING_WAIT and wants shutdown())
// is in this file. The gloo and NCCL parts are built only when CMake found their headers
// (INDEXCACHE_C10D_GLOO: gloo's headers, Debian libgloo-dev; INDEXCACHE_C10D_NCCL: a CUDA
// libtorch and nccl.h).
#include "c10d_backends.h"

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <cstdlib>
#include <stdexcept>

#if INDEXCACHE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if INDEXCACHE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace indexcache {

c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, int port, bool is_server, int world_size,
                                               std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = is_server;
  options.numWorkers = static_cast<std::size_t>(world_size);
  options.waitWorkers = true;  // every rank counts itself in; the server returns once all have
  options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

c10::intrusive_ptr<c10d::Store> make_prefix_store(const std::string& prefix, const c10::intrusive_ptr<c10d::Store>& store) {
  return c10::make_intrusive<c10d::PrefixStore>(prefix, store);
}

std::string c10d_error_text(const std::exception& error) {
  std::string text = error.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) text = c10_error->what_without_backtrace();
  // c10d prefixes "[Rank 0]: " and appends " Original exception: ..." on later lines.
  const std::size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

namespace {

// Shared by both backends: one c10d process group (a ProcessGroup in 1.13, a Backend in 2.x;
// the collective calls are the same in both).
template <typename Group>
class GroupCollectives : public Collectives {
 public:
  explicit GroupCollectives(c10::intrusive_ptr<Group> group, c10::Device device = c10::Device(c10::kCPU))
      : group_(std::move(group)), device_(device) {}

  void monitored_barrier(std::chrono::milliseconds timeout) override {
    c10d::BarrierOptions options;
    options.timeout = timeout;
    // One timeout in all (waitAllRanks would wait a whole timeout per missing rank); the caller
    // names every missing rank itself from the store.
    group_->monitoredBarrier(options, /*waitAllRanks=*/false);
  }

  std::vector<at::Tensor> allgather(const at::Tensor& mine) override {
    std::vector<at::Tensor> inputs{mine.to(device_).contiguous()};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int rank = 0; rank < group_->getSize(); ++rank) outputs[0].push_back(at::empty_like(inputs[0]));
    group_->allgather(outputs, inputs)->wait();
    std::vector<at::Tensor> result;
    for (const at::Tensor& tensor : outputs[0]) result.push_back(tensor.to(c10::kCPU));
    return result;
  }

  void broadcast(at::Tensor& tensor) override {
    std::vector<at::Tensor> tensors{tensor.to(device_).contiguous()};
    group_->broadcast(tensors)->wait();
    tensor.copy_(tensors[0].to(c10::kCPU));
  }

  void abandon() override { group_.release(); }

 protected:
  c10::intrusive_ptr<Group> group_;
  c10::Device device_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// gloo

#if INDEXCACHE_C10D_GLOO

bool gloo_built() { return true; }

std::unique_ptr<Collectives> make_gloo_collectives(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                                   std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  if (interface != nullptr && *interface != '\0') {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  options->threads = 2;  // torch.distributed's default
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
  return std::make_unique<GroupCollectives<c10d::ProcessGroupGloo>>(std::move(group));
}

#else

bool gloo_built() { return false; }

std::unique_ptr<Collectives> make_gloo_collectives(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                                   std::chrono::milliseconds) {
  throw std::logic_error("indexcache was built without c10d's gloo backend");
}

#endif

// ---------------------------------------------------------------------------------------------
// NCCL

#if INDEXCACHE_C10D_NCCL

bool nccl_built() { return true; }

namespace {

class NcclCollectives : public GroupCollectives<c10d::ProcessGroupNCCL> {
 public:
  using GroupCollectives::GroupCollectives;
  ~NcclCollectives() override {
#if TORCH_VERSION_MAJOR >= 2
    // 2.x warns (and may leak communicators) when a process group is destroyed without it.
    if (group_) group_->shutdown();
#endif
  }
  void monitored_barrier(std::chrono::milliseconds) override {
    throw std::logic_error("c10d's monitored barrier is gloo's; the distributed search runs it there");
  }
};

}  // namespace

std::unique_ptr<Collectives> make_nccl_collectives(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                                   std::chrono::milliseconds timeout, const c10::Device& device) {
  // Blocking wait: wait() returns when the collective is done and throws on its timeout, instead of
  // the watchdog aborting the process (the search turns the throw into exit status 2). 1.13 reads
  // the first name, 2.x the second; neither overrides what the user set.
  ::setenv("NCCL_BLOCKING_WAIT", "1", 0);
  ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
  return std::make_unique<NcclCollectives>(std::move(group), device);
}

#else

bool nccl_built() { return false; }

std::unique_ptr<Collectives> make_nccl_collectives(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                                   std::chrono::milliseconds, const c10::Device&) {
  throw std::logic_error("indexcache was built without c10d's NCCL backend");
}

#endif

}  // namespace indexcache
