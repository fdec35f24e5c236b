// File: vmm/device_manager.h
// -----------------------------------------------------------------------------
// DeviceManager attaches and detaches the VM's PCI functions, at start (--device) and at run time
// (AddDevice, RemoveDevice, a guest's eject), whatever they are: each kind of function
// ("vfio-pci", "virtio-blk") is registered once with a factory, and the manager does
// the rest the same way for all: the slot, the BARs (placed as firmware would, from the machine's
// windows), the root bus, hotplug and listing. An attach is all or nothing: each step pushes its
// undo onto a list that runs in reverse if a later step fails, so a failure leaves no fd,
// mapping, route, slot, BAR or listing behind; the error names the step. Hotplug goes through the
// ACPI events device: the guest is told of a new function once the request that added it has
// been answered, and asked to release one before it is detached; whether it was asked or not, a
// function leaves when the guest's _EJ0 says so, and the manager reports that.
//
//   DeviceManager dm(machine, *hotplug_slots, {.post = ..., .on_removed = ...});
//   dm.RegisterKind("vfio-pci", VfioPciKind(machine, {}));
//   ASSIGN_OR_RETURN(DeviceSummary d, dm.Add({.id = "hp0", .host_bdf = "0000:01:00.0"},
//                                            /*hotplug=*/true));
//   ASSIGN_OR_RETURN(d, dm.BeginRemove("hp0"));   // the guest is asked; OnGuestEjected follows
//
// Thread-safety: Add, BeginRemove, CancelRemove, OnGuestEjected, RemoveAll, List and
// CountResources may be called from any thread (the event loop adds and removes, an ejecting vCPU
// detaches); a kind's hooks run under the manager's lock, which is taken before the machine's
// (lock order: docs/architecture.md). The `post` and `on_removed` hooks are called without it.
// RegisterKind before any of them.

#ifndef VMMKIT_VMM_DEVICE_MANAGER_H_
#define VMMKIT_VMM_DEVICE_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "base/step_timer.h"
#include "pci/function.h"
#include "pci/hotplug_slots.h"
#include "vmm/controller.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// Where a new function goes, and what it needs to know of it.
struct PciSlot {
  uint8_t slot = 0;
  uint16_t requester_id = 0;   // bus << 8 | device << 3 | function, as the guest sees it.
  uint32_t intx_gsi = 0;       // The IOAPIC input of the slot's INTx pins (the DSDT's _PRT).
  uint32_t device_number = 0;  // Unique in the VM: keys the function's MSI vectors.
};

// A function a kind made. `release` gives back what the kind set up for it outside the function
// itself (a VFIO group, guest RAM's DMA mapping); it is called once the function is off the bus,
// with `destroy`, which detaches and drops the function and which it must run (a kind may run it
// alongside its own teardown), and the detach's step timer for the log.
using ReleaseFn = std::function<void(const std::function<void()>& destroy, StepTimer& steps)>;
struct NewPciFunction {
  std::shared_ptr<pci::PciFunction> function;
  ReleaseFn release;
};

// A kind of PCI function the device manager can add.
struct PciFunctionKind {
  DeviceSummary::Kind summary_kind = DeviceSummary::Kind::kPci;
  // A host resource only one function may hold (a vfio-pci function's is shown as its host
  // address), or "" for none.
  std::function<std::string(const AddDeviceSpec&)> exclusive;
  // Makes the function for `spec` in `slot`: all or nothing. Its error names the step that failed.
  std::function<absl::StatusOr<NewPciFunction>(const AddDeviceSpec&, const PciSlot&, StepTimer&)>
      create;
  // Adds what the kind holds for the VM (DMA mappings) to the resource report. Optional.
  std::function<void(Resources&)> count_resources;
  // What the guest-visible IOMMU does for the function with `requester_id`, for its summary.
  // Optional; nullopt for a function not behind one.
  std::function<std::optional<DeviceIommuSummary>(uint16_t requester_id)> iommu_summary;
  // Adds what the kind knows of the function with `requester_id` to its summary (a disk's image
  // and counters). Optional.
  std::function<void(uint16_t requester_id, DeviceSummary&)> summarize;
};

// What the machine's guest-visible VT-d unit does for the function with `requester_id`: its
// domain, whether translation is on, and the guest's invalidations that reached it; nullopt
// without a unit. Takes the machine lock. For kinds' iommu_summary hooks.
std::optional<DeviceIommuSummary> GuestIommuSummary(Machine& machine, uint16_t requester_id);

struct DeviceManagerOptions {
  // Runs `fn` on the event loop later; false if the loop is gone (then the guest is told at once).
  std::function<bool(std::function<void()>)> post;
  // A function left because the guest released it (asked or not). Posted: it runs on the loop
  // after whatever loop task was running when the guest ejected, so a report of the removal
  // never overtakes the report of the add that task was making (the guest may eject a slot the
  // moment it is plugged). Called at once only when the loop is gone.
  std::function<void(const DeviceSummary&)> on_removed;
  // Ids that belong to the platform: refused for new functions, never removable.
  std::vector<std::string> platform_ids;
};

class DeviceManager {
 public:
  // `machine` and `hotplug` must outlive the manager.
  DeviceManager(Machine& machine, pci::HotplugSlots& hotplug, DeviceManagerOptions options);
  ~DeviceManager();  // RemoveAll().
  DeviceManager(const DeviceManager&) = delete;
  DeviceManager& operator=(const DeviceManager&) = delete;

  void RegisterKind(const std::string& name, PciFunctionKind kind);

  // Attaches a function of `spec.kind` in `spec.slot` (or the first free one). With `hotplug`,
  // the guest is told through ACPI on the loop's next turn. INVALID_ARGUMENT for an unknown kind;
  // ALREADY_EXISTS for an id or host resource in use; RESOURCE_EXHAUSTED for a full bus or a taken
  // slot; otherwise the failing step's error.
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
  void CountResources(Resources& r) const;

 private:
  struct Attached {
    std::string id;
    std::string kind;
    std::string host;  // The kind's exclusive resource, if any.
    uint8_t slot;
    std::shared_ptr<pci::PciFunction> function;
    ReleaseFn release;
    std::vector<std::pair<AddressAllocator*, uint64_t>> bars;  // Given out by PlaceBars.
    std::optional<absl::Time> removing;  // When the guest was asked to release it.
  };
  void DetachLocked(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  DeviceSummary SummaryLocked(const Attached& a) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyAdded(uint8_t slot, const std::weak_ptr<pci::PciFunction>& added);
  bool IsPlatform(const std::string& id) const;
  // Where a BAR goes: 32-bit memory BARs in the window below 4 GiB, 64-bit ones above it,
  // I/O BARs in the I/O window.
  AddressAllocator& WindowFor(const pci::Bar& bar);

  Machine& machine_;
  pci::HotplugSlots& hotplug_;
  const DeviceManagerOptions options_;
  std::map<std::string, PciFunctionKind> kinds_;  // Written before use only.
  // Taken before machine_.lock().
  mutable Mutex mu_;
  std::vector<Attached> attached_ ABSL_GUARDED_BY(mu_);
  uint32_t next_device_number_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_DEVICE_MANAGER_H_
