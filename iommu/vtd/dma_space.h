// File: iommu/vtd/dma_space.h
// -----------------------------------------------------------------------------
// VtdDmaSpace: the DmaSpace of one emulated device behind a VT-d remapping unit. Every access is
// translated page by page through the unit for the device's requester id (the way the hardware
// translates the device's DMA: faults are recorded and signalled to the guest), then made in
// guest RAM through GuestMemory; a translation to anything but guest RAM is an error.
//
//   VtdDmaSpace dma(unit, memory, /*source_id=*/0x0020);
//   RETURN_IF_ERROR(dma.Write(Iova(buffer), payload));
//
// Thread-safety: as the unit (its lock) and GuestMemory.

#ifndef VMMKIT_IOMMU_VTD_DMA_SPACE_H_
#define VMMKIT_IOMMU_VTD_DMA_SPACE_H_

#include <cstdint>

#include "iommu/vtd/unit.h"
#include "memory/dma_space.h"

namespace vmmkit::iommu::vtd {

class VtdDmaSpace : public DmaSpace {
 public:
  // `unit` and `memory` must outlive the space.
  VtdDmaSpace(RemappingUnit& unit, const GuestMemory& memory, uint16_t source_id)
      : unit_(unit), memory_(memory), source_id_(source_id) {}

  // PERMISSION_DENIED or NOT_FOUND where the guest's tables do not allow the access (a fault is
  // recorded), OUT_OF_RANGE where the translation leads outside guest RAM. Nothing is written on
  // failure.
  absl::Status Read(Iova iova, absl::Span<uint8_t> dst) const override;
  absl::Status Write(Iova iova, absl::Span<const uint8_t> src) const override;

 private:
  // Guest-physical addresses of [iova, iova + size) in page-sized pieces, all checked first.
  absl::Status Translate(Iova iova, uint64_t size, IommuAccess access,
                         std::vector<std::pair<uint64_t, uint64_t>>* pieces) const;

  RemappingUnit& unit_;
  const GuestMemory& memory_;
  const uint16_t source_id_;
};

}  // namespace vmmkit::iommu::vtd

#endif  // VMMKIT_IOMMU_VTD_DMA_SPACE_H_
