// File: vmm/vfio_pci_kind.h
// -----------------------------------------------------------------------------
// The "vfio-pci" kind of PCI function for the DeviceManager: a host PCI function bound to
// vfio-pci, passed through with passthrough/ (VfioHost opens it in the VM's one container with
// guest RAM DMA-mapped; VfioPciDevice presents it on the machine, its MSIs through the machine's
// routes and INTx on the slot's IOAPIC input).
//
//   device_manager.RegisterKind("vfio-pci", VfioPciKind(machine));
//
// The kind owns the VM's VfioHost; the device manager calls its hooks under its own lock, which
// is what serializes the host's use.

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
