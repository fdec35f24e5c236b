// File: vfio/dma_backend.h
// -----------------------------------------------------------------------------
// DmaBackend is what consumers of vfio/ program DMA through, whichever IOMMU interface the host
// offers: the legacy container with Type1v2/Type1 or sPAPR TCE v2 (VfioContainer), or an iommufd
// IO address space (IommufdIoas). The DMA listeners (dma_listener.h) and iommu/'s shadowing only
// see this interface, so moving from the container to iommufd changes one constructor call.
//
//   DmaBackend& dma = *container;                        // or *ioas
//   ASSIGN_OR_RETURN(IommuCapabilities caps, dma.GetCapabilities());
//   if (dma.needs_pre_registration()) RETURN_IF_ERROR(dma.RegisterMemory(*ram, 0, ram->size()));
//   RETURN_IF_ERROR(dma.MapDma(Iova(0x100000), *ram, 0, ram->size(), /*writable=*/true));
//
// Rules every backend follows: iova, offset and size are 4 KiB aligned and inside the region
// (INVALID_ARGUMENT / OUT_OF_RANGE before any ioctl); errors name the operation, the IOVA range and
// size, with a hint where the kernel's errno has a usual cause (RESOURCE_EXHAUSTED: memlock limit;
// ALREADY_EXISTS: overlap; FAILED_PRECONDITION: busy); UnmapDma of a range where nothing is mapped
// is NOT_FOUND. Callers keep the GuestRegion alive while any part of it is mapped or registered.

#ifndef VMMKIT_VFIO_DMA_BACKEND_H_
#define VMMKIT_VFIO_DMA_BACKEND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/address.h"
#include "memory/guest_region.h"

namespace vmmkit::vfio {

struct IovaRange {
  Iova start;
  Iova last;  // Inclusive.
  bool Contains(Iova iova, uint64_t size) const;
};

// What the host IOMMU allows, as data (VFIO_IOMMU_GET_INFO, SPAPR_TCE_GET_INFO, IOAS_IOVA_RANGES).
struct IommuCapabilities {
  uint64_t page_sizes = 0;             // Bitmap of supported IOMMU page sizes.
  std::vector<IovaRange> valid_iovas;  // Empty: the kernel did not report ranges.
  std::optional<uint32_t> dma_mappings_available;
  bool needs_pre_registration = false;  // sPAPR TCE v2: RegisterMemory before MapDma.

  // OK if [iova, iova + size) lies in one valid range (or no ranges were reported); otherwise
  // OUT_OF_RANGE listing the valid ranges.
  absl::Status CheckIovaRange(Iova iova, uint64_t size) const;
};

class DmaBackend {
 public:
  virtual ~DmaBackend() = default;

  // For messages, e.g. "type1v2 container" or "iommufd IOAS 2".
  virtual std::string name() const = 0;
  virtual absl::StatusOr<IommuCapabilities> GetCapabilities() const = 0;

  // Pre-registration (sPAPR TCE v2): pins [offset, offset + size) of `region` so that later maps
  // are cheap and cannot fail for lack of locked memory. Backends that do not need it accept and
  // ignore these calls, so a pre-registration listener works with every backend.
  virtual bool needs_pre_registration() const { return false; }
  virtual absl::Status RegisterMemory(const GuestRegion& region, uint64_t offset, uint64_t size);
  virtual absl::Status UnregisterMemory(const GuestRegion& region, uint64_t offset, uint64_t size);

  // Makes [offset, offset + size) of `region` visible to the devices at `iova`.
  virtual absl::Status MapDma(Iova iova, const GuestRegion& region, uint64_t offset, uint64_t size,
                              bool writable) = 0;
  // Removes the mappings in [iova, iova + size); it must cover whole mappings.
  virtual absl::Status UnmapDma(Iova iova, uint64_t size) = 0;
};

}  // namespace vmmkit::vfio

#endif  // VMMKIT_VFIO_DMA_BACKEND_H_
