// File: iommu/shadow.h
// -----------------------------------------------------------------------------
// VfioShadow mirrors one vIOMMU address space into the host IOMMU through a vfio/ DmaBackend:
// MAP -> MapDma of the guest RAM the translation points at, UNMAP -> UnmapDma. This is how a
// passthrough device behind a guest-visible IOMMU can DMA only where the guest allows it.
//
//   ASSIGN_OR_RETURN(auto shadow, VfioShadow::Create(*container, system_memory));
//   RETURN_IF_ERROR(viommu_space.RegisterNotifier(shadow.get(), Iova(0), Iova(~0ull),
//                                                 kMapEvents | kUnmapEvents));  // replays
//
// - Idempotent: a MAP of what is already mapped the same way, or an UNMAP of what is not mapped,
//   does nothing; so replays and repeated invalidations are harmless.
// - Coalescing: consecutive MAPs of one batch that are contiguous in IOVA and in guest RAM, with
//   the same permissions, become one host mapping. An UNMAP of part of a host mapping unmaps it
//   and maps the remainder again (Type1v2 and iommufd never split a mapping silently).
// - Pre-registration: for backends that need it (sPAPR TCE v2) the shadow registers all guest RAM
//   of system memory before its first map, through vfio/'s pre-registration listener.
// - Failures (a translation to MMIO or outside RAM, a host refusal such as the memlock limit) are
//   returned from Notify, which IommuAddressSpace records as a guest-visible fault; the shadow
//   keeps mapping the rest of the batch and never crashes.
//
// Lifetime: unregister the shadow from the IommuAddressSpace before destroying it; destruction
// unmaps everything it mapped. Thread-safety: none (the event loop).

#ifndef VMMKIT_IOMMU_SHADOW_H_
#define VMMKIT_IOMMU_SHADOW_H_

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "iommu/iommu.h"
#include "iommu/iova_tree.h"
#include "memory/address_space.h"
#include "vfio/dma_backend.h"
#include "vfio/dma_listener.h"

namespace vmmkit::iommu {

class VfioShadow : public IommuNotifier {
 public:
  // `backend` and `system_memory` must outlive the shadow.
  static absl::StatusOr<std::unique_ptr<VfioShadow>> Create(vfio::DmaBackend& backend,
                                                            AddressSpace& system_memory);
  ~VfioShadow() override;
  VfioShadow(const VfioShadow&) = delete;
  VfioShadow& operator=(const VfioShadow&) = delete;

  absl::Status Notify(absl::Span<const IommuEvent> events) override;

  // The host mappings (translated = guest physical address), coalesced.
  const IovaTree& host_mappings() const { return host_; }
  uint64_t map_calls() const { return map_calls_; }
  uint64_t unmap_calls() const { return unmap_calls_; }

 private:
  VfioShadow(vfio::DmaBackend& backend, AddressSpace& system_memory)
      : backend_(backend), system_memory_(system_memory) {}
  absl::Status Unmap(const IovaMapping& m);
  absl::Status MapHost(const IovaMapping& m);
  bool AlreadyMapped(const IovaMapping& m) const;

  vfio::DmaBackend& backend_;
  AddressSpace& system_memory_;
  std::unique_ptr<vfio::DmaPreRegistrationListener> prereg_;
  IovaTree host_;
  std::map<uint64_t, std::shared_ptr<GuestRegion>> regions_;  // Host mapping IOVA -> its RAM.
  uint64_t map_calls_ = 0;
  uint64_t unmap_calls_ = 0;
};

}  // namespace vmmkit::iommu

#endif  // VMMKIT_IOMMU_SHADOW_H_
