// File: vmm/virtio_net_kind.h
// -----------------------------------------------------------------------------
// The "virtio-net" kind of PCI function for the DeviceManager: a host tap as a virtio-net
// interface (virtio_net::NetDevice, vmm's own data path) behind the virtio-pci transport, wired
// into the machine as the virtio-blk kind is (BAR trap, one ioeventfd per queue, MSI-X through
// Machine::SignalMsi, ACCESS_PLATFORM behind the VT-d unit). The tap is opened by name (one
// queue per queue pair; IFF_MULTI_QUEUE for more than one) or adopted from fds vmm inherited
// (--net fd=). Its queues are served by vmm's workers, or by the kernel's vhost-net (spec.vhost;
// /dev/vhost-net). A MAC address left zero is picked from the function's requester id
// (52:54:00:ab:BB:DF), unique in the VM; two interfaces may not share one, nor a tap.
//
//   device_manager.RegisterKind("virtio-net", VirtioNetKind(machine));
//   device_manager.Add({.id = "net0", .kind = "virtio-net", .tap = "vmtap0"}, false);
//
// Its hooks run under the device manager's lock, which serializes the kind's own state.

#ifndef VMMKIT_VMM_VIRTIO_NET_KIND_H_
#define VMMKIT_VMM_VIRTIO_NET_KIND_H_

#include "vmm/device_manager.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// `machine` must outlive the kind.
PciFunctionKind VirtioNetKind(Machine& machine);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VIRTIO_NET_KIND_H_
