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

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_posix.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

pb::VmState ToProto(VmState s) {
  switch (s) {
    case VmState::kCreated:
      return pb::VM_STATE_CREATED;
    case VmState::kRunning:
      return pb::VM_STATE_RUNNING;
    case VmState::kPaused:
      return pb::VM_STATE_PAUSED;
    case VmState::kStopping:
      return pb::VM_STATE_STOPPING;
  }
  return pb::VM_STATE_UNSPECIFIED;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(const DeviceSummary& d, pb::Device* out) {
  out->set_id(d.id);
  switch (d.kind) {
    case DeviceSummary::Kind::kPlatform:
      out->set_kind(pb::DEVICE_KIND_PLATFORM);
      break;
    case DeviceSummary::Kind::kPci:
      out->set_kind(pb::DEVICE_KIND_PCI);
      break;
    case DeviceSummary::Kind::kVfioPci:
      out->set_kind(pb::DEVICE_KIND_VFIO_PCI);
      break;
  }
  out->set_guest_bdf(d.guest_bdf);
  out->set_host_bdf(d.host_bdf);
  out->set_description(d.description);
  if (d.iommu) {
    pb::DeviceIommu* i = out->mutable_iommu();
    if (d.iommu->domain) i->set_domain(*d.iommu->domain);
    i->set_translation_enabled(d.iommu->translation_enabled);
    i->set_shadowed_mappings(d.iommu->shadowed_mappings);
    i->set_page_invalidations(d.iommu->page_invalidations);
    i->set_domain_invalidations(d.iommu->domain_invalidations);
    i->set_global_invalidations(d.iommu->global_invalidations);
    i->set_context_invalidations(d.iommu->context_invalidations);
    i->set_host_map_calls(d.iommu->host_map_calls);
    i->set_host_unmap_calls(d.iommu->host_unmap_calls);
  }
}

void ToProto(const VmStatus& s, pb::Vm* out) {
  out->set_state(ToProto(s.state));
  pb::VmConfig* c = out->mutable_config();
  c->set_vcpus(s.config.cpus);
  c->set_memory_mib(s.config.memory_bytes >> 20);
  c->set_kernel(s.config.kernel_path);
  c->set_initrd(s.config.initrd_path);
  c->set_cmdline(s.config.cmdline);
  ToProto(s.create_time, out->mutable_create_time());
  if (s.boot_time) ToProto(*s.boot_time, out->mutable_boot_time());
  for (size_t i = 0; i < s.vcpu_tids.size(); ++i) {
    pb::Vcpu* v = out->add_vcpus();
    v->set_index(static_cast<uint32_t>(i));
    v->set_host_tid(s.vcpu_tids[i]);
  }
  for (const DeviceSummary& d : s.devices) ToProto(d, out->add_devices());
  pb::Resources* r = out->mutable_resources();
  r->set_dma_mappings(s.resources.dma_mappings);
  r->set_dma_mapped_bytes(s.resources.dma_mapped_bytes);
  r->set_msi_routes(s.resources.msi_routes);
  r->set_memory_listeners(s.resources.memory_listeners);
  r->set_open_fds(s.resources.open_fds);
  r->set_threads(s.resources.threads);
}

void ToProto(const VmEvent& e, pb::Event* out) {
  ToProto(e.time, out->mutable_time());
  if (const auto* c = std::get_if<VmEvent::StateChanged>(&e.what)) {
    auto* sc = out->mutable_state_changed();
    sc->set_old_state(ToProto(c->old_state));
    sc->set_new_state(ToProto(c->new_state));
    sc->set_reason(c->reason);
  } else if (const auto* d = std::get_if<VmEvent::DeviceChanged>(&e.what)) {
    auto* de = out->mutable_device();
    de->set_type(
        d->type == VmEvent::DeviceChanged::Type::kAdded     ? pb::Event::DeviceEvent::TYPE_ADDED
        : d->type == VmEvent::DeviceChanged::Type::kRemoved ? pb::Event::DeviceEvent::TYPE_REMOVED
                                                            : pb::Event::DeviceEvent::TYPE_FAILED);
    ToProto(d->device, de->mutable_device());
    de->set_detail(d->detail);
  } else if (const auto* b = std::get_if<VmEvent::BootComplete>(&e.what)) {
    ToProto(b->boot_time, out->mutable_guest_boot_complete()->mutable_boot_time());
  } else if (const auto* err = std::get_if<VmEvent::Error>(&e.what)) {
    out->mutable_error()->set_code(static_cast<int32_t>(err->status.code()));
    out->mutable_error()->set_message(std::string(err->status.message()));
  }
}

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

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

class ApiServer::Service final : public pb::VmService::Service {
 public:
  explicit Service(VmController& c) : c_(c) {}

  grpc::Status GetVm(grpc::ServerContext*, const pb::GetVmRequest*, pb::Vm* out) override {
    absl::StatusOr<VmStatus> s = c_.GetVm();
    if (s.ok()) ToProto(*s, out);
    return ToGrpcStatus(s.status());
  }
  grpc::Status Pause(grpc::ServerContext*, const pb::PauseRequest*, pb::Vm* out) override {
    absl::StatusOr<VmStatus> s = c_.Pause();
    if (s.ok()) ToProto(*s, out);
    return ToGrpcStatus(s.status());
  }
  grpc::Status Resume(grpc::ServerContext*, const pb::ResumeRequest*, pb::Vm* out) override {
    absl::StatusOr<VmStatus> s = c_.Resume();
    if (s.ok()) ToProto(*s, out);
    return ToGrpcStatus(s.status());
  }
  grpc::Status Shutdown(grpc::ServerContext*, const pb::ShutdownRequest* req,
                        pb::ShutdownResponse* out) override {
    bool graceful;
    switch (req->mode()) {
      case pb::ShutdownRequest::MODE_GRACEFUL:
        graceful = true;
        break;
      case pb::ShutdownRequest::MODE_FORCED:
        graceful = false;
        break;
      default:
        return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
            "Shutdown: mode must be MODE_GRACEFUL or MODE_FORCED, not ", req->mode())));
    }
    absl::Duration timeout = absl::ZeroDuration();
    if (req->has_graceful_timeout()) {
      if (!graceful) {
        return ToGrpcStatus(
            absl::InvalidArgumentError("Shutdown: graceful_timeout is for MODE_GRACEFUL only"));
      }
      const auto& d = req->graceful_timeout();
      if (d.nanos() < 0 || d.nanos() >= 1000000000 || d.seconds() <= 0 || d.seconds() > 600) {
        return ToGrpcStatus(absl::InvalidArgumentError(
            absl::StrCat("Shutdown: graceful_timeout ", d.seconds(), "s ", d.nanos(),
                         "ns is not a positive duration of at most 10 minutes")));
      }
      timeout = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
    }
    absl::StatusOr<VmState> s = c_.Shutdown(graceful, timeout);
    if (s.ok()) out->set_state(ToProto(*s));
    return ToGrpcStatus(s.status());
  }
  grpc::Status ListDevices(grpc::ServerContext*, const pb::ListDevicesRequest*,
                           pb::ListDevicesResponse* out) override {
    absl::StatusOr<std::vector<DeviceSummary>> s = c_.ListDevices();
    if (s.ok()) {
      for (const DeviceSummary& d : *s) ToProto(d, out->add_devices());
    }
    return ToGrpcStatus(s.status());
  }
  grpc::Status AddDevice(grpc::ServerContext*, const pb::AddDeviceRequest* req,
                         pb::Device* out) override {
    absl::StatusOr<DeviceSummary> d = c_.AddDevice(req->id(), req->host(), req->slot());
    if (d.ok()) ToProto(*d, out);
    return ToGrpcStatus(d.status());
  }
  grpc::Status RemoveDevice(grpc::ServerContext*, const pb::RemoveDeviceRequest* req,
                            pb::RemoveDeviceResponse* out) override {
    absl::Duration timeout = absl::ZeroDuration();
    if (req->has_timeout()) {
      const auto& d = req->timeout();
      if (d.nanos() < 0 || d.nanos() >= 1000000000 || d.seconds() < 0 ||
          (d.seconds() == 0 && d.nanos() == 0)) {
        return ToGrpcStatus(
            absl::InvalidArgumentError(absl::StrCat("RemoveDevice: timeout ", d.seconds(), "s ",
                                                    d.nanos(), "ns is not a positive duration")));
      }
      timeout = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
    }
    absl::StatusOr<DeviceSummary> d = c_.RemoveDevice(req->id(), timeout);
    if (d.ok()) ToProto(*d, out->mutable_device());
    return ToGrpcStatus(d.status());
  }
  grpc::Status GetDevice(grpc::ServerContext*, const pb::GetDeviceRequest* req,
                         pb::Device* out) override {
    absl::StatusOr<DeviceSummary> d = c_.GetDevice(req->id());
    if (d.ok()) ToProto(*d, out);
    return ToGrpcStatus(d.status());
  }
  grpc::Status WatchEvents(grpc::ServerContext* ctx, const pb::WatchEventsRequest*,
                           grpc::ServerWriter<pb::Event>* writer) override {
    absl::StatusOr<std::shared_ptr<EventStream>> stream = c_.Watch();
    if (!stream.ok()) return ToGrpcStatus(stream.status());
    // Poll so that a client that goes away (or a server shutdown) ends the call promptly.
    while (!ctx->IsCancelled()) {
      std::optional<VmEvent> e = (*stream)->Next(absl::Milliseconds(200));
      if (e) {
        pb::Event out;
        ToProto(*e, &out);
        if (!writer->Write(out)) break;
      } else if ((*stream)->closed()) {
        break;
      }
    }
    (*stream)->Close();
    return grpc::Status::OK;
  }

 private:
  VmController& c_;
};

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
  s->service_ = std::make_unique<Service>(controller);
  s->health_ = std::make_unique<HealthService>();
  grpc::EnableDefaultHealthCheckService(false);  // HealthService instead (see there).
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // No listening port: connections come from AcceptLoop, after their peer is checked.
  // Limits a client cannot push past: request size, threads serving calls, concurrent calls on
  // one connection (open event streams have their own limit in the controller).
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  grpc::ResourceQuota quota("vmm-api");
  quota.SetMaxThreads(kMaxThreads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  builder.RegisterService(s->service_.get());
  builder.RegisterService(s->health_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr) return absl::UnavailableError("API server: gRPC did not start");
  return s;
}

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::StartUnix(VmController& controller,
                                                                const std::string& path) {
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
  auto remove_socket = absl::MakeCleanup([&] { ::unlink(path.c_str()); });
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoStatus(errno, "API socket ", path, ": chmod");
  if (::listen(listener.get(), SOMAXCONN) != 0) {
    return ErrnoStatus(errno, "API socket ", path, ": listen");
  }
  ASSIGN_OR_RETURN(EventFd stop, EventFd::Create());
  ASSIGN_OR_RETURN(std::unique_ptr<ApiServer> server, Start(controller));
  std::move(remove_socket).Cancel();
  server->socket_path_ = path;
  server->listener_ = std::move(listener);
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
