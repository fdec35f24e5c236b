#include "vmm/vfio_pci_kind.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "passthrough/vfio_pci_device.h"

namespace vmmkit::vmm {

PciFunctionKind VfioPciKind(Machine& machine, passthrough::VfioHostOptions options) {
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
        passthrough::VfioPciDevice::Create(std::move(f.device),
                                           {machine.vm(), machine.address_space(), machine.mmio(),
                                            machine.pio(), machine.msi_routes(), machine.lock()},
                                           {.id = spec.id,
                                            .device_number = slot.device_number,
                                            .guest_requester_id = slot.requester_id,
                                            .intx_gsi = slot.intx_gsi});
    if (!device.ok()) {
      host->Close(group, [] {});  // The device fd closed already, inside Create.
      return absl::Status(device.status().code(),
                          absl::StrCat("attach the device: ", device.status().message()));
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

}  // namespace vmmkit::vmm
