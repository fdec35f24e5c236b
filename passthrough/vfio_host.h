// File: passthrough/vfio_host.h
// -----------------------------------------------------------------------------
// VfioHost is the host side of one VM's passthrough: the VFIO container that all of the VM's
// passed-through functions share, the IOMMU groups in it, and guest RAM DMA-mapped into it (a
// vfio/ DmaMappingListener on the guest's address space) while at least one function is open.
// A VMM asks it for a function's device by host address and hands that to VfioPciDevice; it
// never touches containers, groups or DMA mappings itself. Behind a guest-visible IOMMU a VMM
// uses one VfioHost per function, with `map_guest_ram` off, and maps what the guest allows.
//
//   VfioHost host(system_memory, machine_lock);
//   ASSIGN_OR_RETURN(VfioHost::Function f, host.Open("0000:01:00.0"));
//   ASSIGN_OR_RETURN(auto dev, VfioPciDevice::Create(std::move(f.device), machine, options));
//   ...
//   host.Close(f.group_id, [&] { dev->Detach(); dev.reset(); });   // when it leaves
//
// Thread-safety: none of its own; the caller serializes Open and Close (a VMM's device manager).
// `machine_lock` is held around changes to the address space, which vCPU threads also make.

#ifndef VMMKIT_PASSTHROUGH_VFIO_HOST_H_
#define VMMKIT_PASSTHROUGH_VFIO_HOST_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "base/step_timer.h"
#include "memory/address_space.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/dma_listener.h"
#include "vfio/group.h"
#include "vfio/syscalls.h"

namespace vmmkit::passthrough {

struct VfioHostOptions {
  vfio::VfioSyscalls* syscalls = nullptr;  // Null: the real kernel.
  std::string sysfs = "/sys";              // Where host PCI functions are looked up.
  // All of guest RAM DMA-mapped while a function is open. False behind a guest-visible IOMMU:
  // the caller maps what the guest's tables allow (a VfioShadow on dma_backend()).
  bool map_guest_ram = true;
};

class VfioHost {
 public:
  struct Function {
    std::unique_ptr<vfio::VfioDevice> device;
    int group_id = -1;  // Give it back to Close.
  };

  // `guest_memory` (its RAM is what gets DMA-mapped) and `machine_lock` must outlive this object.
  VfioHost(AddressSpace& guest_memory, Mutex& machine_lock, VfioHostOptions options = {});
  ~VfioHost();  // Every opened function must have been closed.
  VfioHost(const VfioHost&) = delete;
  VfioHost& operator=(const VfioHost&) = delete;

  // Opens host function `bdf` ("0000:01:00.0", bound to vfio-pci) for passthrough: the container
  // (for the first function), its IOMMU group (the first from that group), the IOMMU model, all
  // of guest RAM mapped (for the first function, alongside the device's open, during which
  // vfio-pci resets the device), and the device. All or nothing: on failure, what this call set up
  // is gone again. Errors name the step ("open the IOMMU group: ..."). `steps` (optional) times
  // them for the caller's log.
  absl::StatusOr<Function> Open(const std::string& bdf, StepTimer* steps = nullptr);

  // The function opened from `group_id` leaves. `close` destroys the caller's device (its fd
  // closes, and vfio-pci resets the device). When it is the last function, guest RAM is unmapped
  // while `close` runs on a helper thread (unmapping first is safe: VFIO removes and flushes the
  // IOMMU entries before it unpins a page, so a late DMA faults) and the groups and container go:
  // a later Open starts afresh and maps guest RAM again.
  void Close(int group_id, const std::function<void()>& close, StepTimer* steps = nullptr);

  size_t open_functions() const;
  // The container, while a function is open (null otherwise).
  vfio::DmaBackend* dma_backend() const { return container_.get(); }
  // What guest RAM is mapped as, for resource accounting (empty with no function open).
  std::vector<vfio::IovaRange> dma_mappings() const;

 private:
  struct GroupRef {
    std::shared_ptr<vfio::VfioGroup> group;
    int functions = 0;
  };
  vfio::VfioSyscalls& sys() const;
  absl::Status CheckBoundToVfioPci(const std::string& bdf) const;

  AddressSpace& guest_memory_;
  Mutex& machine_lock_;
  const VfioHostOptions options_;
  std::shared_ptr<vfio::VfioContainer> container_;
  std::map<int, GroupRef> groups_;  // By IOMMU group id.
  std::unique_ptr<vfio::DmaMappingListener> dma_listener_;
};

}  // namespace vmmkit::passthrough

#endif  // VMMKIT_PASSTHROUGH_VFIO_HOST_H_
