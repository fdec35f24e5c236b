// File: vmm/device_manager.h
// -----------------------------------------------------------------------------
// DeviceManager attaches and detaches the VM's PCI functions, at start (--device) and at run time
// (AddDevice, RemoveDevice, a guest's eject). An attach is all or nothing: each step pushes its
// undo onto a list that runs in reverse if a later step fails, so a failure leaves no fd,
// mapping, route, slot, BAR or listing behind; the error names the step. Hotplug goes through the
// ACPI events device: the guest is told of a new function once the request that added it has
// been answered, and asked to release one before it is detached; whether it was asked or not, a
// function leaves when the guest's _EJ0 says so, and the device manager reports that.
//
// Passed-through functions come from passthrough/: VfioHost opens them (container, group, DMA
// mapping of guest RAM) and VfioPciDevice presents them on the machine.
//
//   DeviceManager dm(machine, *acpi_events, {.post = ..., .on_removed = ...});
//   ASSIGN_OR_RETURN(DeviceSummary d, dm.Add({.id = "hp0", .host_bdf = "0000:01:00.0"},
//                                            /*hotplug=*/true));
//   ASSIGN_OR_RETURN(d, dm.BeginRemove("hp0"));   // the guest is asked; OnGuestEjected follows
//
// Thread-safety: every method may be called from any thread (the event loop adds and removes,
// an ejecting vCPU detaches). The manager's lock is taken before the machine's (lock order:
// docs/architecture.md); the `post` and `on_removed` hooks are called without it.

#ifndef VMMKIT_VMM_DEVICE_MANAGER_H_
#define VMMKIT_VMM_DEVICE_MANAGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "devices/acpi_events.h"
#include "passthrough/vfio_host.h"
#include "passthrough/vfio_pci_device.h"
#include "vmm/controller.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

struct DeviceManagerOptions {
  // Runs `fn` on the event loop later; false if the loop is gone (then the guest is told at once).
  std::function<bool(std::function<void()>)> post;
  // A function left because the guest released it (asked or not); from the ejecting vCPU.
  std::function<void(const DeviceSummary&)> on_removed;
  // Ids that belong to the platform: refused for new functions, never removable.
  std::vector<std::string> platform_ids;
  passthrough::VfioHostOptions vfio;  // Where VFIO and sysfs are (tests: a fake kernel).
};

class DeviceManager {
 public:
  // `machine` and `hotplug` must outlive the manager.
  DeviceManager(Machine& machine, devices::AcpiEvents& hotplug, DeviceManagerOptions options);
  ~DeviceManager();  // RemoveAll().
  DeviceManager(const DeviceManager&) = delete;
  DeviceManager& operator=(const DeviceManager&) = delete;

  // Attaches a host PCI function in `spec.slot` (or the first free one). With `hotplug`, the guest
  // is told through ACPI on the loop's next turn. ALREADY_EXISTS for an id or host function in use;
  // RESOURCE_EXHAUSTED for a full bus or taken slot; otherwise the failing step's error.
  absl::StatusOr<DeviceSummary> Add(const AddDeviceSpec& spec, bool hotplug);
  // Asks the guest to release `id`. NOT_FOUND; FAILED_PRECONDITION for a platform device or a
  // removal already asked for.
  absl::StatusOr<DeviceSummary> BeginRemove(const std::string& id);
  // Withdraws an unanswered request; false if the function is already gone.
  bool CancelRemove(const std::string& id);
  // The guest's _EJ0 released `slot` (on that vCPU's thread): the function there is detached
  // before the guest's write completes, as a real slot is off once its eject method returns.
  void OnGuestEjected(uint8_t slot);
  // Detaches everything (at teardown).
  void RemoveAll();

  std::vector<DeviceSummary> List() const;
  // DMA mappings of guest RAM for the passed-through functions.
  void CountResources(Resources& r) const;

 private:
  struct Attached {
    std::string id;
    std::string host_bdf;
    uint8_t slot;
    int group_id;
    std::shared_ptr<passthrough::VfioPciDevice> device;
    std::vector<std::pair<bool, uint64_t>> bars;  // (I/O, address) given out by PlaceBars.
    std::optional<absl::Time> removing;           // When the guest was asked to release it.
  };
  void DetachLocked(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  DeviceSummary SummaryLocked(const Attached& a) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyAdded(uint8_t slot, const std::weak_ptr<passthrough::VfioPciDevice>& added);
  bool IsPlatform(const std::string& id) const;

  Machine& machine_;
  devices::AcpiEvents& hotplug_;
  const DeviceManagerOptions options_;
  // Taken before machine_.lock().
  mutable Mutex mu_;
  passthrough::VfioHost vfio_ ABSL_GUARDED_BY(mu_);
  std::vector<Attached> attached_ ABSL_GUARDED_BY(mu_);
  // Keys each function's vectors in the MSI routes.
  uint32_t next_device_number_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_DEVICE_MANAGER_H_
