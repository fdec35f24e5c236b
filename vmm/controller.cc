#include "vmm/controller.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "base/status_macros.h"

namespace vmmkit::vmm {

bool IsSpecifiedStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
      return true;
    default:
      return false;
  }
}

const char* VmStateName(VmState state) {
  switch (state) {
    case VmState::kCreated:
      return "CREATED";
    case VmState::kRunning:
      return "RUNNING";
    case VmState::kPaused:
      return "PAUSED";
    case VmState::kStopping:
      return "STOPPING";
  }
  return "?";
}

// --- EventStream --------------------------------------------------------------------------------

void EventStream::Push(const VmEvent& e) {
  {
    MutexLock lock(mu_);
    if (closed_) return;
    if (queue_.size() >= kCapacity) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(e);
  }
  cv_.SignalAll();
}

std::optional<VmEvent> EventStream::Next(absl::Duration timeout) {
  MutexLock lock(mu_);
  cv_.WaitFor(mu_, timeout, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || closed_ || dropped_ > 0;
  });
  if (dropped_ > 0) {
    VmEvent lost{absl::Now(), VmEvent::Error{absl::ResourceExhaustedError(absl::StrCat(
                                  dropped_, " events were dropped: the watcher read too slowly"))}};
    dropped_ = 0;
    return lost;
  }
  if (queue_.empty()) return std::nullopt;
  VmEvent e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

bool EventStream::closed() const {
  MutexLock lock(mu_);
  return closed_;
}

void EventStream::Close() {
  {
    MutexLock lock(mu_);
    closed_ = true;
  }
  cv_.SignalAll();
}

// --- VmController -------------------------------------------------------------------------------

absl::Status VmController::OnLoop(const char* rpc, std::function<void()> fn) {
  absl::Status s = loop_.RunOnLoop(std::move(fn));
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat(rpc, ": the VM is shutting down (", s.message(), ")"));
  }
  return absl::OkStatus();
}

VmState VmController::state() const {
  MutexLock lock(mu_);
  return state_;
}

VmStatus VmController::StatusLocked() const {
  VmStatus s = ops_.Describe();
  s.state = state_;
  s.boot_time = boot_time_;
  return s;
}

void VmController::Publish(VmEvent e) {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (auto w = it->lock(); w != nullptr && !w->closed()) {
      w->Push(e);
      ++it;
    } else {
      it = watchers_.erase(it);  // The watcher went away.
    }
  }
}

void VmController::SetState(VmState next, const std::string& reason) {
  if (next == state_) return;
  const VmState old = std::exchange(state_, next);
  Publish({absl::Now(), VmEvent::StateChanged{old, next, reason}});
}

absl::StatusOr<VmStatus> VmController::GetVm() {
  VmStatus out;
  RETURN_IF_ERROR(OnLoop("GetVm", [&] {
    MutexLock lock(mu_);
    out = StatusLocked();
  }));
  return out;
}

absl::StatusOr<VmStatus> VmController::Transition(const char* rpc, VmState from, VmState to,
                                                  const std::function<absl::Status()>& op) {
  absl::StatusOr<VmStatus> out;
  RETURN_IF_ERROR(OnLoop(rpc, [&] {
    {
      MutexLock lock(mu_);
      if (state_ != from) {
        out = absl::FailedPreconditionError(
            absl::StrCat(rpc, ": the VM is ", VmStateName(state_), ", not ", VmStateName(from)));
        return;
      }
    }
    // Requests are serialized on the loop, so the state cannot change in between.
    if (absl::Status s = op(); !s.ok()) {
      out = Prefixed(s, rpc);
      return;
    }
    MutexLock lock(mu_);
    SetState(to, absl::StrCat(rpc, " request"));
    out = StatusLocked();
  }));
  return out;
}

absl::StatusOr<VmStatus> VmController::Pause() {
  return Transition("Pause", VmState::kRunning, VmState::kPaused,
                    [this] { return ops_.PauseVcpus(); });
}

absl::StatusOr<VmStatus> VmController::Resume() {
  return Transition("Resume", VmState::kPaused, VmState::kRunning,
                    [this] { return ops_.ResumeVcpus(); });
}

absl::StatusOr<VmState> VmController::Shutdown(bool graceful, absl::Duration timeout) {
  if (graceful) {
    if (timeout == absl::ZeroDuration()) timeout = kDefaultGracefulTimeout;
    if (timeout < absl::ZeroDuration() || timeout > kMaxGracefulTimeout) {
      return absl::InvalidArgumentError(
          absl::StrCat("Shutdown: graceful timeout ", absl::FormatDuration(timeout),
                       " is not in (0, ", absl::FormatDuration(kMaxGracefulTimeout), "]"));
    }
  }
  absl::StatusOr<VmState> out;
  RETURN_IF_ERROR(OnLoop("Shutdown", [&] {
    {
      MutexLock lock(mu_);
      if (state_ == VmState::kStopping) {
        out = absl::FailedPreconditionError("Shutdown: the VM is already STOPPING");
        return;
      }
      // Pressing the power button again would not make the guest any faster.
      if (graceful && graceful_deadline_) {
        out = absl::FailedPreconditionError(absl::StrCat(
            "Shutdown: a graceful shutdown is already in progress (the VM stops in at most ",
            absl::FormatDuration(absl::Ceil(*graceful_deadline_ - absl::Now(), absl::Seconds(1))),
            "); use a forced shutdown to stop it now"));
        return;
      }
    }
    if (!graceful) {
      ops_.Stop("Shutdown request (forced)");
      OnStopping("Shutdown request (forced)");
      out = VmState::kStopping;
      return;
    }
    if (absl::Status s = ops_.RequestGuestPowerOff(); !s.ok()) {
      out = absl::Status(
          s.code(), absl::StrCat("Shutdown (graceful): ", s.message(), "; use a forced shutdown"));
      return;
    }
    {
      MutexLock lock(mu_);
      graceful_deadline_ = absl::Now() + timeout;
    }
    // If the guest has not powered off by the deadline, stop it.
    loop_.RunOnLoopAfter(timeout, [this, timeout] {
      if (state() == VmState::kStopping) return;
      const std::string why = absl::StrCat("graceful shutdown: the guest did not power off within ",
                                           absl::FormatDuration(timeout));
      ops_.Stop(why);
      OnStopping(why);
    });
    out = state();  // Still RUNNING (or PAUSED) until the guest powers off.
  }));
  return out;
}

absl::StatusOr<std::vector<DeviceSummary>> VmController::ListDevices() {
  std::vector<DeviceSummary> out;
  RETURN_IF_ERROR(OnLoop("ListDevices", [&] { out = ops_.Describe().devices; }));
  return out;
}

absl::StatusOr<DeviceSummary> VmController::GetDevice(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("GetDevice: the device id is empty");
  ASSIGN_OR_RETURN(std::vector<DeviceSummary> devices, ListDevices());
  for (DeviceSummary& d : devices) {
    if (d.id == id) return std::move(d);
  }
  std::vector<std::string> ids;
  for (const DeviceSummary& d : devices) ids.push_back(d.id);
  return absl::NotFoundError(absl::StrCat("GetDevice: no device '", EchoForError(id),
                                          "' (devices: ", absl::StrJoin(ids, ", "), ")"));
}

absl::StatusOr<std::shared_ptr<EventStream>> VmController::Watch() {
  MutexLock lock(mu_);
  if (state_ == VmState::kStopping) {
    return absl::UnavailableError("WatchEvents: the VM is shutting down");
  }
  std::erase_if(watchers_, [](const std::weak_ptr<EventStream>& w) {
    auto s = w.lock();
    return s == nullptr || s->closed();
  });
  if (watchers_.size() >= kMaxWatchers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("WatchEvents: ", kMaxWatchers, " watchers already; close one first"));
  }
  auto stream = std::make_shared<EventStream>();
  watchers_.push_back(stream);
  return stream;
}

void VmController::OnStarted() {
  MutexLock lock(mu_);
  SetState(VmState::kRunning, "vCPUs started");
}

void VmController::OnBootComplete(absl::Duration boot_time) {
  MutexLock lock(mu_);
  boot_time_ = boot_time;
  Publish({absl::Now(), VmEvent::BootComplete{boot_time}});
}

void VmController::OnStopping(const std::string& reason) {
  MutexLock lock(mu_);
  SetState(VmState::kStopping, reason);
  removed_cv_.SignalAll();  // RemoveDevice waiters: the guest will release nothing now.
  for (auto& w : watchers_) {
    if (auto s = w.lock()) s->Close();
  }
  watchers_.clear();
}

void VmController::OnError(const absl::Status& status) {
  MutexLock lock(mu_);
  Publish({absl::Now(), VmEvent::Error{status}});
}

void VmController::OnDeviceEvent(VmEvent::DeviceChanged event) {
  MutexLock lock(mu_);
  if (event.type == VmEvent::DeviceChanged::Type::kRemoved) {
    if (auto it = removals_.find(event.device.id); it != removals_.end()) {
      *it->second = true;
      removals_.erase(it);
      removed_cv_.SignalAll();
    }
  }
  Publish({absl::Now(), std::move(event)});
}

absl::StatusOr<DeviceSummary> VmController::AddDevice(const std::string& id,
                                                      const std::string& host, uint32_t slot) {
  AddDeviceSpec spec{.id = id, .host_bdf = "", .slot = std::nullopt};
  if (absl::Status s = CheckDeviceId(id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("AddDevice: ", s.message()));
  }
  // A sysfs path names the device by its last component.
  std::string bdf = host;
  constexpr char kSysfs[] = "/sys/bus/pci/devices/";
  if (bdf.rfind(kSysfs, 0) == 0) bdf = bdf.substr(sizeof(kSysfs) - 1);
  while (!bdf.empty() && bdf.back() == '/') bdf.pop_back();
  absl::StatusOr<std::string> normalized = NormalizeBdf(bdf);
  if (!normalized.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddDevice: host: ", normalized.status().message(),
                     ", or its path under /sys/bus/pci/devices/"));
  }
  spec.host_bdf = *normalized;
  return Attach(spec, slot);
}

absl::StatusOr<DeviceSummary> VmController::AddDisk(const std::string& id, const std::string& path,
                                                    bool read_only, uint32_t queues, uint32_t slot,
                                                    virtio_blk::BlockEngine engine) {
  if (absl::Status s = CheckDeviceId(id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("AddDevice: ", s.message()));
  }
  if (path.empty() || path[0] != '/' || path.size() > 4095 ||
      path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddDevice: virtio_blk.path '", EchoForError(path),
                     "' is not an absolute path of at most 4095 bytes"));
  }
  if (queues > kMaxDiskQueues) {
    return absl::InvalidArgumentError(absl::StrCat("AddDevice: virtio_blk.queues ", queues,
                                                   " is not 1-", kMaxDiskQueues, " (or 0 for 1)"));
  }
  return Attach({.id = id,
                 .kind = "virtio-blk",
                 .disk_path = path,
                 .read_only = read_only,
                 .queues = static_cast<uint16_t>(queues == 0 ? 1 : queues),
                 .engine = engine},
                slot);
}

absl::StatusOr<DeviceSummary> VmController::AddNic(const std::string& id, const std::string& tap,
                                                   const std::string& mac, uint32_t queue_pairs,
                                                   uint32_t slot, bool vhost, NetLimits limits) {
  auto invalid = [](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("AddDevice: virtio_net.", field, ": ", why));
  };
  if (absl::Status s = CheckDeviceId(id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("AddDevice: ", s.message()));
  }
  if (absl::Status s = CheckTapName(tap); !s.ok()) return invalid("tap", s.message());
  AddDeviceSpec spec{.id = id, .kind = "virtio-net", .tap = tap, .vhost = vhost};
  if (!mac.empty()) {
    absl::StatusOr<std::array<uint8_t, 6>> parsed = ParseMac(mac);
    if (!parsed.ok()) return invalid("mac", parsed.status().message());
    spec.mac = *parsed;
  }
  if (queue_pairs > kMaxNetQueuePairs) {
    return invalid("queue_pairs",
                   absl::StrCat(queue_pairs, " is not 1-", kMaxNetQueuePairs, " (or 0 for 1)"));
  }
  spec.queue_pairs = static_cast<uint16_t>(queue_pairs == 0 ? 1 : queue_pairs);
  for (uint64_t v : {limits.rx_bytes, limits.rx_packets, limits.tx_bytes, limits.tx_packets}) {
    if (v > (uint64_t{1} << 40)) {
      return invalid("rx_limit/tx_limit", absl::StrCat(v, " is over 2^40 a second"));
    }
  }
  if (vhost && limits.any()) {
    return invalid("vhost", "rate limits need vmm's data path: vhost-net has no limiter");
  }
  spec.net_limits = limits;
  return Attach(spec, slot);
}

absl::StatusOr<DeviceSummary> VmController::Attach(const AddDeviceSpec& requested, uint32_t slot) {
  AddDeviceSpec spec = requested;
  if (slot > 31) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddDevice: slot ", slot, " is not 1-31 (or 0 for any free slot)"));
  }
  if (slot != 0) spec.slot = static_cast<uint8_t>(slot);
  const std::string& id = spec.id;
  absl::StatusOr<DeviceSummary> out = absl::InternalError("not run");
  RETURN_IF_ERROR(OnLoop("AddDevice", [&] {
    if (state() != VmState::kRunning) {
      out = absl::FailedPreconditionError(
          absl::StrCat("AddDevice: the VM is ", VmStateName(state()), ", not RUNNING"));
      return;
    }
    out = ops_.AddDevice(spec);
    if (!out.ok()) {
      out = absl::Status(out.status().code(),
                         absl::StrCat("AddDevice ", id, ": ", out.status().message()));
      const bool disk = spec.kind == "virtio-blk", nic = spec.kind == "virtio-net";
      DeviceSummary failed{.id = id,
                           .kind = disk  ? DeviceSummary::Kind::kVirtioBlk
                                   : nic ? DeviceSummary::Kind::kVirtioNet
                                         : DeviceSummary::Kind::kVfioPci,
                           .host_bdf = spec.host_bdf};
      if (disk) failed.disk = DiskSummary{.path = spec.disk_path, .read_only = spec.read_only};
      if (nic) failed.net = NetSummary{.tap = spec.tap, .mac = spec.mac};
      OnDeviceEvent(
          {VmEvent::DeviceChanged::Type::kFailed, failed, std::string(out.status().message())});
      return;
    }
    OnDeviceEvent({VmEvent::DeviceChanged::Type::kAdded, *out, "AddDevice request"});
  }));
  return out;
}

absl::StatusOr<DeviceSummary> VmController::RemoveDevice(const std::string& id,
                                                         absl::Duration timeout) {
  if (id.empty()) return absl::InvalidArgumentError("RemoveDevice: the device id is empty");
  // No device has an id AddDevice would refuse.
  if (absl::Status s = CheckDeviceId(id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("RemoveDevice: ", s.message()));
  }
  if (timeout == absl::ZeroDuration()) timeout = kDefaultRemoveTimeout;
  if (timeout < absl::ZeroDuration() || timeout > kMaxRemoveTimeout) {
    return absl::InvalidArgumentError(absl::StrCat("RemoveDevice: timeout ",
                                                   absl::FormatDuration(timeout), " is not in (0, ",
                                                   absl::FormatDuration(kMaxRemoveTimeout), "]"));
  }
  absl::StatusOr<DeviceSummary> device = absl::InternalError("not run");
  auto gone = std::make_shared<bool>(false);
  RETURN_IF_ERROR(OnLoop("RemoveDevice", [&] {
    {
      MutexLock lock(mu_);
      if (state_ != VmState::kRunning) {
        device = absl::FailedPreconditionError(
            absl::StrCat("RemoveDevice: the VM is ", VmStateName(state_),
                         ", not RUNNING (a paused guest cannot release a device)"));
        return;
      }
      if (removals_.count(id)) {
        device = absl::FailedPreconditionError(
            absl::StrCat("RemoveDevice: ", id, " is already being removed"));
        return;
      }
      removals_[id] = gone;
    }
    device = ops_.BeginRemoveDevice(id);
    if (!device.ok()) {
      MutexLock lock(mu_);
      removals_.erase(id);
      device = absl::Status(device.status().code(),
                            absl::StrCat("RemoveDevice: ", device.status().message()));
    }
  }));
  if (!device.ok()) return device.status();
  {
    MutexLock lock(mu_);
    // The VM stopping ends the wait too: a long timeout must not hold vmm's exit.
    removed_cv_.WaitFor(mu_, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return *gone || state_ == VmState::kStopping;
    });
    if (*gone) return device;
    if (state_ == VmState::kStopping) {
      removals_.erase(id);
      return absl::UnavailableError(
          absl::StrCat("RemoveDevice: the VM stopped before the guest "
                       "released ",
                       id));
    }
  }
  // Out of time: withdraw the request on the loop, unless the guest just released the device (its
  // kRemoved delivered, or still on the way: then the device is no longer there to withdraw).
  bool late = false;
  RETURN_IF_ERROR(OnLoop("RemoveDevice", [&] {
    {
      MutexLock lock(mu_);
      late = *gone;
      if (late) return;
    }
    late = !ops_.CancelRemoveDevice(id);
    MutexLock lock(mu_);
    removals_.erase(id);
  }));
  if (late) return device;
  return absl::DeadlineExceededError(absl::StrCat("RemoveDevice: the guest did not release ", id,
                                                  " within ", absl::FormatDuration(timeout),
                                                  "; it stays attached and usable"));
}

}  // namespace vmmkit::vmm
