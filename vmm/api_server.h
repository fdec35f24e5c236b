// File: vmm/api_server.h
// -----------------------------------------------------------------------------
// ApiServer serves proto/vmm/v1's VmService (VmServiceImpl: the requests' conversion and
// checks) over gRPC on a Unix domain socket (mode 0600; peers are checked as they connect).
// gRPC health checking (grpc.health.v1: "" and vmmkit.vmm.v1.VmService are SERVING until
// Shutdown) and server reflection (v1alpha) are served too.
//
//   ASSIGN_OR_RETURN(auto server, ApiServer::StartUnix(controller, "/run/vmm.sock"));
//   ...
//   server->Shutdown();   // also on destruction; removes the socket file
//
// Socket path rules: a path where another live server answers is refused (FAILED_PRECONDITION);
// a stale socket file (nothing listens) is replaced; a path that is not a socket is never touched
// (ALREADY_EXISTS).

#ifndef VMMKIT_VMM_API_SERVER_H_
#define VMMKIT_VMM_API_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/event_fd.h"
#include "base/log.h"
#include "base/scoped_fd.h"
#include "grpcpp/grpcpp.h"
#include "vmm/api_service.h"
#include "vmm/controller.h"

namespace vmmkit::vmm {

class ApiServer {
 public:
  // A request larger than this is refused with RESOURCE_EXHAUSTED before it reaches a handler
  // (the largest real one, an AddDevice with a sysfs path, is well under 1 KiB).
  static constexpr int kMaxRequestBytes = 64 << 10;
  // Threads gRPC may use to serve calls, and calls one connection may have open at once.
  static constexpr int kMaxThreads = 64;
  static constexpr int kMaxConcurrentStreams = 32;

  // Serves on a Unix socket at `path`, created with mode 0600; a stale socket file there is
  // replaced. Each connection's peer credentials (SO_PEERCRED) are checked as it is accepted:
  // only vmm's own effective uid and root are served; anyone else is disconnected, and logged.
  // (There is no TCP listener: a TCP peer has no identity the kernel vouches for.)
  static absl::StatusOr<std::unique_ptr<ApiServer>> StartUnix(VmController& controller,
                                                              const std::string& path);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Connections refused because of their peer's uid, so far.
  uint64_t refused_peers() const { return refused_peers_.load(); }
  // Stops accepting, ends open streams, and removes the socket file. Idempotent.
  void Shutdown();

 private:
  class HealthService;
  ApiServer() = default;
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(VmController& controller);
  // The accepting thread: checks each peer, hands the allowed ones to gRPC.
  void AcceptLoop();

  std::unique_ptr<VmServiceImpl> service_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  std::string socket_path_;
  ScopedFd listener_;  // Polled by the accepting thread only; gRPC never sees it.
  std::unique_ptr<EventFd> stop_accepting_;
  std::thread acceptor_;
  std::atomic<uint64_t> refused_peers_{0};
  RateLimitedLog refused_log_;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_API_SERVER_H_
