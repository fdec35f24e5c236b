// File: vmm/virtio_vsock_kind.h
// -----------------------------------------------------------------------------
// The "virtio-vsock" kind of PCI function for the DeviceManager: a virtio-vsock device served by
// the kernel's vhost-vsock (virtio_vsock::VsockDevice), giving the guest the context id
// spec.vsock_cid, behind the virtio-pci transport and wired into the machine as the other virtio
// kinds are (BAR trap, an ioeventfd per queue, MSI-X through Machine::SignalMsi). The host side
// is ordinary AF_VSOCK sockets. Without ACCESS_PLATFORM: behind the VT-d unit the device reaches
// guest-physical memory (as with vhost-net).
//
//   device_manager.RegisterKind("virtio-vsock", VirtioVsockKind(machine));
//   device_manager.Add({.id = "vsock0", .kind = "virtio-vsock", .vsock_cid = 3}, false);

#ifndef VMMKIT_VMM_VIRTIO_VSOCK_KIND_H_
#define VMMKIT_VMM_VIRTIO_VSOCK_KIND_H_

#include "vmm/device_manager.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// `machine` must outlive the kind.
PciFunctionKind VirtioVsockKind(Machine& machine);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VIRTIO_VSOCK_KIND_H_
