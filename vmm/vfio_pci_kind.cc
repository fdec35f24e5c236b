#include "vmm/vfio_pci_kind.h"

#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "iommu/shadow.h"
#include "passthrough/vfio_pci_device.h"

namespace vmmkit::vmm {
namespace {

absl::StatusOr<std::shared_ptr<passthrough::VfioPciDevice>> CreateDevice(
    Machine& machine, std::unique_ptr<vfio::VfioDevice> device, const AddDeviceSpec& spec,
    const PciSlot& slot) {
  absl::StatusOr<std::shared_ptr<passthrough::VfioPciDevice>> d =
      passthrough::VfioPciDevice::Create(
          std::move(device),
          {machine.vm(), machine.address_space(), machine.mmio(), machine.pio(),
           machine.msi_routes(), machine.irq_lines(), machine.lock()},
          {.id = spec.id,
           .device_number = slot.device_number,
           .guest_requester_id = slot.requester_id,
           .intx_gsi = slot.intx_gsi});
  if (!d.ok()) {
    return absl::Status(d.status().code(),
                        absl::StrCat("attach the device: ", d.status().message()));
  }
  return d;
}

// Without a guest IOMMU: one VfioHost for the VM, all of guest RAM mapped in its container.
PciFunctionKind IdentityKind(Machine& machine, passthrough::VfioHostOptions options) {
  auto host = std::make_shared<passthrough::VfioHost>(machine.address_space(), machine.lock(),
                                                      std::move(options));
  PciFunctionKind kind;
  kind.summary_kind = DeviceSummary::Kind::kVfioPci;
  kind.exclusive = [](const AddDeviceSpec& spec) { return spec.host_bdf; };
  kind.create = [&machine, host](const AddDeviceSpec& spec, const PciSlot& slot,
                                 StepTimer& timer) -> absl::StatusOr<NewPciFunction> {
    ASSIGN_OR_RETURN(passthrough::VfioHost::Function f, host->Open(spec.host_bdf, &timer));
    const int group = f.group_id;
    absl::StatusOr<std::shared_ptr<passthrough::VfioPciDevice>> device =
        CreateDevice(machine, std::move(f.device), spec, slot);
    if (!device.ok()) {
      host->Close(group, [] {});  // The device fd closed already, inside Create.
      return device.status();
    }
    timer.Step("attach");
    return NewPciFunction{*device,
                          [host, group](const std::function<void()>& destroy, StepTimer& steps) {
                            host->Close(group, destroy, &steps);
                          }};
  };
  kind.count_resources = [host](Resources& r) {
    for (const vfio::IovaRange& m : host->dma_mappings()) {
      ++r.dma_mappings;
      r.dma_mapped_bytes += m.last.raw() - m.start.raw() + 1;
    }
  };
  return kind;
}

// Behind the machine's VT-d unit: each function in a container of its own (so functions in
// different guest domains are isolated in the host IOMMU too), holding exactly what the guest's
// tables map for it, through a VfioShadow registered for its requester id.
PciFunctionKind ShadowedKind(Machine& machine, passthrough::VfioHostOptions options) {
  options.map_guest_ram = false;
  struct Function {
    std::unique_ptr<passthrough::VfioHost> host;
    std::unique_ptr<iommu::VfioShadow> shadow;
  };
  // By requester id; the device manager serializes the hooks.
  auto functions = std::make_shared<std::map<uint16_t, std::shared_ptr<Function>>>();
  PciFunctionKind kind;
  kind.summary_kind = DeviceSummary::Kind::kVfioPci;
  kind.exclusive = [](const AddDeviceSpec& spec) { return spec.host_bdf; };
  kind.create = [&machine, options, functions](const AddDeviceSpec& spec, const PciSlot& slot,
                                               StepTimer& timer) -> absl::StatusOr<NewPciFunction> {
    auto fn = std::make_shared<Function>();
    fn->host =
        std::make_unique<passthrough::VfioHost>(machine.address_space(), machine.lock(), options);
    ASSIGN_OR_RETURN(passthrough::VfioHost::Function f, fn->host->Open(spec.host_bdf, &timer));
    const int group = f.group_id;
    auto fail = [&](absl::Status s) {
      fn->shadow.reset();
      fn->host->Close(group, [&] { f.device.reset(); });
      return s;
    };
    absl::Status registered;
    {
      MutexLock lock(machine.lock());
      absl::StatusOr<std::unique_ptr<iommu::VfioShadow>> shadow =
          iommu::VfioShadow::Create(*fn->host->dma_backend(), machine.address_space());
      if (!shadow.ok()) return fail(shadow.status());
      fn->shadow = *std::move(shadow);
      // Replays what the guest's tables map for this requester now (nothing, for a device the
      // guest has not attached to a domain yet; all of RAM while its translation is off).
      registered = machine.iommu()->RegisterNotifier(slot.requester_id, fn->shadow.get());
    }
    if (!registered.ok()) {
      return fail(absl::Status(registered.code(),
                               absl::StrCat("shadow the guest's IOMMU: ", registered.message())));
    }
    timer.Step("vIOMMU shadow");
    auto unregister = [&machine, fn, sid = slot.requester_id] {
      MutexLock lock(machine.lock());
      (void)machine.iommu()->UnregisterNotifier(sid, fn->shadow.get());
      fn->shadow.reset();  // Unmaps what it mapped.
    };
    absl::StatusOr<std::shared_ptr<passthrough::VfioPciDevice>> device =
        CreateDevice(machine, std::move(f.device), spec, slot);
    if (!device.ok()) {
      unregister();
      fn->host->Close(group, [] {});
      return device.status();
    }
    timer.Step("attach");
    (*functions)[slot.requester_id] = fn;
    return NewPciFunction{*device, [fn, group, unregister, functions, sid = slot.requester_id](
                                       const std::function<void()>& destroy, StepTimer& steps) {
                            functions->erase(sid);
                            unregister();
                            steps.Step("vIOMMU shadow gone");
                            fn->host->Close(group, destroy, &steps);
                          }};
  };
  kind.iommu_summary = [&machine, functions](uint16_t sid) -> std::optional<DeviceIommuSummary> {
    auto it = functions->find(sid);
    if (it == functions->end()) return std::nullopt;
    std::optional<DeviceIommuSummary> s = GuestIommuSummary(machine, sid);
    if (!s) return s;
    MutexLock lock(machine.lock());  // The shadow changes under it (a guest's invalidation).
    if (it->second->shadow != nullptr) {
      s->shadowed_mappings = it->second->shadow->host_mappings().size();
      s->host_map_calls = it->second->shadow->map_calls();
      s->host_unmap_calls = it->second->shadow->unmap_calls();
    }
    return s;
  };
  kind.count_resources = [functions](Resources& r) {
    for (const auto& [sid, fn] : *functions) {
      if (fn->shadow == nullptr) continue;
      for (const auto& [iova, m] : fn->shadow->host_mappings()) {
        ++r.dma_mappings;
        r.dma_mapped_bytes += m.size;
      }
    }
  };
  return kind;
}

}  // namespace

PciFunctionKind VfioPciKind(Machine& machine, passthrough::VfioHostOptions options) {
  if (machine.iommu() != nullptr) return ShadowedKind(machine, std::move(options));
  return IdentityKind(machine, std::move(options));
}

}  // namespace vmmkit::vmm
