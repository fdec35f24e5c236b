#include "virtio_vsock/vsock_device.h"

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "virtio/device_status.h"

namespace vmmkit::virtio_vsock {
namespace {

constexpr uint64_t kFeatureSeqpacket = uint64_t{1} << 1;

}  // namespace

absl::StatusOr<std::shared_ptr<VsockDevice>> VsockDevice::Create(uint64_t cid,
                                                                 const GuestMemory& memory) {
  if (cid < kMinGuestCid || cid > kMaxGuestCid) {
    return absl::InvalidArgumentError(absl::StrCat("virtio-vsock: guest CID ", cid, " (",
                                                   kMinGuestCid, " to ", kMaxGuestCid, ")"));
  }
  absl::StatusOr<vhost::VhostVsock> v = vhost::VhostVsock::Open();
  RETURN_IF_ERROR(Prefixed(v.status(), "virtio-vsock"));
  absl::StatusOr<uint64_t> features = [&]() -> absl::StatusOr<uint64_t> {
    ASSIGN_OR_RETURN(uint64_t f, vhost::SetUp(*v, memory,
                                              virtio::kFeatureVersion1 | virtio::kFeatureEventIdx |
                                                  virtio::kFeatureIndirectDesc));
    // The CID is the host's to give once: another VM's is EADDRINUSE.
    if (absl::Status s = v->SetGuestCid(cid); !s.ok()) {
      if (absl::StrContains(s.message(), "Address already in use")) {
        return absl::AlreadyExistsError(
            absl::StrCat("guest CID ", cid, " is in use on this host (", s.message(), ")"));
      }
      return s;
    }
    return f;
  }();
  RETURN_IF_ERROR(Prefixed(features.status(), "virtio-vsock"));
  // Notifiers (3), the kernel's interrupts (2), its error.
  std::vector<EventFd> fds;
  for (int i = 0; i < 6; ++i) {
    ASSIGN_OR_RETURN(EventFd e, EventFd::Create());
    fds.push_back(std::move(e));
  }
  std::shared_ptr<VsockDevice> device(
      new VsockDevice(cid, memory, *std::move(v), *features, std::move(fds)));
  // Started here, on the creator's thread (see virtio/workers.h); the destructor joins it.
  RETURN_IF_ERROR(device->worker_.Start(1, "virtio-vsock",
                                        [d = device.get()](size_t, Queues queues, int stop_fd) {
                                          d->Serve(std::move(queues), stop_fd);
                                        }));
  return device;
}

VsockDevice::VsockDevice(uint64_t cid, const GuestMemory& memory, vhost::VhostVsock vhost,
                         uint64_t vhost_features, std::vector<EventFd> fds)
    : cid_(cid),
      memory_(memory),
      vhost_(std::move(vhost)),
      vhost_features_(vhost_features),
      features_(vhost_features & kFeatureSeqpacket),
      error_(std::move(fds[5])) {
  for (size_t i = 0; i < 3; ++i) notifiers_.push_back(std::move(fds[i]));
  for (size_t i = 3; i < 5; ++i) calls_.push_back(std::move(fds[i]));
}

VsockDevice::~VsockDevice() { Reset(); }

void VsockDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  // struct virtio_vsock_config: le64 guest_cid.
  if (offset > 8 || data.size() > 8 - offset) return;
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&cid_) + offset, data.size());
}

void VsockDevice::WriteConfig(uint32_t, absl::Span<const uint8_t>) {}

absl::Status VsockDevice::Activate(virtio_pci::Activation activation) {
  MutexLock lock(activation_mu_);
  if (worker_.active()) return absl::FailedPreconditionError("virtio-vsock: already active");
  if (activation.queues.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-vsock: ", activation.queues.size(), " queues activated, 3 offered"));
  }
  interrupt_ = std::move(activation.interrupt);
  needs_reset_ = std::move(activation.needs_reset);
  negotiated_ = activation.features;
  std::vector<std::optional<Queues>> work(1);
  work[0] = std::move(activation.queues);
  if (!worker_.Hand(std::move(work))) {
    return absl::InternalError("virtio-vsock: the worker took no queues");
  }
  return absl::OkStatus();
}

void VsockDevice::QueueNotify(uint16_t index) {
  if (index < notifiers_.size()) (void)notifiers_[index].Write(1);
}

void VsockDevice::Reset() {
  MutexLock lock(activation_mu_);
  if (!worker_.active()) return;
  worker_.Stop();
  interrupt_ = nullptr;
  needs_reset_ = nullptr;
  negotiated_ = 0;
}

uint64_t VsockDevice::interrupts(uint16_t queue) const {
  return queue < 2 ? interrupts_[queue].load(std::memory_order_relaxed) : 0;
}

absl::Status VsockDevice::Start(Queues& queues) {
  RETURN_IF_ERROR(vhost_.SetFeatures(negotiated_ & vhost_features_ & ~vhost::kFeatureLogAll));
  for (uint32_t ring = 0; ring < 2; ++ring) {
    if (!queues[ring]) {
      return absl::FailedPreconditionError(
          absl::StrCat("the driver left queue ", ring, " disabled"));
    }
    RETURN_IF_ERROR(vhost::StartVring(
        vhost_, &memory_, ring, *queues[ring],
        {.kick = notifiers_[ring].fd(), .call = calls_[ring].fd(), .err = error_.fd()}));
  }
  return vhost_.SetRunning(true);
}

void VsockDevice::Serve(Queues queues, int stop_fd) {
  bool started = true;
  if (absl::Status s = Start(queues); !s.ok()) {
    LogWarning("virtio-vsock: cannot start: ", s.message());
    started = false;
    needs_reset_();
  }
  bool reported = !started;
  while (true) {
    pollfd fds[4] = {{stop_fd, POLLIN, 0},
                     {calls_[0].fd(), POLLIN, 0},
                     {calls_[1].fd(), POLLIN, 0},
                     {error_.fd(), POLLIN, 0}};
    const int n = ::poll(fds, 4, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[0].revents & POLLIN)) break;
    for (uint16_t q = 0; q < 2; ++q) {
      if ((fds[1 + q].revents & POLLIN) && calls_[q].Read().ok()) {
        interrupts_[q].fetch_add(1, std::memory_order_relaxed);
        interrupt_(q);
      }
    }
    // A ring the kernel could not go on with (a buffer outside guest RAM, say).
    if ((fds[3].revents & POLLIN) && error_.Read().ok() && !reported) {
      reported = true;
      needs_reset_();
    }
  }
  // Nothing touches the guest's rings once Reset returns.
  if (started) (void)vhost_.SetRunning(false);
  for (EventFd& c : calls_) (void)c.Read();
}

}  // namespace vmmkit::virtio_vsock
