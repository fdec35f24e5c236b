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
#include "vmm/api_server_settings.h"
#include "vmm/api_service.h"
#include "vmm/controller.h"

namespace vmmkit::vmm {

// The API's Unix socket, bound (mode 0600) and listening but not served yet: the kernel queues
// connections until an ApiServer serves it, so a program can listen first, before the rest of
// its start, and clients connect as early as possible. A stale socket file at the path is
// replaced; a live server there or a path that is not a socket is refused (see above). The
// file is removed when the socket is destroyed unserved.
class ApiSocket {
 public:
  static absl::StatusOr<ApiSocket> Listen(const std::string& path);
  ApiSocket(ApiSocket&& other) noexcept;
  ApiSocket& operator=(ApiSocket&& other) noexcept;
  ~ApiSocket();

  const std::string& path() const { return path_; }

 private:
  friend class ApiServer;
  ApiSocket(std::string path, ScopedFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;  // Empty once moved from or served: nothing to remove.
  ScopedFd fd_;
};

class ApiServer {
 public:
  // A request larger than this is refused with RESOURCE_EXHAUSTED (vmm/api_server_settings.h).
  static constexpr int kMaxRequestBytes = kApiMaxRequestBytes;

  // Serves on a Unix socket at `path`, created with mode 0600; a stale socket file there is
  // replaced. Each connection's peer credentials (SO_PEERCRED) are checked as it is accepted:
  // only vmm's own effective uid and root are served; anyone else is disconnected, and logged.
  // (There is no TCP listener: a TCP peer has no identity the kernel vouches for.)
  static absl::StatusOr<std::unique_ptr<ApiServer>> StartUnix(VmController& controller,
                                                              const std::string& path);
  // The same on a socket already listening (ApiSocket::Listen); the server owns it from here.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Serve(VmController& controller,
                                                          ApiSocket socket);
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
