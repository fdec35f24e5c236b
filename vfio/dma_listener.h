// File: vfio/dma_listener.h
// -----------------------------------------------------------------------------
// Keeping a device's IOMMU in step with guest memory, as MemoryListeners on a memory/ AddressSpace
// (the sPAPR IOMMU v2 design from QEMU, which separates two questions):
//
//   DmaMappingListener         what IS mapped: every RAM region of the device's DMA address space
//                              is mapped at IOVA == its guest address. MMIO regions are never
//                              mapped (a device cannot DMA into an emulated device).
//   DmaPreRegistrationListener what COULD be mapped: every RAM region of system memory is
//                              registered (pinned) with backends that need it (sPAPR TCE v2).
//                              Its priority makes the AddressSpace call it before the mapping
//                              listener on add and after it on remove, so memory is always
//                              registered before a map touches it and unregistered after.
//
// Failures roll back: a RegionAdd that fails leaves nothing mapped or registered for that region,
// and the AddressSpace undoes the listeners that already accepted it (or, during registration,
// the regions replayed so far). Errors name the region, its IOVA range, and the backend.
//
//   DmaPreRegistrationListener prereg(*container);
//   DmaMappingListener mapping(*container);
//   RETURN_IF_ERROR(system_memory.RegisterListener(&prereg));
//   RETURN_IF_ERROR(system_memory.RegisterListener(&mapping));  // Maps the RAM there is now.
//   ...
//   RETURN_IF_ERROR(system_memory.UnregisterListener(&mapping));  // Unmaps it all.
//
// Lifetime: a listener must be unregistered before it or its backend is destroyed. Each listener
// holds the GuestRegions it mapped or registered, so their memory outlives the mapping.
// Thread-safety: like AddressSpace, one thread (the VMM's event loop) or the caller's lock.

#ifndef VMMKIT_VFIO_DMA_LISTENER_H_
#define VMMKIT_VFIO_DMA_LISTENER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "memory/address_space.h"
#include "vfio/dma_backend.h"

namespace vmmkit::vfio {

class DmaMappingListener : public MemoryListener {
 public:
  explicit DmaMappingListener(DmaBackend& backend, std::string name = "vfio-dma-map")
      : backend_(backend), name_(std::move(name)) {}

  int priority() const override { return kDefault; }
  std::string name() const override { return name_; }
  absl::Status RegionAdd(const AddressSpaceRegion& region) override;
  void RegionDel(const AddressSpaceRegion& region) override;

  // What this listener has mapped, in IOVA order.
  std::vector<IovaRange> mappings() const;

 private:
  DmaBackend& backend_;
  std::string name_;
  std::map<uint64_t, std::shared_ptr<GuestRegion>> mapped_;  // IOVA -> the region mapped there.
};

class DmaPreRegistrationListener : public MemoryListener {
 public:
  explicit DmaPreRegistrationListener(DmaBackend& backend, std::string name = "vfio-dma-prereg")
      : backend_(backend), name_(std::move(name)) {}

  int priority() const override { return kPreRegistration; }
  std::string name() const override { return name_; }
  absl::Status RegionAdd(const AddressSpaceRegion& region) override;
  void RegionDel(const AddressSpaceRegion& region) override;

  // The guest ranges whose memory is registered now (empty for backends without pre-registration).
  std::vector<std::pair<GuestAddress, uint64_t>> registered() const;

 private:
  DmaBackend& backend_;
  std::string name_;
  std::map<uint64_t, std::shared_ptr<GuestRegion>> registered_;  // Guest address -> region.
};

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_DMA_LISTENER_H_
