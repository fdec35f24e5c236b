#include "vmm/api_server.h"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "grpcpp/server_posix.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"
#include "vmm/api_server_settings.h"
#include "vmm/api_service.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

// A Unix socket path is usable: nothing there, or a stale socket (removed). Refuses a live one.
absl::Status ClaimSocketPath(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("API socket path \"", path,
                                                   "\": empty or longer than ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "API socket ", path, ": stat");
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "API socket ", path, ": the path exists and is not a socket; not replacing it"));
  }
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "API socket ", path, ": socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "API socket ", path, ": another server is listening there (is another vmm running?)"));
  }
  if (errno != ECONNREFUSED) return ErrnoStatus(errno, "API socket ", path, ": probing it");
  if (::unlink(path.c_str()) != 0)
    return ErrnoStatus(errno, "API socket ", path, ": removing the stale socket");
  LogInfo("api: replaced the stale socket ", path);
  return absl::OkStatus();
}

}  // namespace

// grpc.health.v1, served here on the same synchronous threads as VmService rather than by gRPC's
// default health service. That one (gRPC 1.51) is built on the callback API, whose completion
// queue, with this gRPC's poller, is driven by two threads of its own that poll the same
// connections as the synchronous server's threads, and so wake on requests to every service.
// Measured on a bare synchronous server (vmm/api_server_benchmark, BM_BareSyncCall, median of 5):
// with gRPC's health service a call took 151 us and 8.7 context switches back to back, 338 us and
// 12.4 after a pause; without it, 123 us and 5.1, 261 us and 9.5. Every wake-up is CPU a host
// running VMs would rather give its guests.
// The overall service ("") and VmService are SERVING until Shutdown(), then NOT_SERVING; any
// other name is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch), as the health protocol says.
class ApiServer::HealthService final : public grpc::health::v1::Health::Service {
 public:
  using Response = grpc::health::v1::HealthCheckResponse;

  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* req,
                     Response* out) override {
    if (!Known(req->service())) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("Health.Check: no service named \"", req->service(), "\""));
    }
    MutexLock lock(mu_);
    out->set_status(StatusLocked(req->service()));
    return grpc::Status::OK;
  }

  // The status now, then again whenever it changes, until the client cancels or the server
  // shuts down (after saying NOT_SERVING). Polls for cancellation as WatchEvents does.
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<Response>* writer) override {
    std::optional<Response::ServingStatus> sent;
    for (;;) {
      // The status and whether it is final, read together: a shutdown between the two reads
      // would end the stream without its NOT_SERVING.
      bool last;
      Response::ServingStatus now;
      {
        MutexLock lock(mu_);
        last = shut_down_;
        now = StatusLocked(req->service());
      }
      if (now != sent) {
        Response out;
        out.set_status(now);
        if (!writer->Write(out)) break;
        sent = now;
      }
      if (last || ctx->IsCancelled()) break;
      MutexLock lock(mu_);
      if (!shut_down_) {
        (void)changed_.WaitFor(mu_, absl::Milliseconds(200),
                               [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shut_down_; });
      }
    }
    return grpc::Status::OK;
  }

  void Shutdown() {
    {
      MutexLock lock(mu_);
      shut_down_ = true;
    }
    changed_.SignalAll();
  }

 private:
  static bool Known(const std::string& service) {
    return service.empty() || service == pb::VmService::service_full_name();
  }
  Response::ServingStatus StatusLocked(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!Known(service)) return Response::SERVICE_UNKNOWN;
    return shut_down_ ? Response::NOT_SERVING : Response::SERVING;
  }

  mutable Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  CondVar changed_;
};

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(VmController& controller) {
  std::unique_ptr<ApiServer> s(new ApiServer());
  s->service_ = std::make_unique<VmServiceImpl>(controller);
  s->health_ = std::make_unique<HealthService>();
  grpc::ServerBuilder builder;
  // No listening port: connections come from AcceptLoop, after their peer is checked.
  // Limits a client cannot push past: request size, threads serving calls, concurrent calls on
  // one connection (open event streams have their own limit in the controller). No default
  // health service: HealthService instead (see there).
  ApplyApiServerSettings(builder);
  builder.RegisterService(s->service_.get());
  builder.RegisterService(s->health_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr) return absl::UnavailableError("API server: gRPC did not start");
  return s;
}

absl::StatusOr<ApiSocket> ApiSocket::Listen(const std::string& path) {
  RETURN_IF_ERROR(ClaimSocketPath(path));
  ScopedFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener.valid()) return ErrnoStatus(errno, "API socket ", path, ": socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());  // ClaimSocketPath checked the size.
  // Mode 0600 from the start (no window in which another user could connect), and chmod again
  // in case the umask was ignored.
  const mode_t old_umask = ::umask(0177);
  const int bound = ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  ::umask(old_umask);
  if (bound != 0) return ErrnoStatus(bind_errno, "API socket ", path, ": bind");
  ApiSocket socket(path, std::move(listener));  // Removes the file if anything below fails.
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoStatus(errno, "API socket ", path, ": chmod");
  if (::listen(socket.fd_.get(), SOMAXCONN) != 0) {
    return ErrnoStatus(errno, "API socket ", path, ": listen");
  }
  return socket;
}

ApiSocket::ApiSocket(ApiSocket&& other) noexcept
    : path_(std::exchange(other.path_, std::string())), fd_(std::move(other.fd_)) {}

ApiSocket& ApiSocket::operator=(ApiSocket&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) ::unlink(path_.c_str());
    path_ = std::exchange(other.path_, std::string());
    fd_ = std::move(other.fd_);
  }
  return *this;
}

ApiSocket::~ApiSocket() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::StartUnix(VmController& controller,
                                                                const std::string& path) {
  ASSIGN_OR_RETURN(ApiSocket socket, ApiSocket::Listen(path));
  return Serve(controller, std::move(socket));
}

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Serve(VmController& controller,
                                                            ApiSocket socket) {
  ASSIGN_OR_RETURN(EventFd stop, EventFd::Create());
  ASSIGN_OR_RETURN(std::unique_ptr<ApiServer> server, Start(controller));
  // The server removes the file from here on (Shutdown).
  server->socket_path_ = std::exchange(socket.path_, std::string());
  server->listener_ = std::move(socket.fd_);
  server->stop_accepting_ = std::make_unique<EventFd>(std::move(stop));
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

void ApiServer::AcceptLoop() {
  // Keeps the confinement of the thread that started the server, as gRPC's threads do.
  pthread_setname_np(pthread_self(), "api-accept");
  pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_accepting_->fd(), POLLIN, 0}};
  const uid_t self = ::geteuid();
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LogError("api: poll on the API socket failed (", std::strerror(errno), "); not accepting");
      return;
    }
    if (fds[1].revents != 0) return;
    ScopedFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn.valid()) {
      // Out of fds: the connection waits in the backlog; try again shortly, not in a spin.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        refused_log_.Warning("api: cannot accept a connection: ", std::strerror(errno));
        ::poll(nullptr, 0, 100);
      }
      continue;  // EAGAIN, ECONNABORTED, EINTR: nothing to do.
    }
    ucred peer{};
    socklen_t len = sizeof(peer);
    if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
      refused_log_.Warning("api: SO_PEERCRED failed (", std::strerror(errno),
                           "); connection closed");
      continue;
    }
    if (peer.uid != self && peer.uid != 0) {
      refused_peers_.fetch_add(1);
      refused_log_.Warning("api: refused a connection from uid ", peer.uid, " (pid ", peer.pid,
                           "): only uid ", self, " and root may use this VM's API");
      continue;
    }
    grpc::AddInsecureChannelFromFd(server_.get(), conn.release());  // gRPC owns it now.
  }
}

ApiServer::~ApiServer() { Shutdown(); }

void ApiServer::Shutdown() {
  if (server_ == nullptr) return;
  if (acceptor_.joinable()) {
    (void)stop_accepting_->Write(1);
    acceptor_.join();
  }
  health_->Shutdown();  // Its watchers hear NOT_SERVING and their streams end.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_.reset();
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

}  // namespace vmmkit::vmm
