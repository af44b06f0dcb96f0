// The only place that knows libtorch's c10d classes (distributed.h uses it). libtorch 1.13
// (Debian) and 2.x (the Python package) differ in the base class of the process groups, in NCCL's
// environment names and in NCCL's shutdown; c10d_backends.cpp bridges them. Within the search wing.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace indexcache {

// One c10d backend's collectives, as the distributed search uses them. Every call blocks until
// the collective is done on this rank and throws (c10::Error or std::exception) when it fails or
// times out (the timeout given at creation).
class Collectives {
 public:
  virtual ~Collectives() = default;
  // c10d's monitored barrier (gloo only): rank 0 waits up to `timeout` in all for the other ranks
  // and throws naming the first that did not come; the others throw when rank 0 does not answer.
  virtual void monitored_barrier(std::chrono::milliseconds timeout) = 0;
  // Every rank's `mine` (same shape and dtype on every rank, on the CPU), in rank order, on the CPU.
  virtual std::vector<at::Tensor> allgather(const at::Tensor& mine) = 0;
  // Rank 0's `tensor` (CPU) into every rank's `tensor`.
  virtual void broadcast(at::Tensor& tensor) = 0;
  // After a failure: the backend is never destroyed (c10d's destructors may wait on peers that
  // are gone or stuck); its threads and sockets end with the process.
  virtual void abandon() = 0;
};

// libtorch's TCPStore at host:port: the server (rank 0, unless torchrun's agent serves it) waits up
// to `timeout` for `world_size` ranks to connect, the clients retry connecting for that long.
c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, int port, bool is_server, int world_size,
                                               std::chrono::milliseconds timeout);
// `store` with every key under `prefix`.
c10::intrusive_ptr<c10d::Store> make_prefix_store(const std::string& prefix, const c10::intrusive_ptr<c10d::Store>& store);

bool gloo_built();
bool nccl_built();

// ProcessGroupGloo over `store` (its device: GLOO_SOCKET_IFNAME's interface when set, else the
// address this host's name resolves to, as torch.distributed picks it).
std::unique_ptr<Collectives> make_gloo_collectives(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                                   std::chrono::milliseconds timeout);
// ProcessGroupNCCL over `store`, exchanging through `device` (a CUDA device). Collectives wait on
// the host (blocking wait), so a timeout throws here instead of aborting the process.
std::unique_ptr<Collectives> make_nccl_collectives(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                                   std::chrono::milliseconds timeout, const c10::Device& device);

// The first line of a c10d error, without libtorch's backtrace.
std::string c10d_error_text(const std::exception& error);

}  // namespace indexcache
