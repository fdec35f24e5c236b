// File: vmm/controller.h
// -----------------------------------------------------------------------------
// VmController is the transport-free control plane of vmm: every RPC of proto/vmm/v1 is one
// method here, and every rule about when a request is allowed lives here (Pause only while
// RUNNING, nothing after Shutdown, ...). The gRPC layer only converts protos to these calls and
// absl::Status to grpc::Status; tests drive the controller directly, without gRPC.
//
// Threads. Requests arrive on gRPC threads. Each one is applied on the VMM's event loop through a
// LoopExecutor (the loop owns the VM), so they are serialized with everything else the loop does;
// the caller waits for the result. State lives behind mu_ so that GetVm and the watchers can read
// it from any thread.
//
//   VmController controller(vmm_ops, loop);
//   ASSIGN_OR_RETURN(VmStatus vm, controller.Pause());          // FAILED_PRECONDITION if paused
//   ASSIGN_OR_RETURN(auto events, controller.Watch());
//   while (auto e = events->Next(absl::Seconds(1))) { ... }

#ifndef VMMKIT_VMM_CONTROLLER_H_
#define VMMKIT_VMM_CONTROLLER_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "virtio_blk/engine.h"
#include "vmm/config.h"

namespace vmmkit::vmm {

enum class VmState { kCreated, kRunning, kPaused, kStopping };
const char* VmStateName(VmState state);

// Whether `code` is one the control plane answers with (proto/vmm/v1/vmm.proto says when): OK,
// INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED, UNAVAILABLE. Never UNKNOWN or INTERNAL: those would be vmm's bugs.
bool IsSpecifiedStatus(absl::StatusCode code);

// A device behind the guest-visible IOMMU (see proto DeviceIommu).
struct DeviceIommuSummary {
  std::optional<uint16_t> domain;
  bool translation_enabled = false;
  uint64_t shadowed_mappings = 0;
  uint64_t page_invalidations = 0, domain_invalidations = 0, global_invalidations = 0;
  uint64_t context_invalidations = 0;
  uint64_t host_map_calls = 0, host_unmap_calls = 0;
};

// A virtio-blk disk: its image and what the guest did with it.
struct DiskSummary {
  std::string path;
  bool read_only = false;
  uint64_t capacity_bytes = 0;
  uint32_t queues = 0;
  uint64_t reads = 0, writes = 0, flushes = 0, discards = 0, write_zeroes = 0;
  uint64_t bytes_read = 0, bytes_written = 0;
  uint64_t refused = 0;  // Requests answered with an error status.
  virtio_blk::BlockEngine engine = virtio_blk::BlockEngine::kThreads;
};

// A virtio-net interface: its tap and its traffic (see proto DeviceNet).
struct NetSummary {
  std::string tap;
  std::array<uint8_t, 6> mac = {};
  uint32_t queue_pairs = 0;
  bool vhost = false;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  uint64_t rx_dropped = 0, rx_filtered = 0, tx_dropped = 0, refused = 0;
};

// A virtio-vsock device: the guest's context id, and the interrupts the kernel's vhost-vsock had
// vmm relay (a sign of traffic each way).
struct VsockSummary {
  uint64_t cid = 0;
  uint64_t rx_interrupts = 0, tx_interrupts = 0;
};

struct DeviceSummary {
  enum class Kind { kPlatform, kPci, kVfioPci, kVirtioBlk, kVirtioNet, kVirtioVsock };
  std::string id;
  Kind kind = Kind::kPlatform;
  std::string guest_bdf;  // PCI only.
  std::string host_bdf;   // VFIO only.
  std::string description;
  std::optional<DeviceIommuSummary> iommu;
  std::optional<DiskSummary> disk;
  std::optional<NetSummary> net;
  std::optional<VsockSummary> vsock;
};

// What the VMM holds on the VM's behalf (see proto Resources).
struct Resources {
  uint64_t dma_mappings = 0, dma_mapped_bytes = 0, msi_routes = 0, memory_listeners = 0;
  uint64_t open_fds = 0, threads = 0, kvm_memory_slots = 0, heap_in_use_bytes = 0;
};

// AddDevice's arguments, validated by the controller.
struct AddDeviceSpec {
  std::string id;
  std::string host_bdf;  // Normalized "DDDD:BB:DD.F".
  std::optional<uint8_t> slot;
  std::string kind = "vfio-pci";  // The device manager's kind of PCI function.
  // virtio-blk: the image (a path vmm may open), read-only or not, and its queues (1-16).
  std::string disk_path;
  bool read_only = false;
  uint16_t queues = 1;
  virtio_blk::BlockEngine engine = virtio_blk::kDefaultEngine;
  // virtio-net: the tap (by name, or fds of one, one per queue pair: --net only), the guest's MAC
  // and the queue pairs (1-16; that many tap queues are opened by name).
  std::string tap;
  std::vector<int> tap_fds;
  std::array<uint8_t, 6> mac = {};
  uint16_t queue_pairs = 1;
  bool vhost = false;
  NetLimits net_limits;
  // virtio-vsock: the guest's context id.
  uint64_t vsock_cid = 0;
};

// What GetVm returns.
struct VmStatus {
  VmState state = VmState::kCreated;
  VmmConfig config;
  absl::Time create_time;
  std::optional<absl::Duration> boot_time;
  std::vector<int64_t> vcpu_tids;  // Host thread ids, by vCPU index (0 before start).
  std::vector<DeviceSummary> devices;
  Resources resources;
};

struct VmEvent {
  struct StateChanged {
    VmState old_state, new_state;
    std::string reason;
  };
  struct DeviceChanged {
    enum class Type { kAdded, kRemoved, kFailed };
    Type type;
    DeviceSummary device;
    std::string detail;
  };
  struct BootComplete {
    absl::Duration boot_time;
  };
  struct Error {
    absl::Status status;
  };
  absl::Time time;
  std::variant<StateChanged, DeviceChanged, BootComplete, Error> what;
};

// What the controller drives: the Vmm (or a fake in tests). Called on the event loop only.
class VmOperations {
 public:
  virtual ~VmOperations() = default;
  // Parks every vCPU outside KVM_RUN; returns once all are parked.
  virtual absl::Status PauseVcpus() = 0;
  virtual absl::Status ResumeVcpus() = 0;
  // Asks the guest to power off (ACPI power button). UNIMPLEMENTED if the VM has no way to.
  virtual absl::Status RequestGuestPowerOff() = 0;
  // Stops the VM now (the process then exits).
  virtual void Stop(const std::string& reason) = 0;
  // Everything in VmStatus but the state, which the controller keeps.
  virtual VmStatus Describe() const = 0;
  // Hot-plugs a passthrough device and tells the guest; all or nothing.
  virtual absl::StatusOr<DeviceSummary> AddDevice(const AddDeviceSpec& spec) = 0;
  // Asks the guest to release device `id`. When it has and the device is gone, the VMM reports
  // OnDeviceEvent(kRemoved). NOT_FOUND / FAILED_PRECONDITION (not removable, already removing).
  virtual absl::StatusOr<DeviceSummary> BeginRemoveDevice(const std::string& id) = 0;
  // The guest did not release it in time: withdraw the request; the device stays. False if the
  // device is gone after all (the guest released it just now, and its kRemoved may still be on
  // the way from the thread that detached it).
  virtual bool CancelRemoveDevice(const std::string& id) = 0;
};

// Runs work on the event loop.
class LoopExecutor {
 public:
  virtual ~LoopExecutor() = default;
  // Runs `fn` on the loop and waits for it. UNAVAILABLE if the loop no longer runs.
  virtual absl::Status RunOnLoop(std::function<void()> fn) = 0;
  // Runs `fn` on the loop after `delay` (if the loop still runs then).
  virtual void RunOnLoopAfter(absl::Duration delay, std::function<void()> fn) = 0;
};

// One watcher's events: a bounded queue. A slow reader loses the oldest events and gets an Error
// event saying how many were dropped.
class EventStream {
 public:
  static constexpr size_t kCapacity = 256;
  // The next event, waiting up to `timeout`; nullopt on timeout or once closed and drained.
  std::optional<VmEvent> Next(absl::Duration timeout);
  // No more events will come (the VM stopped, or the watcher went away).
  bool closed() const;
  void Close();

 private:
  friend class VmController;
  void Push(const VmEvent& e);
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<VmEvent> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class VmController {
 public:
  static constexpr int kMaxWatchers = 16;
  static constexpr absl::Duration kDefaultGracefulTimeout = absl::Seconds(30);
  static constexpr absl::Duration kMaxGracefulTimeout = absl::Minutes(10);
  static constexpr absl::Duration kDefaultRemoveTimeout = absl::Seconds(10);
  static constexpr absl::Duration kMaxRemoveTimeout = absl::Minutes(5);

  VmController(VmOperations& ops, LoopExecutor& loop) : ops_(ops), loop_(loop) {}

  absl::StatusOr<VmStatus> GetVm();
  // FAILED_PRECONDITION unless RUNNING (Pause) / PAUSED (Resume).
  absl::StatusOr<VmStatus> Pause();
  absl::StatusOr<VmStatus> Resume();
  // Graceful: the guest is asked to power off and the VM is stopped after `timeout` if it has not
  // (INVALID_ARGUMENT outside (0, 10 min]; zero means the default 30 s). Forced: stops now.
  // FAILED_PRECONDITION if already stopping.
  absl::StatusOr<VmState> Shutdown(bool graceful, absl::Duration timeout = absl::ZeroDuration());
  absl::StatusOr<std::vector<DeviceSummary>> ListDevices();
  // INVALID_ARGUMENT for an empty id, NOT_FOUND for an unknown one.
  absl::StatusOr<DeviceSummary> GetDevice(const std::string& id);
  // Hotplug (RUNNING only): see proto AddDevice/RemoveDevice. `host` is a BDF or a sysfs path;
  // `slot` 0 picks one. RemoveDevice waits up to `timeout` (0: kDefaultRemoveTimeout) for the
  // guest.
  absl::StatusOr<DeviceSummary> AddDevice(const std::string& id, const std::string& host,
                                          uint32_t slot);
  // A virtio-blk disk on the image at `path` (absolute; at most 4095 bytes; no NUL), with
  // `queues` request queues (1-16; 0 means 1), whose I/O `engine` does.
  absl::StatusOr<DeviceSummary> AddDisk(
      const std::string& id, const std::string& path, bool read_only, uint32_t queues,
      uint32_t slot, virtio_blk::BlockEngine engine = virtio_blk::kDefaultEngine);
  // A virtio-net interface on the tap `tap` (CheckTapName), with the guest MAC `mac` ("" for one
  // vmm picks; else ParseMac's form) and `queue_pairs` (1-16; 0 means 1), served by vmm or, with
  // `vhost`, by the kernel's vhost-net, with `limits` (vmm's path only; each at most 2^40).
  absl::StatusOr<DeviceSummary> AddNic(const std::string& id, const std::string& tap,
                                       const std::string& mac, uint32_t queue_pairs, uint32_t slot,
                                       bool vhost = false, NetLimits limits = {});
  absl::StatusOr<DeviceSummary> RemoveDevice(const std::string& id,
                                             absl::Duration timeout = absl::ZeroDuration());
  // RESOURCE_EXHAUSTED beyond kMaxWatchers open streams; UNAVAILABLE once stopping.
  absl::StatusOr<std::shared_ptr<EventStream>> Watch();

  // From the VMM, on the event loop (or, once the loop is gone, from the thread that stopped it
  // or detached a device). Each takes mu_ and calls nothing of the VMM's.
  void OnStarted();
  void OnBootComplete(absl::Duration boot_time);
  void OnStopping(const std::string& reason);  // Closes every event stream.
  void OnError(const absl::Status& status);
  void OnDeviceEvent(VmEvent::DeviceChanged event);

  VmState state() const;

 private:
  // On the loop: `op` moves the VM from `from` to `to` (FAILED_PRECONDITION in any other state).
  absl::StatusOr<VmStatus> Transition(const char* rpc, VmState from, VmState to,
                                      const std::function<absl::Status()>& op);
  // Runs `fn` on the loop; maps a loop that is gone to UNAVAILABLE.
  absl::Status OnLoop(const char* rpc, std::function<void()> fn);
  void SetState(VmState next, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(VmEvent e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  VmStatus StatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AddDevice and AddDisk once `spec` is valid: on the loop, RUNNING only, reported as an event.
  absl::StatusOr<DeviceSummary> Attach(const AddDeviceSpec& spec, uint32_t slot);

  VmOperations& ops_;
  LoopExecutor& loop_;
  mutable Mutex mu_;
  VmState state_ ABSL_GUARDED_BY(mu_) = VmState::kCreated;
  std::optional<absl::Duration> boot_time_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> graceful_deadline_ ABSL_GUARDED_BY(mu_);  // A power-off was asked.
  std::vector<std::weak_ptr<EventStream>> watchers_ ABSL_GUARDED_BY(mu_);
  // RemoveDevice calls waiting for the guest, by device id; set to true (under mu_) when it is
  // gone.
  std::map<std::string, std::shared_ptr<bool>> removals_ ABSL_GUARDED_BY(mu_);
  CondVar removed_cv_;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_CONTROLLER_H_
