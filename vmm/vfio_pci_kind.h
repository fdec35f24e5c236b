// File: vmm/vfio_pci_kind.h
// -----------------------------------------------------------------------------
// The "vfio-pci" kind of PCI function for the DeviceManager: a host PCI function bound to
// vfio-pci, passed through with passthrough/ (VfioPciDevice presents it on the machine, its MSIs
// through the machine's routes and INTx on the slot's IOAPIC input). Its DMA:
//   - without a guest IOMMU, VfioHost opens every function in the VM's one container, with all
//     of guest RAM DMA-mapped;
//   - behind the machine's VT-d unit, each function gets a container of its own holding exactly
//     what the guest's tables map for its requester id (an iommu::VfioShadow registered with the
//     unit, which replays the domain's mappings as the function arrives).
//
//   device_manager.RegisterKind("vfio-pci", VfioPciKind(machine));
//
// The kind owns its VfioHosts; the device manager calls its hooks under its own lock, which is
// what serializes their use.

#ifndef VMMKIT_VMM_VFIO_PCI_KIND_H_
#define VMMKIT_VMM_VFIO_PCI_KIND_H_

#include "passthrough/vfio_host.h"
#include "vmm/device_manager.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// `machine` must outlive the kind. `options` say where VFIO and sysfs are (tests: a fake kernel).
PciFunctionKind VfioPciKind(Machine& machine, passthrough::VfioHostOptions options = {});

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VFIO_PCI_KIND_H_
