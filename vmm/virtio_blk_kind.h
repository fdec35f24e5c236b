// File: vmm/virtio_blk_kind.h
// -----------------------------------------------------------------------------
// The "virtio-blk" kind of PCI function for the DeviceManager: a raw image file as a virtio-blk
// disk (virtio_blk::BlockDevice) behind the virtio-pci transport (virtio_pci::VirtioPciFunction),
// wired into the machine:
//   - BAR 0 traps on the MMIO bus wherever the guest puts it, and each queue's notify address is
//     a KVM ioeventfd on that queue's notifier, so a notification wakes the queue's worker without
//     leaving the kernel; both follow the BAR when the guest moves it or turns decoding off;
//   - interrupts are MSIs as the guest programmed them in the MSI-X table, sent with
//     Machine::SignalMsi (through the VT-d unit's interrupt remapping when the guest turned it on);
//   - DMA: guest-physical, or with the machine's VT-d unit, ACCESS_PLATFORM is offered and a
//     driver that accepts it is translated through the unit (Machine::DmaFor).
// The disk's workers start with the device, on the thread that adds it (vmm's main thread for
// --disk, the event loop for AddDevice): see virtio_blk/block_device.h and vmm/confinement.h.
//
//   device_manager.RegisterKind("virtio-blk", VirtioBlkKind(machine));
//   device_manager.Add({.id = "disk0", .kind = "virtio-blk", .disk_path = "/var/vm/root.img"},
//   false);
//
// Its hooks run under the device manager's lock, which serializes the kind's own state.

#ifndef VMMKIT_VMM_VIRTIO_BLK_KIND_H_
#define VMMKIT_VMM_VIRTIO_BLK_KIND_H_

#include "vmm/device_manager.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// `machine` must outlive the kind.
PciFunctionKind VirtioBlkKind(Machine& machine);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VIRTIO_BLK_KIND_H_
