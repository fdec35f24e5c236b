// File: vmm/confinement.h
// -----------------------------------------------------------------------------
// How vmm confines itself: every thread, as it starts and before it handles guest or client
// input, drops every capability but CAP_IPC_LOCK (VFIO pins guest RAM with it), sets
// no_new_privs, takes the VM's Landlock rules (only the files and devices it was given) and
// installs the seccomp allow-list of its kind. Linux keeps all four per thread, hence per thread.
//
//   vcpu          KVM_RUN and exit handling: device models, interrupts, the vIOMMU's DMA
//                 shadowing, a guest's hot-unplug (detaching a passed-through device)
//   event-loop    the main thread: timers, console, signals, and every control-plane action
//                 (device attach and detach, pause, resume), and the teardown at exit
//   api           gRPC's threads and the API socket's accepting thread: sockets and futexes;
//                 what they are asked to do runs on the event loop
//   ioapic-lines  the split irqchip's line thread: eventfd reads and KVM_IRQ_LINE
//   virtio-blk    a disk's queue workers: their notifier eventfds, the image's open fd (pread,
//                 pwrite, fdatasync, fallocate) and KVM_SIGNAL_MSI; started by the thread that
//                 creates the disk (main at start, the event loop for a hot-added one), whose
//                 filter they keep under their own: the event loop's allows all of theirs
//   virtio-net    a NIC's queue workers: their notifier eventfds, the tap's fds (read, write,
//                 writev; TUNSETOFFLOAD and TUNSETQUEUE for the control queue) and
//                 KVM_SIGNAL_MSI; with vhost-net, handing the rings to the kernel and back;
//                 started as virtio-blk's are
//   virtio-vsock  a vsock device's worker: the kernel's interrupt eventfds, KVM_SIGNAL_MSI, and
//                 handing the rings to vhost-vsock and back
//
// Threads a confined thread starts (Alongside helpers, gRPC's pool) inherit its confinement.
//
//   RETURN_IF_ERROR(SetUpConfinement(config));   // In main, before any thread exists.

#ifndef VMMKIT_VMM_CONFINEMENT_H_
#define VMMKIT_VMM_CONFINEMENT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sandbox/seccomp.h"
#include "vmm/config.h"

namespace vmmkit::vmm {

inline constexpr absl::string_view kThreadVcpu = "vcpu";
inline constexpr absl::string_view kThreadEventLoop = "event-loop";
inline constexpr absl::string_view kThreadApi = "api";
inline constexpr absl::string_view kThreadIoapicLines = "ioapic-lines";
inline constexpr absl::string_view kThreadVirtioBlk = "virtio-blk";
inline constexpr absl::string_view kThreadVirtioNet = "virtio-net";
inline constexpr absl::string_view kThreadVirtioVsock = "virtio-vsock";

// The seccomp allow-list of a thread kind above; NOT_FOUND for any other name.
absl::StatusOr<sandbox::SeccompPolicy> SeccompPolicyFor(absl::string_view kind);

// What a VM configured as `config` may reach on the file system after start, as Landlock rules
// (path, access): its kernel and initrd (read), its console file, its API socket's directory
// (to create the socket and remove a stale one), /dev/kvm, /dev/vfio and /dev/iommu, PCI sysfs
// and IOMMU groups (read; devices can be hot-added), /proc (read, for /proc/self's listings), each
// --disk image (read, or read and write), and each --disk-dir (a hot-added image's directory).
std::vector<std::pair<std::string, uint64_t>> LandlockRules(const VmmConfig& config);

// Prepares the confinement `config` asks for and registers the thread-start hook that applies it
// (base/thread_start.h). Call once, from main, before any thread exists. A thread that cannot
// be confined ends the process (status 1) with a line saying why.
absl::Status SetUpConfinement(const VmmConfig& config);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_CONFINEMENT_H_
