#include "vmm/device_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/step_timer.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {

DeviceManager::DeviceManager(Machine& machine, devices::AcpiEvents& hotplug,
                             DeviceManagerOptions options)
    : machine_(machine),
      hotplug_(hotplug),
      options_(std::move(options)),
      vfio_(machine.address_space(), machine.lock(), options_.vfio) {}

DeviceManager::~DeviceManager() { RemoveAll(); }

bool DeviceManager::IsPlatform(const std::string& id) const {
  return std::find(options_.platform_ids.begin(), options_.platform_ids.end(), id) !=
         options_.platform_ids.end();
}

absl::StatusOr<DeviceSummary> DeviceManager::Add(const AddDeviceSpec& spec, bool hotplug) {
  MutexLock lock(mu_);
  for (const Attached& a : attached_) {
    if (a.id == spec.id)
      return absl::AlreadyExistsError(absl::StrCat("id ", spec.id, " is in use"));
    if (a.host_bdf == spec.host_bdf) {
      return absl::AlreadyExistsError(
          absl::StrCat("host device ", spec.host_bdf, " is already passed through as ", a.id));
    }
  }
  if (IsPlatform(spec.id))
    return absl::AlreadyExistsError(absl::StrCat("id ", spec.id, " is in use"));
  devices::PciRootBus& pci = machine_.pci();
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
    return step == nullptr ? s : absl::Status(s.code(), absl::StrCat(step, ": ", s.message()));
  };
  absl::StatusOr<passthrough::VfioHost::Function> function = vfio_.Open(spec.host_bdf, &timer);
  if (!function.ok()) return fail(nullptr, function.status());  // Its error names the step.
  const int group_id = function->group_id;
  absl::StatusOr<std::shared_ptr<passthrough::VfioPciDevice>> device =
      passthrough::VfioPciDevice::Create(
          std::move(function->device),
          {&machine_.vm(), &machine_.address_space(), &machine_.mmio(), &machine_.pio(),
           &machine_.msi_routes(), &machine_.lock()},
          {.id = spec.id,
           .device_number = next_device_number_++,
           .guest_requester_id = static_cast<uint16_t>(*slot << 3),
           .intx_gsi = SlotGsi(*slot)});
  if (!device.ok()) {
    vfio_.Close(group_id, [] {});  // The device fd closed already, inside Create.
    return fail("attach the device", device.status());
  }
  timer.Step("attach");
  // The device leaves before its group (and, for the last one, guest RAM's DMA mappings) does.
  undo.push_back([this, group_id, &device] {
    mu_.AssertHeld();  // Undo runs inside Add, under the lock.
    vfio_.Close(group_id, [&device] {
      (*device)->Detach();
      device->reset();
    });
  });
  // As firmware would: BARs at free, naturally aligned addresses; the guest may move them.
  std::vector<std::pair<bool, uint64_t>> bars;  // (io, address) allocated.
  undo.push_back([this, &bars] {
    for (auto [io, address] : bars) {
      (void)(io ? machine_.io_space() : machine_.mmio_space()).Free(address);
    }
  });
  absl::Status placed =
      (*device)->PlaceBars([&](const passthrough::VirtualBar& bar) -> absl::StatusOr<uint64_t> {
        AddressAllocator& space = bar.io ? machine_.io_space() : machine_.mmio_space();
        ASSIGN_OR_RETURN(uint64_t address,
                         space.Allocate(bar.size, std::max<uint64_t>(bar.size, bar.io ? 4 : 4096)));
        bars.push_back({bar.io, address});
        return address;
      });
  if (!placed.ok()) return fail("place the BARs", placed);
  if (absl::Status s = pci.AddDevice(*slot, *device); !s.ok()) return fail("plug into the slot", s);
  attached_.push_back(
      {spec.id, spec.host_bdf, *slot, group_id, *device, std::move(bars), std::nullopt});
  timer.Step("plug");
  LogInfo("vmm: attached ", spec.id, " (host ", spec.host_bdf, ") in ", timer.Summary());
  // Only now does the guest hear of it, and from the loop's next turn: the request that added it
  // has then been answered. The guest reacts at once (a vCPU wakes to rescan the slot), and on a
  // busy host CPU that work would run ahead of the reply (docs/hotplug.md).
  if (hotplug && !(options_.post &&
                   options_.post([this, slot = *slot,
                                  added = std::weak_ptr<passthrough::VfioPciDevice>(*device)] {
                     NotifyAdded(slot, added);
                   }))) {
    hotplug_.DeviceAdded(*slot);  // No loop (it stopped, or never ran): say it now.
  }
  return SummaryLocked(attached_.back());
}

void DeviceManager::NotifyAdded(uint8_t slot,
                                const std::weak_ptr<passthrough::VfioPciDevice>& added) {
  // Not if it went meanwhile (the guest may eject any slot, even one it has not been told of).
  const std::shared_ptr<passthrough::VfioPciDevice> device = added.lock();
  if (device == nullptr) return;
  MutexLock lock(mu_);
  for (const Attached& a : attached_) {
    if (a.slot == slot && a.device == device) hotplug_.DeviceAdded(slot);
  }
}

void DeviceManager::DetachLocked(size_t index) {
  StepTimer timer;
  Attached a = std::move(attached_[index]);
  attached_.erase(attached_.begin() + static_cast<long>(index));
  (void)machine_.pci().RemoveDevice(a.slot);  // Off the bus first: no new config accesses.
  for (auto [io, address] : a.bars) {
    (void)(io ? machine_.io_space() : machine_.mmio_space()).Free(address);
  }
  // Off the machine (interrupts, BAR slots and traps) with its DMA stopped; then its fd closes
  // (vfio-pci resets it). For the last function that runs alongside unmapping guest RAM.
  std::shared_ptr<passthrough::VfioPciDevice> device = std::move(a.device);
  vfio_.Close(
      a.group_id,
      [&device] {
        device->Detach();
        device.reset();
      },
      &timer);
  LogInfo("vmm: detached ", a.id, " (host ", a.host_bdf, ") in ", timer.Summary());
}

void DeviceManager::RemoveAll() {
  MutexLock lock(mu_);
  while (!attached_.empty()) DetachLocked(attached_.size() - 1);
}

DeviceSummary DeviceManager::SummaryLocked(const Attached& a) const {
  const uint32_t id = a.device->ConfigRead(0);
  return {a.id, DeviceSummary::Kind::kVfioPci, absl::StrFormat("0000:00:%02x.0", a.slot),
          a.host_bdf,
          absl::StrFormat("vfio-pci %04x:%04x, interrupts: %s%s", id & 0xffff, id >> 16,
                          a.device->interrupt_mode(), a.removing ? ", being removed" : "")};
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
  LogInfo("vmm: ", gone->id, " (host ", gone->host_bdf, ") released by the guest", asked,
          " and detached");
  if (options_.on_removed) options_.on_removed(*gone);
}

std::vector<DeviceSummary> DeviceManager::List() const {
  MutexLock lock(mu_);
  std::vector<DeviceSummary> out;
  for (const Attached& a : attached_) out.push_back(SummaryLocked(a));
  return out;
}

void DeviceManager::CountResources(Resources& r) const {
  MutexLock lock(mu_);
  for (const vfio::IovaRange& m : vfio_.dma_mappings()) {
    ++r.dma_mappings;
    r.dma_mapped_bytes += m.last.raw() - m.start.raw() + 1;
  }
}

}  // namespace vmmkit::vmm
