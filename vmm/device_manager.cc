#include "vmm/device_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {

DeviceManager::DeviceManager(Machine& machine, pci::HotplugSlots& hotplug,
                             DeviceManagerOptions options)
    : machine_(machine), hotplug_(hotplug), options_(std::move(options)) {}

DeviceManager::~DeviceManager() { RemoveAll(); }

void DeviceManager::RegisterKind(const std::string& name, PciFunctionKind kind) {
  kinds_[name] = std::move(kind);
}

bool DeviceManager::IsPlatform(const std::string& id) const {
  return std::find(options_.platform_ids.begin(), options_.platform_ids.end(), id) !=
         options_.platform_ids.end();
}

AddressAllocator& DeviceManager::WindowFor(const pci::Bar& bar) {
  if (bar.io) return machine_.io_space();
  return bar.is64 ? machine_.mmio64_space() : machine_.mmio_space();
}

std::optional<DeviceIommuSummary> GuestIommuSummary(Machine& machine, uint16_t requester_id) {
  if (machine.iommu() == nullptr) return std::nullopt;
  MutexLock lock(machine.lock());  // The unit's state changes under it (a guest's invalidation).
  iommu::vtd::RemappingUnit& unit = *machine.iommu();
  const iommu::vtd::UnitCounters c = unit.DeviceCounters(requester_id);
  return DeviceIommuSummary{.domain = unit.Domain(requester_id),
                            .translation_enabled = unit.translation_enabled(),
                            .page_invalidations = c.page_invalidations,
                            .domain_invalidations = c.domain_invalidations,
                            .global_invalidations = c.global_invalidations,
                            .context_invalidations = c.context_invalidations};
}

absl::StatusOr<DeviceSummary> DeviceManager::Add(const AddDeviceSpec& spec, bool hotplug) {
  auto kind = kinds_.find(spec.kind);
  if (kind == kinds_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("no device kind ", spec.kind));
  }
  const std::string host = kind->second.exclusive ? kind->second.exclusive(spec) : "";
  MutexLock lock(mu_);
  for (const Attached& a : attached_) {
    if (a.id == spec.id)
      return absl::AlreadyExistsError(absl::StrCat("id ", spec.id, " is in use"));
    if (!host.empty() && a.host == host) {
      return absl::AlreadyExistsError(
          kind->second.summary_kind == DeviceSummary::Kind::kVfioPci
              ? absl::StrCat("host device ", host, " is already passed through as ", a.id)
              : absl::StrCat(host, " is already in use by ", a.id));
    }
  }
  if (IsPlatform(spec.id))
    return absl::AlreadyExistsError(absl::StrCat("id ", spec.id, " is in use"));
  pci::PciRootBus& pci = machine_.pci();
  const std::optional<uint8_t> slot = spec.slot ? spec.slot : pci.FreeSlot();
  if (!slot) return absl::ResourceExhaustedError("slot: no free slot on the PCI root bus");
  if (pci.Occupied(*slot)) {
    return absl::ResourceExhaustedError(absl::StrCat("slot: slot ", *slot, " is taken"));
  }

  // Every step below is undone, in reverse, if a later one fails.
  StepTimer timer;
  std::vector<std::function<void()>> undo;
  auto fail = [&](const char* step, const absl::Status& s) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return Prefixed(s, step);
  };
  const PciSlot where{.slot = *slot,
                      .requester_id = static_cast<uint16_t>(*slot << 3),
                      .intx_gsi = SlotGsi(*slot),
                      .device_number = next_device_number_++};
  absl::StatusOr<NewPciFunction> made = kind->second.create(spec, where, timer);
  if (!made.ok()) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return made.status();  // The kind's error names its step.
  }
  std::shared_ptr<pci::PciFunction> function = made->function;
  // Off the machine before what its kind holds for it is released.
  undo.push_back([&made, &function, &timer] {
    made->release(
        [&function] {
          function->Detach();
          function.reset();
        },
        timer);
  });
  // As firmware would: BARs at free, naturally aligned addresses; the guest may move them.
  std::vector<std::pair<AddressAllocator*, uint64_t>> placed;
  undo.push_back([&placed] {
    for (auto [space, address] : placed) (void)space->Free(address);
  });
  absl::Status status = function->PlaceBars([&](const pci::Bar& bar) -> absl::StatusOr<uint64_t> {
    AddressAllocator& space = WindowFor(bar);
    ASSIGN_OR_RETURN(uint64_t address,
                     space.Allocate(bar.size, std::max<uint64_t>(bar.size, bar.io ? 4 : 4096)));
    placed.push_back({&space, address});
    return address;
  });
  if (!status.ok()) return fail("place the BARs", status);
  if (absl::Status s = pci.AddDevice(*slot, function); !s.ok()) {
    return fail("plug into the slot", s);
  }
  attached_.push_back({spec.id, spec.kind, host, *slot, function, std::move(made->release),
                       std::move(placed), std::nullopt});
  timer.Step("plug");
  LogInfo("vmm: attached ", spec.id, host.empty() ? "" : absl::StrCat(" (", host, ")"), " in ",
          timer.Summary());
  // Only now does the guest hear of it, and from the loop's next turn: the request that added it
  // has then been answered. The guest reacts at once (a vCPU wakes to rescan the slot), and on a
  // busy host CPU that work would run ahead of the reply (docs/hotplug.md).
  if (hotplug &&
      !(options_.post &&
        options_.post([this, slot = *slot, added = std::weak_ptr<pci::PciFunction>(function)] {
          NotifyAdded(slot, added);
        }))) {
    hotplug_.DeviceAdded(*slot);  // No loop (it stopped, or never ran): say it now.
  }
  return SummaryLocked(attached_.back());
}

void DeviceManager::NotifyAdded(uint8_t slot, const std::weak_ptr<pci::PciFunction>& added) {
  // Not if it went meanwhile (the guest may eject any slot, even one it has not been told of).
  const std::shared_ptr<pci::PciFunction> function = added.lock();
  if (function == nullptr) return;
  MutexLock lock(mu_);
  for (const Attached& a : attached_) {
    if (a.slot == slot && a.function == function) hotplug_.DeviceAdded(slot);
  }
}

void DeviceManager::DetachLocked(size_t index) {
  StepTimer timer;
  Attached a = std::move(attached_[index]);
  attached_.erase(attached_.begin() + static_cast<long>(index));
  (void)machine_.pci().RemoveDevice(a.slot);  // Off the bus first: no new config accesses.
  for (auto [space, address] : a.bars) (void)space->Free(address);
  // Off the machine (interrupts, BAR slots and traps) with its DMA stopped, then dropped; its kind
  // may run that alongside its own teardown (vfio-pci: the last function's unmap of guest RAM).
  std::shared_ptr<pci::PciFunction> function = std::move(a.function);
  a.release(
      [&function] {
        function->Detach();
        function.reset();
      },
      timer);
  LogInfo("vmm: detached ", a.id, a.host.empty() ? "" : absl::StrCat(" (", a.host, ")"), " in ",
          timer.Summary());
}

void DeviceManager::RemoveAll() {
  MutexLock lock(mu_);
  while (!attached_.empty()) DetachLocked(attached_.size() - 1);
}

DeviceSummary DeviceManager::SummaryLocked(const Attached& a) const {
  auto kind = kinds_.find(a.kind);
  const DeviceSummary::Kind summary_kind =
      kind != kinds_.end() ? kind->second.summary_kind : DeviceSummary::Kind::kPci;
  DeviceSummary s{a.id, summary_kind, absl::StrFormat("0000:00:%02x.0", a.slot),
                  // Only a passed-through function's exclusive resource is a host PCI address.
                  summary_kind == DeviceSummary::Kind::kVfioPci ? a.host : "",
                  absl::StrCat(a.function->Describe(), a.removing ? ", being removed" : ""),
                  std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  if (kind != kinds_.end() && kind->second.iommu_summary) {
    s.iommu = kind->second.iommu_summary(static_cast<uint16_t>(a.slot << 3));
  }
  if (kind != kinds_.end() && kind->second.summarize) {
    kind->second.summarize(static_cast<uint16_t>(a.slot << 3), s);
  }
  return s;
}

absl::StatusOr<DeviceSummary> DeviceManager::BeginRemove(const std::string& id) {
  MutexLock lock(mu_);
  for (Attached& a : attached_) {
    if (a.id != id) continue;
    if (a.removing) {
      return absl::FailedPreconditionError(absl::StrCat(id, " is already being removed"));
    }
    a.removing = absl::Now();
    hotplug_.RequestEject(a.slot);
    return SummaryLocked(a);
  }
  if (IsPlatform(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat(id, " is part of the platform and cannot be removed"));
  }
  return absl::NotFoundError(absl::StrCat("no device ", id));
}

bool DeviceManager::CancelRemove(const std::string& id) {
  MutexLock lock(mu_);
  for (Attached& a : attached_) {
    if (a.id == id) {
      a.removing.reset();
      hotplug_.CancelEject(a.slot);
      return true;
    }
  }
  return false;  // The guest released it meanwhile: it is gone.
}

void DeviceManager::OnGuestEjected(uint8_t slot) {
  std::optional<DeviceSummary> gone;
  std::string asked;
  {
    MutexLock lock(mu_);
    for (size_t i = 0; i < attached_.size(); ++i) {
      if (attached_[i].slot != slot) continue;
      gone = SummaryLocked(attached_[i]);
      if (attached_[i].removing) {
        asked = absl::StrCat(" ", absl::ToInt64Milliseconds(absl::Now() - *attached_[i].removing),
                             " ms after the request");
      }
      DetachLocked(i);
      break;
    }
  }
  if (!gone) return;  // An empty slot: nothing to do (the guest's mistake, or malice).
  LogInfo("vmm: ", gone->id,
          gone->host_bdf.empty() ? "" : absl::StrCat(" (host ", gone->host_bdf, ")"),
          " released by the guest", asked, " and detached");
  if (!options_.on_removed) return;
  auto report = [on_removed = options_.on_removed, gone = *gone] { on_removed(gone); };
  if (!options_.post || !options_.post(report)) report();
}

std::vector<DeviceSummary> DeviceManager::List() const {
  MutexLock lock(mu_);
  std::vector<DeviceSummary> out;
  for (const Attached& a : attached_) out.push_back(SummaryLocked(a));
  return out;
}

void DeviceManager::CountResources(Resources& r) const {
  MutexLock lock(mu_);
  for (const auto& [name, kind] : kinds_) {
    if (kind.count_resources) kind.count_resources(r);
  }
}

}  // namespace vmmkit::vmm
